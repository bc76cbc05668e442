"""Per-user and per-account aggregate records: what Telltale remembers about a customer.

Plain, pure records (no Kafka, no clock). They stay bounded in size whatever the history
length: activity lives in daily buckets over a rolling window that is pruned as days fall
out, lists of recent things are capped, and the per-account view of its users is a
compact summary (see :class:`UserSummary`) so an account can be scored without reading
every user record. ``to_bytes``/``from_bytes`` serialise with orjson as compact arrays.

Days are UTC epoch days (``int(epoch_seconds // 86400)``); weeks are Monday-based epoch
weeks (``(day + 3) // 7``).
"""

from __future__ import annotations

import sys
from array import array
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from typing import Any
from zlib import adler32, crc32

import orjson

DAY = 86400.0
MASK_DAYS = 64  # days of per-user activity bitmask kept in the account summary
_MASK_ALL = (1 << MASK_DAYS) - 1
STATE_VERSION = 1
_BIG_ENDIAN = sys.byteorder == "big"
YEAR_DAYS = 365  # the account's year of active days (the habit component)
_YEAR_ALL = (1 << YEAR_DAYS) - 1


def epoch_day(ts: float) -> int:
    """UTC epoch day of an epoch-seconds timestamp."""
    return int(ts // DAY)


def epoch_week(day: int) -> int:
    """Monday-based week index of an epoch day (1970-01-01 was a Thursday)."""
    return (day + 3) // 7


def id_hash(message_id: str) -> int:
    """Stable 64-bit hash of a message id (Python's ``hash`` is salted per process):
    CRC-32 and Adler-32 side by side, cheap enough for the per-event path."""
    raw = message_id.encode()
    return crc32(raw) | (adler32(raw) << 32)


def mark_active(bits: int, anchor: int | None, day: int) -> tuple[int, int]:
    """The year of active days ``(bits, anchor)`` with ``day`` active too. Bit ``k`` of
    ``bits`` is the day ``anchor - k``; days a year or more before the newest active day
    (``anchor``) fall off."""
    if anchor is None:
        return 1, day
    if day > anchor:
        return ((bits << (day - anchor)) | 1) & _YEAR_ALL, day
    back = anchor - day
    return (bits | (1 << back) if back < YEAR_DAYS else bits), anchor


def _year_window(bits: int, anchor: int | None, today: int) -> int:
    """The bits of the days in the year up to ``today`` (``YEAR_DAYS`` days, today's
    included), re-anchored on ``today``."""
    if anchor is None:
        return 0
    lag = today - anchor
    if lag < 0:  # active days after today (a clock behind the events): not yet
        return (bits >> -lag) & _YEAR_ALL
    if lag >= YEAR_DAYS:
        return 0
    return (bits & ((1 << (YEAR_DAYS - lag)) - 1)) << lag


def year_active_days(bits: int, anchor: int | None, today: int) -> int:
    """How many of the ``YEAR_DAYS`` days up to ``today`` were active."""
    return _year_window(bits, anchor, today).bit_count()


def year_oldest_active(bits: int, anchor: int | None, today: int) -> int | None:
    """The oldest active day in the year up to ``today``; None without one."""
    window = _year_window(bits, anchor, today)
    return None if not window else today - (window.bit_length() - 1)


def _flat(d: dict[int, Any]) -> list[Any]:
    out: list[Any] = []
    for k in sorted(d):
        out.append(k)
        out.append(d[k])
    return out


def _unflat(seq: list[Any]) -> dict[int, Any]:
    return {int(seq[i]): seq[i + 1] for i in range(0, len(seq), 2)}


def _pack_ids(seen: dict[int, None]) -> str:
    """Recent message-id hashes as base64 of little-endian uint64s (about a third of
    the size of a JSON list of integers)."""
    ids = array("Q", seen)
    if _BIG_ENDIAN:
        ids.byteswap()
    return b64encode(ids.tobytes()).decode("ascii")


def _unpack_ids(packed: str | list[int]) -> dict[int, None]:
    if isinstance(packed, list):  # records written before the packed form
        return dict.fromkeys(packed)
    ids = array("Q", b64decode(packed))
    if _BIG_ENDIAN:
        ids.byteswap()
    return dict.fromkeys(ids)


def _remember(seen: dict[int, None], h: int, cap: int) -> None:
    """Add ``h`` to an insertion-ordered bounded set, evicting the oldest."""
    seen[h] = None
    if len(seen) > cap:
        del seen[next(iter(seen))]


@dataclass(slots=True)
class UserState:
    """One person's activity within one account.

    ``days``: epoch day → weighted points (rolling window, default 90 days);
    ``core_weeks``: epoch week → core-feature events (last 13 weeks);
    ``seen``: recent message-id hashes, so applying an event twice changes nothing.
    """

    user_id: str
    account_id: str | None = None
    name: str | None = None
    email: str | None = None
    role: str | None = None
    first_seen: float | None = None
    last_seen: float | None = None
    active_days: int = 0
    events: int = 0
    days: dict[int, float] = field(default_factory=dict)
    core_weeks: dict[int, int] = field(default_factory=dict)
    seen: dict[int, None] = field(default_factory=dict)

    def points(self, today: int, window: int) -> float:
        """Weighted points of the ``window`` days ending with ``today``."""
        start = today - window
        return sum(p for d, p in self.days.items() if start < d <= today)

    def prune(self, today: int, window_days: int, core_weeks: int = 13) -> None:
        cutoff = today - window_days - 1
        if self.days and min(self.days) <= cutoff:
            self.days = {d: p for d, p in self.days.items() if d > cutoff}
        wk = epoch_week(today) - core_weeks
        if self.core_weeks and min(self.core_weeks) <= wk:
            self.core_weeks = {w: n for w, n in self.core_weeks.items() if w > wk}

    def remember(self, h: int, cap: int) -> None:
        _remember(self.seen, h, cap)

    def to_list(self) -> list[Any]:
        return [
            STATE_VERSION,
            self.user_id,
            self.account_id,
            self.name,
            self.email,
            self.role,
            self.first_seen,
            self.last_seen,
            self.active_days,
            self.events,
            _flat(self.days),
            _flat(self.core_weeks),
            _pack_ids(self.seen),
        ]

    @classmethod
    def from_list(cls, v: list[Any]) -> UserState:
        return cls(
            user_id=v[1],
            account_id=v[2],
            name=v[3],
            email=v[4],
            role=v[5],
            first_seen=v[6],
            last_seen=v[7],
            active_days=v[8],
            events=v[9],
            days=_unflat(v[10]),
            core_weeks=_unflat(v[11]),
            seen=_unpack_ids(v[12]),
        )

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_list())

    @classmethod
    def from_bytes(cls, raw: bytes) -> UserState:
        return cls.from_list(orjson.loads(raw))


