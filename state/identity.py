"""The identity map's records, as pure data: which accounts a person belongs to, the
events held back while no account is known, and the user an anonymous (or previous) id
was linked to by an identify or alias call.

Keys live in the resolve agent's one raw-bytes table (co-partitioned with the events
topic, which is keyed by person), told apart by a one-byte prefix::

    m␟workspace␟person             → IdentityRecord (accounts, most recent first; link)
    h␟workspace␟person             → held events: JSON list of Event wire dicts
    x␟<due, 12 digits>␟workspace␟person → empty; the hold or the link of that person
                                          (whichever the record says is due then) expires

(␟ is 0x1F.) One table, so that a message's writes reach one changelog in the order they
were made; the ``x`` keys of a partition form a key-ordered range, so expiring holds costs
what is due, not what is held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from state.keys import SEP, KeyPartError, due_part, make_key
from state.keys import part as key_part

MAP = b"m"
HELD = b"h"
EXPIRY = b"x"

MAX_ACCOUNTS = 16
"""Accounts remembered per person; the least recently linked is forgotten first."""
#: Raised for an id that cannot be part of a key (the identity map's name for it).
IdentityKeyError = KeyPartError


def map_key(workspace: str, person: str) -> bytes:
    return make_key(MAP, workspace, person)


def held_key(workspace: str, person: str) -> bytes:
    return make_key(HELD, workspace, person)


def expiry_key(due: int, workspace: str, person: str) -> bytes:
    return SEP.join([EXPIRY, due_part(due), key_part(workspace), key_part(person)])


def expiry_range_end(until: int) -> bytes:
    """First key after every expiry key due at or before ``until``."""
    return EXPIRY + SEP + due_part(max(until, 0) + 1)


def parse_expiry_key(key: bytes) -> tuple[int, str, str]:
    """(due second, workspace, person) of an ``x`` key."""
    prefix, due, workspace, person = key.split(SEP, 3)
    if prefix != EXPIRY:
        raise IdentityKeyError(f"not an expiry key: {key!r}")
    return int(due), workspace.decode(), person.decode()


@dataclass(slots=True)
class IdentityRecord:
    """The accounts one person was linked to (most recent first), their hold state, and
    the user they were linked to.

    ``held``: events currently held for this person; ``hold_due``: epoch second at which
    the hold expires (``None`` when nothing is held). ``linked_to``: the user id this
    person (an anonymous id, or the previous id of an alias call) now stands for, as the
    identify or alias call made at event time ``linked_at`` said; ``link_due``: epoch
    second at which that link is forgotten (``None`` when there is no link).
    """

    accounts: list[str] = field(default_factory=list)
    held: int = 0
    hold_due: int | None = None
    linked_to: str | None = None
    linked_at: float = 0.0
    link_due: int | None = None

    @property
    def current(self) -> str | None:
        """The account an event without an explicit account is attributed to."""
        return self.accounts[0] if self.accounts else None

    @property
    def empty(self) -> bool:
        """Nothing worth keeping: no account, nothing held, no link."""
        return not self.accounts and not self.held and self.linked_to is None

    def link(self, account: str) -> bool:
        """Make ``account`` the most recent; True when that changed the record."""
        if self.accounts and self.accounts[0] == account:
            return False
        if account in self.accounts:
            self.accounts.remove(account)
        self.accounts.insert(0, account)
        del self.accounts[MAX_ACCOUNTS:]
        return True

    def link_user(self, user: str, at: float) -> bool:
        """Link this person to ``user`` as a call made at event time ``at`` says, unless a
        link to another user was made by a later call (the latest call wins). True when
        that changed the record."""
        if self.linked_to == user:
            if at <= self.linked_at:
                return False
        elif self.linked_to is not None and at < self.linked_at:
            return False
        self.linked_to, self.linked_at = user, max(at, self.linked_at)
        return True

    def unlink_user(self) -> None:
        self.linked_to, self.linked_at, self.link_due = None, 0.0, None

    def uses_due(self, due: int) -> bool:
        """True when the hold or the link of this record expires at ``due`` (both share
        the one expiry key of the person)."""
        return due in (self.hold_due, self.link_due)

    def to_bytes(self) -> bytes:
        record: dict[str, Any] = {"acc": self.accounts}
        if self.held:
            record["h"] = self.held
            record["due"] = self.hold_due
        if self.linked_to is not None:
            record["to"] = self.linked_to
            record["at"] = self.linked_at
            record["ldue"] = self.link_due
        return orjson.dumps(record)

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> IdentityRecord:
        if not raw:
            return cls()
        record = orjson.loads(raw)
        return cls(list(record.get("acc") or []), int(record.get("h") or 0),
                   record.get("due"), record.get("to"), float(record.get("at") or 0.0),
                   record.get("ldue"))
