"""Apply events to the aggregates: the per-event hot path.

Kept deliberately flat and allocation-light (the target is hundreds of thousands of events
per second per core): each event touches a handful of dict entries; scores are not
computed here but once per batch in :mod:`scoring.assess`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any
from zlib import adler32, crc32

from scoring import vocabulary as v
from scoring.config import ScoringConfig
from state.aggregates import DAY, AccountState, UserState, UserSummary, mark_active
from streams.events import Event, EventType
from streams.identifiers import EXTERNAL_IDS, external_id, is_email, is_slack_user_id

_TRACK = EventType.TRACK
_PAGE = EventType.PAGE
_SCREEN = EventType.SCREEN
_IDENTIFY = EventType.IDENTIFY
_GROUP = EventType.GROUP
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


_MAX_NUMBER = 1e15  # beyond any seat count or amount; keeps state within 64-bit JSON


def _num(value: Any) -> float | None:
    """A finite number from a JSON value ("1,200" included); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.replace(",", "").strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or abs(number) > _MAX_NUMBER:
        return None
    return number


def parse_day(value: Any) -> int | None:
    """Epoch day of an ISO date / date-time string or epoch seconds; None when unparseable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = _num(value)
        if number is None:
            return None
        # Epoch milliseconds are common in CRMs; anything past year 5000 in seconds is ms.
        secs = number / 1000.0 if number > 1e11 else number
        return int(secs // DAY)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() // DAY)
    return None


def _push(lst: list[Any], item: Any, cap: int) -> None:
    lst.append(item)
    if len(lst) > cap:
        del lst[: len(lst) - cap]


class _Rules:
    """Per-config lookup tables, built once per config (cached on the config id)."""

    __slots__ = ("activity", "cap", "milestone_by_event", "pages", "plain", "unknown",
                 "unknown_rule")

    def __init__(self, config: ScoringConfig) -> None:
        self.activity: dict[str, tuple[float, bool, bool]] = {
            name: (float(r.weight), r.core, r.advanced) for name, r in config.events.items()
        }
        self.unknown = float(config.unknown_event_weight)
        self.unknown_rule = (self.unknown, False, False)
        self.pages = frozenset(config.expansion.upgrade_pages)
        self.milestone_by_event: dict[str, list[str]] = {}
        for ms in config.milestones:
            self.milestone_by_event.setdefault(ms.event, []).append(ms.name)
        self.cap = config.limits.recent_records
        # Track events that are activity and nothing else (no record to keep, no
        # milestone): the common case, weighed with one lookup.
        special = {v.FEATURE_GATED_CLICKED, v.UPGRADE_PAGE_VIEWED, v.HIGHER_TIER_ASKED,
                   *self.milestone_by_event}
        self.plain: dict[str, tuple[float, bool, bool]] = {
            name: rule for name, rule in self.activity.items()
            if rule[0] > 0.0 and name not in special
        }


_RULES_CACHE: dict[int, tuple[ScoringConfig, _Rules]] = {}


def rules_for(config: ScoringConfig) -> _Rules:
    hit = _RULES_CACHE.get(id(config))
    if hit is not None and hit[0] is config:
        return hit[1]
    rules = _Rules(config)
    if len(_RULES_CACHE) > 32:
        _RULES_CACHE.clear()
    _RULES_CACHE[id(config)] = (config, rules)
    return rules


#: (timestamp, message id): the order events are applied in (C-level, no call per event).
_sort_key = attrgetter("timestamp", "message_id")


def _in_order(events: Sequence[Event], skipped: list[str] | None) -> list[Event]:
    """``events`` in (timestamp, message id) order; events without a usable timestamp or
    message id are left out (and named in ``skipped``)."""
    try:
        return sorted(events, key=_sort_key) if len(events) > 1 else list(events)
    except TypeError:
        ordered = []
        for e in events:
            if isinstance(e.timestamp, int | float) and isinstance(e.message_id, str):
                ordered.append(e)
            elif skipped is not None:
                skipped.append(f"{e.message_id!r}: no usable timestamp or message id")
        ordered.sort(key=_sort_key)
        return ordered


def apply_events(
    account: AccountState,
    users: dict[str, UserState],
    events: Sequence[Event],
    now: float,
    config: ScoringConfig,
    skipped: list[str] | None = None,
) -> set[str]:
    """Apply ``events`` (one account's, any order) to ``account`` and ``users`` in place.

    Events are applied in (timestamp, message id) order so every batch grouping gives
    the same state; an event whose message id was already applied is skipped. Events
    stamped after ``now`` count at ``now``; events older than the window only move
    first/last-seen. ``users`` gains new :class:`UserState` records as needed. Returns the
    ids of users whose state changed. A malformed event is skipped (its message id and
    the reason are appended to ``skipped``), never raised: one bad event must not stop
    the account's other events.

    Per event: it is deduplicated, weighed as activity or applied
    as a record (:func:`_weigh_track`, :func:`_weigh_page`, :func:`_on_identify`,
    :func:`_on_group`, :func:`_apply_account_event`), and activity is counted for the
    account here and for its user (:func:`_count_for_user`). Kept flat where it runs for
    every event: this is the hot path.
    """
    if not events:
        return set()
    rules = rules_for(config)
    limits = config.limits
    cutoff = int(now // DAY) - limits.window_days - 1
    plain = rules.plain
    user_cap = limits.recent_ids_per_user
    acc_cap = limits.recent_ids_per_account
    acc_seen = account.seen
    summaries = account.users
    acc_days = account.days
    acc_core = account.core_days
    # per batch: user id -> [state, summary or None, applied anything]; one lookup per event
    touched: dict[str, list[Any]] = {}
    clock = account.clock
    first_act: float | None = None
    last_act: float | None = None
    for e in _in_order(events, skipped):
        try:
            ts = e.timestamp
            if ts > now:
                ts = now
            day = int(ts // DAY)
            # --- the event's user (state and summary, looked up once per batch), and
            # deduplication: a message id its user (or, without a user, the account)
            # has seen before is skipped; recent ids are kept within limits
            uid = e.user_id
            raw = e.message_id.encode()
            h = crc32(raw) | (adler32(raw) << 32)  # == state.aggregates.id_hash, inlined
            entry: list[Any] | None
            if uid is not None:
                entry = touched.get(uid)
                if entry is None:
                    entry = touched[uid] = _entry(account, users, uid)
                user = entry[0]
                seen = user.seen
                if h in seen:
                    continue
                entry[2] = True
                seen[h] = None
                if len(seen) > user_cap:
                    del seen[next(iter(seen))]
                user.events += 1
            else:
                entry = None
                if h in acc_seen:
                    continue
                acc_seen[h] = None
                if len(acc_seen) > acc_cap:
                    del acc_seen[next(iter(acc_seen))]
            if ts > clock:
                clock = ts
            etype = e.type
            if etype is _TRACK:
                rule = plain.get(e.name)  # type: ignore[arg-type]
                if rule is None:
                    rule = _weigh_track(account, e, day, rules, limits)
            elif etype is _PAGE or etype is _SCREEN:
                rule = _weigh_page(account, e, day, rules)
            elif etype is _IDENTIFY:
                _on_identify(account, e, entry)
                continue
            elif etype is _GROUP:
                _on_group(account, e, day, entry, rules, skipped)
                continue
            else:
                continue
            if rule is None:
                continue
            weight, core, advanced = rule
            # --- activity: the account's windows, then its user's
            if last_act is None or ts > last_act:
                last_act = ts
            if first_act is None or ts < first_act:
                first_act = ts
            if advanced and (account.advanced_day is None or day > account.advanced_day):
                account.advanced_day = day
            if day != account.year_anchor:
                account.year_bits, account.year_anchor = mark_active(
                    account.year_bits, account.year_anchor, day)
            if day <= cutoff:  # older than the windows: only first/last seen move
                if entry is not None:
                    _seen_long_ago(entry[0], ts)
                continue
            if day in acc_days:
                acc_days[day] += weight
            else:
                acc_days[day] = weight
            if core:
                acc_core[day] = acc_core.get(day, 0) + 1
            if entry is not None:
                _count_for_user(summaries, entry, ts, day, weight, core)
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError,
                IndexError) as exc:
            if skipped is not None:
                skipped.append(f"{getattr(e, 'message_id', '?')}: {type(exc).__name__}: {exc}")
    account.clock = clock
    if last_act is not None and (account.last_seen is None or last_act > account.last_seen):
        account.last_seen = last_act
    if first_act is not None and (account.first_seen is None or first_act < account.first_seen):
        account.first_seen = first_act
    return {uid for uid, entry in touched.items() if entry[2]}


def _entry(account: AccountState, users: dict[str, UserState], uid: str) -> list[Any]:
    """A user's entry for one batch: [state (created if new), summary or None, applied
    anything]."""
    found = users.get(uid)
    if found is None:
        found = UserState(uid, account.account_id)
        users[uid] = found
    return [found, account.users.get(uid), False]


def _seen_long_ago(user: UserState, ts: float) -> None:
    """Activity older than the windows: it only moves when the user was first seen (and
    last seen, if never before)."""
    if user.first_seen is None or ts < user.first_seen:
        user.first_seen = ts
    if user.last_seen is None:
        user.last_seen = ts


def _weigh_track(account: AccountState, e: Event, day: int, rules: _Rules,
                 limits: Any) -> tuple[float, bool, bool] | None:
    """(weight, core, advanced) of a track event, None when it is no activity. Expansion
    clicks and onboarding milestones are recorded; billing, support and relationship
    events are applied to the account instead."""
    name = e.name
    if name is None:
        return None
    rule = rules.activity.get(name)
    if rule is not None:
        if name == v.FEATURE_GATED_CLICKED:
            feature = e.properties.get(v.FEATURE)
            _push(account.gated, [day, feature if isinstance(feature, str) else None,
                                  e.user_id], rules.cap)
        elif name == v.UPGRADE_PAGE_VIEWED or name == v.HIGHER_TIER_ASKED:
            _push(account.upgrade_days, [day, name, e.user_id], rules.cap)
    elif name in v.NON_ACTIVITY:
        _apply_account_event(account, name, e.properties, day, e.user_id, rules.cap, limits)
        return None
    else:
        rule = rules.unknown_rule
    ms = rules.milestone_by_event.get(name)
    if ms is not None:
        milestones = account.milestones
        for m in ms:
            if m not in milestones or milestones[m] > day:
                milestones[m] = day
    return rule if rule[0] > 0.0 else None


def _weigh_page(account: AccountState, e: Event, day: int,
                rules: _Rules) -> tuple[float, bool, bool] | None:
    """(weight, core, advanced) of a page or screen view; an upgrade page is recorded."""
    name = e.name
    if name is None:
        rule = rules.unknown_rule
    else:
        if name in rules.pages:
            _push(account.upgrade_days, [day, "page:" + name, e.user_id], rules.cap)
        rule = rules.activity.get(name, rules.unknown_rule)
    return rule if rule[0] > 0.0 else None


def _on_identify(account: AccountState, e: Event, entry: list[Any] | None) -> None:
    if entry is not None and e.traits:
        _identify(account, entry[0], e.traits)
        entry[1] = account.users.get(entry[0].user_id)


def _on_group(account: AccountState, e: Event, day: int, entry: list[Any] | None,
              rules: _Rules, skipped: list[str] | None) -> None:
    """Group traits; the user who sent them is counted in the account from now on."""
    if e.traits:
        dropped = _group_traits(account, e.traits, day, rules.cap)
        if dropped and skipped is not None:
            skipped.extend(f"{e.message_id}: {why}" for why in dropped)
    if entry is not None and entry[1] is None:
        user = entry[0]
        summary = account.users.get(user.user_id)
        if summary is None:
            summary = UserSummary(name=user.name, email=user.email)
            account.users[user.user_id] = summary
        entry[1] = summary


def _count_for_user(summaries: dict[str, UserSummary], entry: list[Any], ts: float, day: int,
                    weight: float, core: bool) -> None:
    """One activity event in its user's windows and in the account's summary of them."""
    user: UserState = entry[0]
    wk = (day + 3) // 7
    udays = user.days
    if day in udays:
        udays[day] += weight
    else:
        udays[day] = weight
        user.active_days += 1
    if user.last_seen is None or ts > user.last_seen:
        user.last_seen = ts
    if user.first_seen is None or ts < user.first_seen:
        user.first_seen = ts
    if core:
        user.core_weeks[wk] = user.core_weeks.get(wk, 0) + 1
    sm = entry[1]
    if sm is None:
        sm = summaries.get(user.user_id)
        if sm is None:
            sm = UserSummary(name=user.name, email=user.email)
            summaries[user.user_id] = sm
        entry[1] = sm
    if sm.last_day != day:
        sm.touch(day)
    if sm.last_seen is None or ts > sm.last_seen:
        sm.last_seen = ts
    weeks = sm.weeks
    if wk in weeks:
        weeks[wk] += weight
    else:
        weeks[wk] = weight


def _identify(account: AccountState, user: UserState, traits: dict[str, Any]) -> None:
    name = traits.get("name")
    if not isinstance(name, str):
        first, last = traits.get("firstName") or traits.get("first_name"), traits.get(
            "lastName"
        ) or traits.get("last_name")
        if isinstance(first, str):
            name = f"{first} {last}" if isinstance(last, str) else first
    email = traits.get("email")
    role = traits.get("role")
    if isinstance(name, str) and name:
        user.name = name
    if isinstance(email, str) and email:
        user.email = email
    if isinstance(role, str) and role:
        user.role = role
    s = account.users.get(user.user_id)
    if s is None:
        s = UserSummary()
        account.users[user.user_id] = s
    s.name = user.name
    s.email = user.email


def _group_traits(account: AccountState, traits: dict[str, Any], day: int,
                  cap: int) -> list[str]:
    """Apply group traits; returns why each trait that was dropped was dropped."""
    dropped: list[str] = []
    for key, value in traits.items():
        if value is None:
            continue
        if key == "name" and isinstance(value, str):
            account.name = value
        elif key == "seats":
            seats = _num(value)
            if seats is not None and seats >= 0:
                _set_seats(account, int(seats), day)
        elif key == "plan" and isinstance(value, str):
            account.plan = value
        elif key == "arr":
            arr = _num(value)
            if arr is not None and arr >= 0:
                account.arr = arr
        elif key == "segment" and isinstance(value, str):
            seg = value.strip().lower().replace("-", "_").replace(" ", "_")
            account.segment_trait = "mid_market" if seg in ("mid_market", "midmarket") else seg
        elif key == "renewal_date":
            d = parse_day(value)
            if d is not None:
                if (account.cancelled_day is not None and account.renewal_day is not None
                        and d > account.renewal_day and day > account.cancelled_day):
                    account.cancelled_day = None  # a new term after cancelling: renewed
                account.renewal_day = d
        elif key == "created_at":
            d = parse_day(value)
            if d is not None:
                account.created_day = d
        elif key == "owner" and isinstance(value, str):
            account.owner = value
        elif key in _OWNER_CONTACTS:
            # Ids and addresses end up in CRM URLs and Slack mentions: a value that is not
            # strictly one is dropped here (the one already known stays), never stored.
            valid, what = _OWNER_CONTACTS[key]
            if valid(value):
                setattr(account, key, value)
            else:
                dropped.append(f"group trait {key} dropped: {_shown(value)} is not {what}")
        elif key in EXTERNAL_IDS:
            record_id = external_id(key, value)
            if record_id is not None:
                account.external_ids[key] = record_id
            else:
                dropped.append(f"group trait {key} dropped: {_shown(value)} is "
                               f"{EXTERNAL_IDS[key][1]}")
    return dropped


#: Group traits naming the owner's contact: (the check a value must pass, what it must be).
_OWNER_CONTACTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "owner_email": (is_email, "an email address"),
    "owner_slack_id": (is_slack_user_id, "a Slack user id"),
}


def _shown(value: Any) -> str:
    """A dropped value as a reason shows it: a string quoted and cut to 40 characters, any
    other value by its type only (the repr of deep nesting can itself fail)."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:39] + "…")
    return f"a {type(value).__name__}"


