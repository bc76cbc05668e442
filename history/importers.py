"""Import history for replays and backtests: Segment-spec JSON lines (as exported, or as
``telltale simulate`` writes them), CSV files with a column mapping, and outcomes CSV.

Every message becomes a canonical :class:`~streams.events.Event` through the same
Segment normaliser the collector uses, then gets its account the way the live identity
map does it, in one pass in file order: a ``group`` call links its user to the account,
``context.groupId`` attributes a single message, and any other message of a known user
goes to that user's latest account. Messages that cannot be read are counted with their
reason, never fatal.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson

from history.churn import CHURN_TYPES, normalise_reason
from streams.events import Event, EventType, Source
from streams.normalize import (
    NormalizeContext,
    Rejection,
    identity_lenient,
    normalize_segment,
    parse_time_lenient,
)

OUTCOMES = ("renewed", "churned", "contracted")


@dataclass(slots=True)
class ImportReport:
    """What an import read: events kept, and rejected messages by reason.

    ``shared``: when processes read one file side by side, each keeping the messages of
    its own accounts (``keep`` in :func:`segment_events`), what every one of them reads
    in full (group calls, messages of people with no account yet, unreadable lines) is
    counted there, so that :meth:`combined` counts it once. ``read`` counts every line.
    """

    read: int = 0
    kept: int = 0
    unattributed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    shared: ImportReport | None = None

    @classmethod
    def combined(cls, parts: Sequence[ImportReport]) -> ImportReport:
        """One report for a file that ``parts`` read side by side."""
        first = parts[0]
        if first.shared is None:
            return first  # each part read and counted everything
        out = cls(read=first.read, kept=first.shared.kept,
                  unattributed=first.shared.unattributed,
                  rejected=Counter(first.shared.rejected))
        for part in parts:
            out.kept += part.kept
            out.unattributed += part.unattributed
            out.rejected.update(part.rejected)
        return out

    def summary(self) -> str:
        parts = [f"{self.kept:,} events kept of {self.read:,} read"]
        if self.unattributed:
            parts.append(f"{self.unattributed:,} without an account")
        if self.rejected:
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(
                self.rejected.items(), key=lambda item: (-item[1], item[0])))
            parts.append(f"rejected: {reasons}")
        return "; ".join(parts)


class IdentityMap:
    """user → account, learnt from group calls in event order (as the live resolver does)."""

    def __init__(self) -> None:
        self._accounts: dict[str, str] = {}

    def attribute(self, event: Event) -> None:
        """Learn from ``event`` or give it its actor's account, in place: the importer
        calls this on each event it has just built, before anyone else sees it (a copy
        per event would cost a fifth of the import)."""
        actor = event.actor
        if event.account_id is not None:
            if actor is not None and event.type is EventType.GROUP:
                self._accounts[actor] = event.account_id
        elif actor is not None:
            event.account_id = self._accounts.get(actor)

    def account_of(self, user_id: str) -> str | None:
        return self._accounts.get(user_id)

    def account_before(self, payload: Any) -> str | None:
        """The account a Segment message will count for, read from its raw fields before
        it is normalised: ``None`` when that is not known yet (a group call, a person
        with no account, an unusable message). When it names an account, the message
        is either rejected or attributed to that account."""
        if type(payload) is not dict:
            return None
        kind = payload.get("type")
        if not isinstance(kind, str) or kind.lower() == EventType.GROUP.value:
            return None
        context = payload.get("context")
        if type(context) is dict and context.get("groupId") is not None:
            # None for an unusable id too: then every process reads it (and rejects it)
            return identity_lenient(context["groupId"])
        actor = identity_lenient(payload.get("userId"))
        if actor is None:
            actor = identity_lenient(payload.get("anonymousId"))
        return None if actor is None else self._accounts.get(actor)


def open_text(path: Path) -> IO[str]:
    """Open a text file, transparently gunzipping ``*.gz``."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def segment_events(
    messages: Iterable[Any],
    workspace: str = "default",
    report: ImportReport | None = None,
    identities: IdentityMap | None = None,
    keep: Callable[[str], bool] | None = None,
) -> Iterator[Event]:
    """Segment-spec message dicts → resolved canonical events (bad ones are counted).

    ``keep``: only the messages of the accounts it accepts are wanted (one of several
    processes sharing the file). A message whose account is known from its raw fields
    and not kept is skipped without being normalised; the rest are read in full, and
    what is read in full whatever ``keep`` says is counted in ``report.shared``."""
    report = report if report is not None else ImportReport()
    identities = identities if identities is not None else IdentityMap()
    shared = report
    if keep is not None:
        shared = report.shared = report.shared or ImportReport()
    for payload in messages:
        report.read += 1
        tally = report
        if keep is not None:
            account = identities.account_before(payload)
            if account is None:
                tally = shared
            elif not keep(account):
                continue
        received = None
        if isinstance(payload, dict):
            received = parse_time_lenient(payload.get("receivedAt"))
            if received is None:
                received = parse_time_lenient(payload.get("timestamp"))
        ctx = NormalizeContext(workspace, received or 0.0, Source.IMPORT)
        result = normalize_segment(payload, ctx)
        if isinstance(result, Rejection):
            tally.rejected[result.reason] += 1
            continue
        if received is None and result.timestamp == 0.0:
            tally.rejected["bad_timestamp"] += 1
            continue
        identities.attribute(result)
        if result.account_id is None:
            tally.unattributed += 1
        tally.kept += 1
        yield result


