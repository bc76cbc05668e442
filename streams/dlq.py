"""Dead-letter records: what Telltale could not accept, kept with the reason.

One JSON object per rejected message on ``settings.topics.events_dlq``, keyed by
workspace (when known)::

    {"v": 1, "reason": "missing_identity", "detail": "...", "source": "segment",
     "workspace": "acme", "received_at": 1700000000.0, "payload": {...original JSON...}}

When the original was not JSON, ``payload_text`` (valid UTF-8) or ``payload_b64`` holds it
instead of ``payload``. Reasons are the stable codes of
:class:`streams.normalize.Reason` and :class:`streams.envelope.EnvelopeError`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

_MISSING = object()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    detail: str
    source: str
    workspace: str | None
    received_at: float
    payload: Any = _MISSING
    raw: bytes | None = None

    def to_bytes(self) -> bytes:
        record: dict[str, Any] = {
            "v": 1,
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source,
            "workspace": self.workspace,
            "received_at": self.received_at,
        }
        if self.payload is not _MISSING:
            record["payload"] = self.payload
        elif self.raw is not None:
            try:
                record["payload_text"] = self.raw.decode("utf-8")
            except UnicodeDecodeError:
                record["payload_b64"] = base64.b64encode(self.raw).decode("ascii")
        try:
            return orjson.dumps(record)
        except (TypeError, orjson.JSONEncodeError):
            # A payload orjson cannot write back (integers beyond 64 bits): keep its text.
            record.pop("payload", None)
            record["payload_text"] = repr(self.payload)[:65536]
            return orjson.dumps(record)

    def key(self) -> bytes | None:
        return self.workspace.encode() if self.workspace else None


def decode_dead_letter(raw: bytes) -> dict[str, Any]:
    """Read a dead-letter record back (tests, tooling)."""
    record = orjson.loads(raw)
    if not isinstance(record, dict) or "reason" not in record:
        raise ValueError("not a dead-letter record")
    return record
