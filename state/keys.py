"""Keys of the RocksDB tables: a one-byte kind, then parts joined by 0x1F.

Parts are ids from outside (workspaces, accounts, people), so each is checked to be
non-empty and free of the separator; due times are 12 zero-padded decimal digits of
epoch seconds so that RocksDB's byte order is time order and a range scan finds
everything due up to a moment.
"""

from __future__ import annotations

SEP = b"\x1f"
#: Largest due time a key can hold (12 decimal digits of epoch seconds).
MAX_DUE = 999_999_999_999


class KeyPartError(ValueError):
    """An id that cannot be part of a key (empty, or holds the 0x1F separator)."""


def part(value: str) -> bytes:
    raw = value.encode()
    if not raw or SEP in raw:
        raise KeyPartError(f"id {value!r} is empty or contains 0x1F")
    return raw


def make_key(kind: bytes, *parts: str) -> bytes:
    """``kind SEP part SEP part ...``, every part checked by :func:`part`."""
    return SEP.join([kind, *(part(p) for p in parts)])


def due_part(due: int) -> bytes:
    """A due time as 12 digits, clamped to what the digits can hold."""
    return b"%012d" % min(max(due, 0), MAX_DUE)