@dataclass(slots=True)
class UserSummary:
    """What the account keeps about each of its users: enough to count active seats,
    rank power users, score users and name them in explanations.

    ``mask`` bit i = active on day ``last_day - i`` (64 days); ``weeks``: epoch week →
    weighted points (last 13 weeks, about the 90-day window).
    """

    name: str | None = None
    email: str | None = None
    first_day: int | None = None
    last_day: int | None = None
    last_seen: float | None = None  # epoch seconds of the newest activity
    mask: int = 0
    weeks: dict[int, float] = field(default_factory=dict)
    power: bool = False
    power_since: int | None = None

    def touch(self, day: int) -> None:
        last = self.last_day
        if last is None:
            self.last_day = day
            self.first_day = day
            self.mask = 1
        elif day > last:
            shift = day - last
            self.mask = ((self.mask << shift) | 1) & _MASK_ALL if shift < MASK_DAYS else 1
            self.last_day = day
        elif day < last:
            back = last - day
            if back < MASK_DAYS:
                self.mask |= 1 << back
            if self.first_day is None or day < self.first_day:
                self.first_day = day

    def active_in(self, today: int, start_ago: int, end_ago: int) -> bool:
        """Active on some day in [today - end_ago, today - start_ago] (inclusive; 0 = today)."""
        last = self.last_day
        if last is None:
            return False
        off = today - last  # bit i of mask is day today - off - i
        lo = start_ago - off
        hi = end_ago - off
        if hi < 0:
            return False
        lo = max(lo, 0)
        if lo >= MASK_DAYS:
            return False
        hi = min(hi, MASK_DAYS - 1)
        window = ((1 << (hi - lo + 1)) - 1) << lo
        return bool(self.mask & window)

    def active_days_in(self, today: int, days: int) -> int:
        """Number of active days among the last ``days`` days ending today."""
        last = self.last_day
        if last is None:
            return 0
        hi = days - 1 - (today - last)
        if hi < 0:
            return 0
        hi = min(hi, MASK_DAYS - 1)
        return (self.mask & ((1 << (hi + 1)) - 1)).bit_count()

    def points(self, today: int, weeks: int = 13) -> float:
        start = epoch_week(today) - weeks
        return sum(p for w, p in self.weeks.items() if w > start)

    def to_list(self) -> list[Any]:
        return [
            self.name,
            self.email,
            self.first_day,
            self.last_day,
            self.last_seen,
            self.mask,
            _flat(self.weeks),
            self.power,
            self.power_since,
        ]

    @classmethod
    def from_list(cls, v: list[Any]) -> UserSummary:
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], _unflat(v[6]), v[7], v[8])


