"""Keys of the RocksDB tables: a one-byte kind, then parts joined by 0x1F.

Parts are ids from outside (workspaces, accounts, people), so each is checked by the
rule the collector applies to ids (:func:`streams.normalize.id_problem`: non-empty, at
most 256 characters, no control characters, which include the separator); due times
are 12 zero-padded decimal digits of epoch seconds so that RocksDB's byte order is time
order and a range scan finds everything due up to a moment.
"""

from __future__ import annotations

from streams.normalize import id_problem

SEP = b"\x1f"
#: Largest due time a key can hold (12 decimal digits of epoch seconds).
MAX_DUE = 999_999_999_999


class KeyPartError(ValueError):
    """An id that cannot be part of a key (see :func:`part`)."""


def part(value: str) -> bytes:
    """``value`` as key bytes; :class:`KeyPartError` for an id the collector would refuse
    (an id reaching a stage through the topics directly is checked here again)."""
    problem = id_problem(value)
    if problem is not None:
        raise KeyPartError(f"id {value[:64]!r} {problem}")
    return value.encode()


def make_key(kind: bytes, *parts: str) -> bytes:
    """``kind SEP part SEP part ...``, every part checked by :func:`part`."""
    return SEP.join([kind, *(part(p) for p in parts)])


def due_part(due: int) -> bytes:
    """A due time as 12 digits, clamped to what the digits can hold."""
    return b"%012d" % min(max(due, 0), MAX_DUE)
