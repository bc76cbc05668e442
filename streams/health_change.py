"""Health-change wire codec: ``telltale.health-change/1`` JSON (orjson) and its schema.

The record is built by :meth:`scoring.changes.HealthChange.to_dict`; the JSON Schema
(draft 2020-12) lives next to this module in ``schemas/health-change.v1.json``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Protocol

import orjson

SCHEMA_PATH = Path(__file__).with_name("schemas") / "health-change.v1.json"
SCHEMA_ID = "telltale.health-change/1"


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class HealthChangeError(ValueError):
    """Raised for bytes that are not a health-change record."""


def encode_change(change: _HasToDict | dict[str, Any]) -> bytes:
    """Serialise a HealthChange (or its wire dict) to JSON bytes."""
    record = change if isinstance(change, dict) else change.to_dict()
    return orjson.dumps(record)


def decode_change(raw: bytes) -> dict[str, Any]:
    """Parse JSON bytes into the wire dict; raises HealthChangeError on garbage."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HealthChangeError(f"not JSON: {exc}") from exc
    if not isinstance(record, dict) or record.get("schema") != SCHEMA_ID:
        raise HealthChangeError(f"not a {SCHEMA_ID} record")
    return record


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema document (draft 2020-12)."""
    loaded: dict[str, Any] = orjson.loads(SCHEMA_PATH.read_bytes())
    return loaded


def validate(record: dict[str, Any]) -> None:
    """Validate a wire dict against the schema (needs the ``jsonschema`` package);
    raises ``jsonschema.ValidationError`` with the first problem."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    validator.validate(record)