def _set_seats(account: AccountState, seats: int, day: int, previous: int | None = None) -> None:
    before = previous if previous is not None else account.seats
    if before is not None and seats < before:
        account.seat_reduction = [day, before, seats]
    account.seats = seats


def _apply_account_event(
    account: AccountState,
    name: str,
    props: dict[str, Any],
    day: int,
    uid: str | None,
    cap: int,
    limits: Any,
) -> None:
    if name == v.TICKET_OPENED:
        tid = props.get(v.TICKET_ID)
        key = str(tid) if tid is not None else f"day{day}-{len(account.ticket_days)}"
        if key not in account.open_tickets and len(account.open_tickets) < limits.max_open_tickets:
            account.open_tickets[key] = day
        _push(account.ticket_days, day, cap * 2)
    elif name == v.TICKET_RESOLVED:
        tid = props.get(v.TICKET_ID)
        if tid is not None and account.open_tickets.pop(str(tid), None) is not None:
            _push(account.resolved_days, day, cap * 2)
    elif name == v.CSAT_SUBMITTED:
        score = _num(props.get(v.SCORE))
        if score is not None and 1 <= score <= 5:
            _push(account.csat, [day, score], cap)
    elif name == v.PAYMENT_FAILED:
        amount = _num(props.get(v.AMOUNT))
        if account.payment_failed is None:
            account.payment_failed = [day, amount]
        else:
            account.payment_failed[1] = amount
        _push(account.payment_failed_days, day, cap)
    elif name == v.PAYMENT_SUCCEEDED:
        account.payment_failed = None  # (a final invoice paid after cancelling is no renewal)
    elif name == v.PLAN_DOWNGRADED:
        to_plan = props.get(v.TO_PLAN)
        from_plan = props.get(v.FROM_PLAN)
        account.downgrade = [
            day,
            from_plan if isinstance(from_plan, str) else account.plan,
            to_plan if isinstance(to_plan, str) else None,
        ]
        if isinstance(to_plan, str):
            account.plan = to_plan
    elif name == v.SEATS_CHANGED:
        seats = _num(props.get(v.SEATS))
        prev = _num(props.get(v.PREVIOUS_SEATS))
        if seats is not None and seats >= 0:
            _set_seats(account, int(seats), day, None if prev is None else int(prev))
            if seats > 0 and account.cancelled_day is not None and day > account.cancelled_day:
                account.cancelled_day = None  # seats bought again: subscribed again
    elif name == v.SUBSCRIPTION_CANCELLED:
        account.cancelled_day = day
    elif name == v.NPS_SUBMITTED:
        score = _num(props.get(v.SCORE))
        if score is not None and 0 <= score <= 10:
            _push(account.nps, [day, int(score), uid], cap)
    elif name in v.MEETING_KINDS:
        _push(account.meetings, [day, v.MEETING_KINDS[name]], cap)