@dataclass(slots=True)
class SignalState:
    """An active signal episode. ``key`` is stable for the whole episode."""

    type: str
    key: str
    subject: str | None
    severity: str
    since: float
    detail: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def to_list(self) -> list[Any]:
        return [self.type, self.key, self.subject, self.severity, self.since, self.detail,
                self.text]

    @classmethod
    def from_list(cls, v: list[Any]) -> SignalState:
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], v[6])


@dataclass(slots=True)
class Reported:
    """The last assessment a health change was emitted for (the "previous" of the next).

    ``attention``: the attention reasons it reported, as [key, severity rank] pairs, so
    whether the standing changed is decided from state alone (replay equals live,
    redelivery gives the same ids). None in records written before it was kept.
    """

    time: float
    score: int
    band: str
    forecast: str | None
    lifecycle: str
    components: dict[str, Any] = field(default_factory=dict)
    attention: list[list[Any]] | None = None

    def to_list(self) -> list[Any]:
        return [self.time, self.score, self.band, self.forecast, self.lifecycle,
                self.components, self.attention]

    @classmethod
    def from_list(cls, v: list[Any]) -> Reported:
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], v[6] if len(v) > 6 else None)


@dataclass(slots=True)
class AccountState:
    """Everything remembered about one account (bounded; see module docstring)."""

    workspace: str
    account_id: str
    # traits
    name: str | None = None
    plan: str | None = None
    arr: float | None = None
    segment_trait: str | None = None
    renewal_day: int | None = None
    created_day: int | None = None
    owner: str | None = None
    owner_email: str | None = None
    owner_slack_id: str | None = None
    external_ids: dict[str, str] = field(default_factory=dict)
    seats: int | None = None
    # activity
    first_seen: float | None = None
    last_seen: float | None = None
    clock: float = 0.0  # newest event time applied / evaluation time
    days: dict[int, float] = field(default_factory=dict)  # day → weighted points
    core_days: dict[int, int] = field(default_factory=dict)  # day → core events
    advanced_day: int | None = None  # last day an advanced feature was used
    # the year's active days, as :func:`mark_active` keeps them
    year_bits: int = 0
    year_anchor: int | None = None
    users: dict[str, UserSummary] = field(default_factory=dict)
    milestones: dict[str, int] = field(default_factory=dict)  # name → day reached
    # support
    open_tickets: dict[str, int] = field(default_factory=dict)  # ticket id → opened day
    ticket_days: list[int] = field(default_factory=list)  # days tickets were opened (recent)
    resolved_days: list[int] = field(default_factory=list)
    csat: list[list[Any]] = field(default_factory=list)  # [day, score]
    # billing
    payment_failed: list[Any] | None = None  # [day, amount] unresolved failure
    payment_failed_days: list[int] = field(default_factory=list)
    downgrade: list[Any] | None = None  # [day, from_plan, to_plan]
    seat_reduction: list[Any] | None = None  # [day, from, to]
    cancelled_day: int | None = None
    # relationship
    nps: list[list[Any]] = field(default_factory=list)  # [day, score, user_id]
    meetings: list[list[Any]] = field(default_factory=list)  # [day, kind]
    # expansion
    gated: list[list[Any]] = field(default_factory=list)  # [day, feature, user_id]
    upgrade_days: list[list[Any]] = field(default_factory=list)  # [day, what, user_id]
    # assessment memory
    score: int | None = None
    band: str | None = None  # sticky band (hysteresis)
    forecast: str | None = None
    lifecycle: str | None = None
    churned_day: int | None = None
    reactivated_day: int | None = None
    signals: dict[str, SignalState] = field(default_factory=dict)
    history: dict[int, int] = field(default_factory=dict)  # day → score
    reported: Reported | None = None
    seen: dict[int, None] = field(default_factory=dict)
    # a forecast stage waiting to settle before it replaces ``forecast``: [stage, since day]
    forecast_pending: list[Any] | None = None

    def remember(self, h: int, cap: int) -> None:
        _remember(self.seen, h, cap)

    def to_list(self) -> list[Any]:
        return [
            STATE_VERSION,
            self.workspace,
            self.account_id,
            [
                self.name, self.plan, self.arr, self.segment_trait, self.renewal_day,
                self.created_day, self.owner, self.owner_email, self.owner_slack_id,
                self.external_ids, self.seats,
            ],
            [self.first_seen, self.last_seen, self.clock, _flat(self.days),
             _flat(self.core_days), self.advanced_day, self.year_anchor,
             format(self.year_bits, "x")],
            [[uid, s.to_list()] for uid, s in self.users.items()],
            self.milestones,
            [list(self.open_tickets.items()), self.ticket_days, self.resolved_days, self.csat],
            [self.payment_failed, self.payment_failed_days, self.downgrade,
             self.seat_reduction, self.cancelled_day],
            [self.nps, self.meetings, self.gated, self.upgrade_days],
            [self.score, self.band, self.forecast, self.lifecycle, self.churned_day,
             self.reactivated_day],
            [s.to_list() for s in self.signals.values()],
            _flat(self.history),
            None if self.reported is None else self.reported.to_list(),
            _pack_ids(self.seen),
            self.forecast_pending,
        ]

    @classmethod
    def from_list(cls, v: list[Any]) -> AccountState:
        tr, act, sup, bill, rel, asm = v[3], v[4], v[7], v[8], v[9], v[10]
        signals = [SignalState.from_list(s) for s in v[11]]
        return cls(
            workspace=v[1],
            account_id=v[2],
            name=tr[0], plan=tr[1], arr=tr[2], segment_trait=tr[3], renewal_day=tr[4],
            created_day=tr[5], owner=tr[6], owner_email=tr[7], owner_slack_id=tr[8],
            external_ids=tr[9], seats=tr[10],
            first_seen=act[0], last_seen=act[1], clock=act[2], days=_unflat(act[3]),
            core_days=_unflat(act[4]), advanced_day=act[5],
            # written before the year was kept: it starts from the next activity
            year_anchor=act[6] if len(act) > 7 else None,
            year_bits=int(act[7], 16) if len(act) > 7 else 0,
            users={uid: UserSummary.from_list(s) for uid, s in v[5]},
            milestones=v[6],
            open_tickets=dict(sup[0]), ticket_days=sup[1], resolved_days=sup[2], csat=sup[3],
            payment_failed=bill[0], payment_failed_days=bill[1], downgrade=bill[2],
            seat_reduction=bill[3], cancelled_day=bill[4],
            nps=rel[0], meetings=rel[1], gated=rel[2], upgrade_days=rel[3],
            score=asm[0], band=asm[1], forecast=asm[2], lifecycle=asm[3],
            churned_day=asm[4], reactivated_day=asm[5],
            signals={s.key: s for s in signals},
            history=_unflat(v[12]),
            reported=None if v[13] is None else Reported.from_list(v[13]),
            seen=_unpack_ids(v[14]),
            forecast_pending=v[15] if len(v) > 15 else None,
        )

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_list())

    @classmethod
    def from_bytes(cls, raw: bytes) -> AccountState:
        return cls.from_list(orjson.loads(raw))

    def copy(self) -> AccountState:
        """An independent deep copy (via the serialised form)."""
        return AccountState.from_list(orjson.loads(orjson.dumps(self.to_list())))