def read_jsonl(path: Path, report: ImportReport | None = None) -> Iterator[Any]:
    """JSON lines (``.gz`` too); unreadable lines are counted as ``not_json``."""
    with _open_binary(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                if report is not None:
                    report.read += 1
                    (report.shared or report).rejected["not_json"] += 1


def import_segment_jsonl(
    path: Path, workspace: str = "default", report: ImportReport | None = None,
    keep: Callable[[str], bool] | None = None,
) -> Iterator[Event]:
    """A Segment-spec JSON-lines export → resolved canonical events, in file order
    (``keep``: see :func:`segment_events`)."""
    report = report if report is not None else ImportReport()
    # segment_events sets up report.shared before it reads the first line
    return segment_events(read_jsonl(path, report), workspace, report, keep=keep)


# --------------------------------------------------------------------------- CSV events


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which CSV column holds what. ``properties``: a column of JSON objects, or ``None``
    to take every unmapped column as a property. ``event`` may be absent when every row
    is the same event (``fixed_event``)."""

    user: str = "user_id"
    account: str | None = "account_id"
    event: str | None = "event"
    timestamp: str = "timestamp"
    properties: str | None = None
    fixed_event: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ColumnMapping:
        """``"user=customer,account=company,event=action,timestamp=ts,properties=props"``."""
        known = {"user", "account", "event", "timestamp", "properties", "fixed_event"}
        values: dict[str, str | None] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ValueError(
                    f"column mapping {part!r}: expected one of {sorted(known)} as key=column"
                )
            values[key] = value.strip() or None
        return cls(**values)  # type: ignore[arg-type]


def parse_time_value(value: str) -> float | None:
    """ISO-8601 date or time, or epoch seconds/milliseconds; ``None`` when unreadable."""
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number / 1000.0 if number > 1e11 else number
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def csv_events(
    rows: Iterable[Mapping[str, str]],
    mapping: ColumnMapping,
    workspace: str = "default",
    report: ImportReport | None = None,
    id_prefix: str = "csv",
) -> Iterator[Event]:
    """CSV rows → track events (``message_id`` is ``{id_prefix}-{row number}``)."""
    report = report if report is not None else ImportReport()
    mapped = {mapping.user, mapping.account, mapping.event, mapping.timestamp}
    for number, row in enumerate(rows, start=1):
        report.read += 1
        user = (row.get(mapping.user) or "").strip()
        if not user:
            report.rejected["missing_identity"] += 1
            continue
        name = mapping.fixed_event or (
            (row.get(mapping.event) or "").strip() if mapping.event else ""
        )
        if not name:
            report.rejected["missing_event_name"] += 1
            continue
        ts = parse_time_value(row.get(mapping.timestamp) or "")
        if ts is None:
            report.rejected["bad_timestamp"] += 1
            continue
        account = (row.get(mapping.account) or "").strip() if mapping.account else ""
        properties: dict[str, Any] = {}
        if mapping.properties:
            raw = row.get(mapping.properties) or ""
            if raw.strip():
                try:
                    loaded = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    loaded = None
                if isinstance(loaded, dict):
                    properties = {
                        k: v for k, v in loaded.items()
                        if isinstance(v, str | int | float | bool) or v is None
                    }
        else:
            for key, value in row.items():
                if key in mapped or key is None or value in (None, ""):
                    continue
                properties[key] = _scalar(value)
        report.kept += 1
        yield Event(
            workspace=workspace,
            message_id=f"{id_prefix}-{number}",
            type=EventType.TRACK,
            timestamp=ts,
            received_at=ts,
            source=Source.IMPORT,
            name=name,
            user_id=user,
            account_id=account or user,
            properties=properties,
        )


def _scalar(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def import_csv(
    path: Path, mapping: ColumnMapping, workspace: str = "default",
    report: ImportReport | None = None,
) -> Iterator[Event]:
    """A CSV file with a header row → events in time order (rows without an account: the
    user is the account, which suits one-person customers such as consumer purchases).
    CSV exports are often grouped by user or account, so the rows are sorted by time
    (stable: rows with the same time keep their file order) before replay."""
    with open_text(path) as fh:
        events = list(csv_events(csv.DictReader(fh), mapping, workspace, report, path.stem))
    events.sort(key=_event_time)
    yield from events


def _event_time(event: Event) -> float:
    return event.timestamp


def import_events(
    path: Path, workspace: str = "default", mapping: ColumnMapping | None = None,
    report: ImportReport | None = None, keep: Callable[[str], bool] | None = None,
) -> Iterator[Event]:
    """By file name: ``*.csv[.gz]`` with ``mapping``, anything else as JSON lines.
    ``keep`` lets JSON lines skip other accounts' messages early (see
    :func:`segment_events`); a CSV file is read whole (its rows are sorted first)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".csv"):
        return import_csv(path, mapping or ColumnMapping(), workspace, report)
    return import_segment_jsonl(path, workspace, report, keep)


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """What happened to one account at a date: renewed, churned or contracted.

    ``arr`` is the annual revenue at stake (before the outcome); ``new_arr`` after it when
    known (0 for a churn, lower for a contraction, higher for an expansion).
    """

    account_id: str
    date: date
    outcome: str
    arr: float
    new_arr: float | None = None
    segment: str | None = None
    churn_type: str | None = None  # voluntary | involuntary | downgrade, when the file says
    churn_reason: str | None = None  # normalised (see history.churn), when the file says

    @property
    def churned(self) -> bool:
        return self.outcome == "churned"

    @property
    def epoch(self) -> float:
        return datetime(self.date.year, self.date.month, self.date.day, tzinfo=UTC).timestamp()

    @property
    def arr_after(self) -> float:
        if self.new_arr is not None:
            return self.new_arr
        return 0.0 if self.churned else self.arr


