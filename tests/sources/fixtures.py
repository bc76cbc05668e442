"""Vendor webhook bodies kept under tests/fixtures/sources, each opening with ``//``
lines that say where its shape comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"


def body(name: str) -> bytes:
    """The webhook body as the vendor sends it: the file without its origin comment."""
    lines = (FIXTURES / f"{name}.json").read_bytes().splitlines(keepends=True)
    return b"".join(line for line in lines if not line.startswith(b"//"))


def payload(name: str) -> Any:
    return orjson.loads(body(name))