def shed_users(account: AccountState, max_bytes: int) -> list[str]:
    """Drop user summaries from ``account`` until its serialised form fits in
    ``max_bytes`` (bytes), least recently active first; returns the ids dropped, in order.
    See :func:`encode_within`, which also returns the serialised account."""
    return encode_within(account, max_bytes)[1]


def encode_within(account: AccountState, max_bytes: int) -> tuple[bytes, list[str]]:
    """``account`` serialised to at most ``max_bytes`` where user summaries can make it
    fit, and the ids of the summaries dropped for that, least recently active first.

    Deterministic (last activity, then user id), so that replay and live shed the same
    users. The users' own records are kept: only the account's view of them goes, and a
    user who is active again comes back into it. Stops when no user is left, even if
    the rest (traits, history) is still larger than ``max_bytes``. The usual case, where
    nothing is shed, serialises the account once.
    """
    raw = account.to_bytes()
    if len(raw) <= max_bytes:
        return raw, []
    size = len(raw)
    oldest_first = sorted(
        account.users.items(),
        key=lambda item: (item[1].last_seen if item[1].last_seen is not None else -1.0,
                          item[0]),
    )
    shed: list[str] = []
    for user_id, summary in oldest_first:
        if size <= max_bytes:
            # The sizes below are each user's share of the array; the final size is exact.
            size = len(account.to_bytes())
            if size <= max_bytes:
                break
        size -= len(orjson.dumps([user_id, summary.to_list()])) + 1  # and its comma
        del account.users[user_id]
        shed.append(user_id)
    return account.to_bytes(), shed