class OutcomesError(ValueError):
    """The outcomes file cannot be used; the message lists each bad row."""


_ACCOUNT_COLUMNS = ("account_id", "account", "group_id", "company")
_DATE_COLUMNS = ("date", "renewal_date", "end_date", "outcome_date")


def read_outcomes(source: Path | Iterable[Mapping[str, str]]) -> list[OutcomeRecord]:
    """Outcomes CSV: account (``account_id``/``account``), date (``date``/``renewal_date``/
    ``end_date``), ``outcome`` (renewed/churned/contracted), ``arr``, optional
    ``new_arr`` and ``segment``. Raises :class:`OutcomesError` listing every bad row."""
    if isinstance(source, Path):
        with open_text(source) as fh:
            return read_outcomes(list(csv.DictReader(fh)))
    records: list[OutcomeRecord] = []
    problems: list[str] = []
    for line, row in enumerate(source, start=2):
        account = _first(row, _ACCOUNT_COLUMNS)
        day = _first(row, _DATE_COLUMNS)
        outcome = (row.get("outcome") or "").strip().lower()
        if not account:
            problems.append(f"row {line}: no account id")
            continue
        try:
            when = date.fromisoformat(day[:10])
        except ValueError:
            problems.append(f"row {line}: date {day!r} is not YYYY-MM-DD")
            continue
        if outcome not in OUTCOMES:
            problems.append(f"row {line}: outcome {outcome!r} is not one of {OUTCOMES}")
            continue
        try:
            arr = float(row.get("arr") or 0.0)
            new_raw = (row.get("new_arr") or "").strip()
            new_arr = float(new_raw) if new_raw else None
        except ValueError:
            problems.append(f"row {line}: arr/new_arr must be numbers")
            continue
        churn_type = (row.get("churn_type") or "").strip().lower() or None
        if churn_type is not None and churn_type not in CHURN_TYPES:
            problems.append(f"row {line}: churn_type {churn_type!r} is not one of "
                            f"{CHURN_TYPES}")
            continue
        reason = (row.get("churn_reason") or "").strip()
        records.append(OutcomeRecord(
            account_id=account, date=when, outcome=outcome, arr=arr, new_arr=new_arr,
            segment=(row.get("segment") or "").strip() or None,
            churn_type=churn_type,
            churn_reason=normalise_reason(reason) if reason else None,
        ))
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise OutcomesError(f"outcomes: {len(problems)} bad row(s):\n{shown}{more}")
    return records


def _first(row: Mapping[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = row.get(name)
        if value and value.strip():
            return value.strip()
    return ""
