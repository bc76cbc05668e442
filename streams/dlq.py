"""Dead-letter records: what Telltale could not accept, kept with the reason.

One JSON object per rejected message on ``settings.topics.events_dlq``, keyed by
workspace (when known)::

    {"v": 1, "reason": "missing_identity", "detail": "...", "source": "segment",
     "workspace": "acme", "received_at": 1700000000.0, "message_id": "m-1",
     "payload": {...original JSON...}}

When the original was not JSON, ``payload_text`` (valid UTF-8) or ``payload_b64`` holds it
instead of ``payload``. ``message_id`` is there when the original named one.

Bounded: an original larger than the record's payload allowance (4 KiB by default) is
cut to a prefix of that many bytes, ``payload_prefix`` (UTF-8 text of its JSON, or of its
raw bytes) or ``payload_b64``, next to ``payload_bytes`` (the original's full size) and
``truncated: true``; with an allowance of 0 only the size is kept. Anyone can post a
message that is rejected, so a rejection must never cost more than a bounded record.

Reasons are the stable codes of :class:`streams.normalize.Reason` and
:class:`streams.envelope.EnvelopeError`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

_MISSING = object()

PAYLOAD_MAX_BYTES = 4096
"""Default allowance for the original in one record, bytes."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    detail: str
    source: str
    workspace: str | None
    received_at: float
    payload: Any = _MISSING
    raw: bytes | None = None
    message_id: str | None = None


def _text_of(payload: Any) -> str:
    try:
        return repr(payload)
    except RecursionError:
        return ""


def _keep_prefix(record: dict[str, Any], original: bytes, limit: int) -> None:
    """``original`` (text or raw bytes) in ``record``: whole when it fits in ``limit``
    bytes (``payload_text`` when it is UTF-8, else ``payload_b64``), else its prefix."""
    cut = original[:max(limit, 0)]
    truncated = len(cut) < len(original)
    try:
        # A prefix may end inside a UTF-8 sequence; only that last character is dropped.
        text = cut.decode("utf-8", "ignore" if truncated else "strict")
        if truncated:
            original.decode("utf-8")  # the whole is text too, not binary that decodes
    except UnicodeDecodeError:
        record["payload_b64"] = base64.b64encode(cut).decode("ascii")
    else:
        if text or not truncated:
            record["payload_prefix" if truncated else "payload_text"] = text
    if truncated:
        record["payload_bytes"] = len(original)
        record["truncated"] = True


class DeadLetterCodec:
    """The one codec of the events dead-letter topic: every stage that refuses input
    (collector, intake, resolve, score, actions) writes with :meth:`encode`, keyed by
    :meth:`key`; tools and tests read back with :meth:`decode`."""

    @staticmethod
    def encode(letter: DeadLetter, payload_max_bytes: int = PAYLOAD_MAX_BYTES) -> bytes:
        """The record, with at most ``payload_max_bytes`` of the original."""
        record: dict[str, Any] = {
            "v": 1,
            "reason": letter.reason,
            "detail": letter.detail,
            "source": letter.source,
            "workspace": letter.workspace,
            "received_at": letter.received_at,
        }
        if letter.message_id is not None:
            record["message_id"] = letter.message_id
        if letter.payload is not _MISSING:
            try:
                blob = orjson.dumps(letter.payload)
            except TypeError:
                # Integers beyond 64 bits or nesting beyond orjson's limit: keep its text.
                _keep_prefix(record, _text_of(letter.payload).encode(), payload_max_bytes)
            else:
                if len(blob) <= payload_max_bytes:
                    # Written once: the fragment is spliced in, not parsed and re-encoded.
                    record["payload"] = orjson.Fragment(blob)
                else:
                    _keep_prefix(record, blob, payload_max_bytes)
        elif letter.raw is not None:
            _keep_prefix(record, letter.raw, payload_max_bytes)
        return orjson.dumps(record)

    @staticmethod
    def key(letter: DeadLetter) -> bytes | None:
        """Kafka key: the workspace, when known."""
        return letter.workspace.encode() if letter.workspace else None

    @staticmethod
    def decode(raw: bytes) -> dict[str, Any]:
        """A dead-letter record read back (tests, tooling); ValueError on anything else."""
        record = orjson.loads(raw)
        if not isinstance(record, dict) or "reason" not in record:
            raise ValueError("not a dead-letter record")
        return record


DEAD_LETTERS = DeadLetterCodec()
"""The codec of the events dead-letter topic."""
