"""Fixtures of the deployment tests: the repository and the schemas (promtool's is
``promtool_bin`` of tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VENDORED_SCHEMAS = Path(__file__).resolve().parent / "schemas"
SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"


def schema_path(name: str) -> Path:
    """``../shared/schemas/<name>`` when checked out beside the shared folder, else the
    vendored copy in ``tests/deploy/schemas/``."""
    shared = SHARED_SCHEMAS / name
    return shared if shared.is_file() else VENDORED_SCHEMAS / name


def load_schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
