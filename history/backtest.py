"""Backtest: replay a history through the same scoring core that runs live and check how
well the score, taken some days before each renewal or churn, predicted what happened.

The replay is :class:`scoring.replay.Replay` (event time, daily grid by default, no
Kafka). For every account with an outcome and every horizon ``h`` (default 90, 60 and 30
days), the account is assessed as it stood at midnight UTC ``h`` days before its outcome
date, from the events before that moment only. Accounts whose history starts after that
moment are left out of that horizon.

Beside the score, on the same accounts at the same moments, sit simple baselines
computed from the same replayed events (a product-usage event is a page view or a track
event that counts as activity, as the score counts it): days since the last product-usage
event, product-usage events in the last 7 and 30 days, days with product usage in the
last 14 and 30 days, the share of licensed seats active in the last 30 days and logins per
seat in the last 30 days. A baseline that ranks every account alike at a horizon (no seat
counts, no ``Logged In`` events) is reported as not computable there, never as an AUC of
0.500. The best baseline at each horizon is compared with the score, with a bootstrap
interval on the differences (:func:`history.evaluation.paired_bootstrap`).

Accounts never affect each other, so :func:`replay_history` can split them over
``jobs`` processes (by a hash of the account id). Each process reads the whole history
(identity resolution needs every group call, in order), but only decodes a JSON line
in full when its account is its own or not known yet, and replays only its own
accounts; the merged result is identical to a single process's.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import statistics
import sys
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zlib import crc32

from history.churn import CHURN_TYPES, ChurnEvidence
from history.evaluation import (
    ProfitParams,
    capture_curve,
    evaluate_ranking,
    paired_bootstrap,
    rate_by_group,
    rate_by_quantile,
    roc_auc,
)
from history.importers import (
    ColumnMapping,
    ImportReport,
    OutcomeRecord,
    import_events,
    read_outcomes,
)
from history.report import ALL_ALIKE, NO_LOGINS, ONE_SEAT
from scoring.config import ScoringConfig, load_config
from scoring.replay import Replay
from scoring.vocabulary import NON_ACTIVITY
from state.aggregates import DAY, SignalState
from streams.events import Event, EventType

DEFAULT_HORIZONS = (90, 60, 30)
BANDS = ("healthy", "watch", "at_risk")
BASELINE_WINDOW_DAYS = 30
LOGIN_EVENT = "Logged In"


@dataclass(frozen=True, slots=True)
class Usage:
    """Product usage of one account before a moment, for the baselines: days since the
    last product-usage day (``None``: none yet), events in the last 7 and 30 days, and
    days with usage in the last 14 and 30."""

    days_since_active: int | None
    events_7d: int
    events_30d: int
    active_days_14d: int
    active_days_30d: int
    #: product-usage events of the scoring config's vocabulary in the last 30 days, by
    #: name (what calibration weighs the events by); not in the JSON
    by_event_30d: tuple[tuple[str, int], ...] = ()


@dataclass(slots=True)
class Snapshot:
    """One account assessed ``horizon_days`` before its outcome."""

    account_id: str
    horizon_days: int
    at: float
    score: int
    band: str
    components: dict[str, dict[str, Any]]
    signals: list[str]
    active_users_30d: int
    logins_30d: int
    seats: int
    arr: float
    outcome: str
    outcome_date: str
    segment: str | None
    usage: Usage = field(default_factory=lambda: Usage(None, 0, 0, 0, 0))
    signals_since: dict[str, float] = field(default_factory=dict)  # type → earliest start
    churn_type: str | None = None  # see history.churn; learnt after the fact, a label only
    churn_reason: str | None = None
    #: the segment the score weighed the account as (``segment`` may be the outcome
    #: file's); what calibration fits a segment's own weights on; not in the JSON
    scored_segment: str | None = None

    @property
    def churned(self) -> bool:
        return self.outcome == "churned"

    @property
    def key(self) -> tuple[str, str, int]:
        """Which assessment this is: an account renewing every year has an outcome (and
        so a snapshot per horizon) for each renewal."""
        return self.account_id, self.outcome_date, self.horizon_days

    @property
    def active_share(self) -> float:
        return self.active_users_30d / max(1, self.seats)

    @property
    def logins_per_seat(self) -> float:
        return self.logins_30d / max(1, self.seats)

    def fraction(self, component: str) -> float:
        """Share (0-1) of the component's weight the account earned; of a component
        weighing nothing, the share it would earn (what calibration may give weight)."""
        c = self.components.get(component)
        if not c:
            return 0.0
        if not c.get("weight"):
            return float(c.get("share") or 0.0)
        return max(0.0, min(1.0, c["points"] / c["weight"]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "horizon_days": self.horizon_days,
            "at": datetime.fromtimestamp(self.at, tz=UTC).date().isoformat(),
            "score": self.score,
            "band": self.band,
            "components": self.components,
            "signals": self.signals,
            "active_users_30d": self.active_users_30d,
            "logins_30d": self.logins_30d,
            "seats": self.seats,
            "arr": self.arr,
            "outcome": self.outcome,
            "outcome_date": self.outcome_date,
            "segment": self.segment,
            "signals_since": {t: datetime.fromtimestamp(v, tz=UTC).date().isoformat()
                              for t, v in sorted(self.signals_since.items())},
            "churn_type": self.churn_type,
            "churn_reason": self.churn_reason,
            "days_since_active": self.usage.days_since_active,
            "events_7d": self.usage.events_7d,
            "events_30d": self.usage.events_30d,
            "active_days_14d": self.usage.active_days_14d,
            "active_days_30d": self.usage.active_days_30d,
        }


class _BaselineTracker:
    """Per account: each user's last product-usage day, product-usage events and logins
    per day, and seats — everything the baselines need, from the same events the
    replay sees."""

    def __init__(self, config: ScoringConfig) -> None:
        self.rules = {name: rule.family == "adoption" for name, rule in config.events.items()}
        self.unknown_counts = config.unknown_event_weight > 0
        self.last_active: dict[str, dict[str, int]] = defaultdict(dict)
        self.usage: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.last_day: dict[str, int] = {}
        self.logins: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.seats: dict[str, int] = {}
        self.users_seen: dict[str, set[str]] = defaultdict(set)
        # (day, event name) → count, for the named events of the vocabulary
        self.named: dict[str, dict[tuple[int, str], int]] = defaultdict(
            lambda: defaultdict(int))

    def is_usage(self, e: Event) -> bool:
        """Whether the event is product usage: what the score counts as activity, less
        the expansion-intent family."""
        if e.type is EventType.PAGE or e.type is EventType.SCREEN:
            return True
        if e.type is not EventType.TRACK or e.name is None:
            return False
        adoption = self.rules.get(e.name)
        if adoption is not None:
            return adoption
        return self.unknown_counts and e.name not in NON_ACTIVITY

    def add(self, e: Event) -> None:
        account = e.account_id
        if account is None:
            return
        etype = e.type
        if etype is EventType.GROUP:
            seats = e.traits.get("seats")
            if isinstance(seats, int | float) and not isinstance(seats, bool) and seats > 0:
                self.seats[account] = int(seats)
            return
        if not self.is_usage(e):
            return
        day = int(e.timestamp // DAY)
        per_day = self.usage[account]
        per_day[day] += 1
        if len(per_day) > 2 * BASELINE_WINDOW_DAYS:  # keep the per-day map bounded
            for d in [d for d in per_day if d <= day - BASELINE_WINDOW_DAYS - 1]:
                del per_day[d]
        self.last_day[account] = max(day, self.last_day.get(account, day))
        if e.name is not None and e.name in self.rules:
            named = self.named[account]
            named[(day, e.name)] += 1
            if len(named) > 4 * BASELINE_WINDOW_DAYS * max(1, len(self.rules)):
                for key in [k for k in named if k[0] <= day - BASELINE_WINDOW_DAYS - 1]:
                    del named[key]
        user = e.user_id or e.anonymous_id
        if user is None:
            return
        self.last_active[account][user] = day
        self.users_seen[account].add(user)
        if e.name == LOGIN_EVENT:
            self.logins[account][day] += 1

    def forget(self, account: str) -> None:
        for table in (self.last_active, self.usage, self.last_day, self.logins, self.seats,
                      self.users_seen, self.named):
            table.pop(account, None)

    def measure(self, account: str, at: float) -> tuple[int, int, int, Usage]:
        """(active users, logins, seats, usage) over the days before ``at``'s day."""
        today = int(at // DAY)
        since = today - BASELINE_WINDOW_DAYS
        active = sum(1 for d in self.last_active.get(account, {}).values() if since <= d < today)
        per_day = self.logins.get(account, {})
        logins = sum(n for d, n in per_day.items() if since <= d < today)
        if len(per_day) > 2 * BASELINE_WINDOW_DAYS:
            for d in [d for d in per_day if d < since]:
                del per_day[d]
        seats = self.seats.get(account) or max(1, len(self.users_seen.get(account, ())))
        usage = self.usage.get(account, {})
        days = [(d, n) for d, n in usage.items() if since <= d < today]
        last = self.last_day.get(account)
        if last is not None and last >= today:  # an event at the very moment: not before it
            last = max((d for d in usage if d < today), default=None)
        by_event: dict[str, int] = defaultdict(int)
        for (d, name), n in self.named.get(account, {}).items():
            if since <= d < today:
                by_event[name] += n
        return active, logins, seats, Usage(
            days_since_active=None if last is None else today - last,
            events_7d=sum(n for d, n in days if d >= today - 7),
            events_30d=sum(n for _, n in days),
            active_days_14d=sum(1 for d, _ in days if d >= today - 14),
            active_days_30d=len(days),
            by_event_30d=tuple(sorted(by_event.items())),
        )


class Progress:
    """A one-line progress bar on stderr (only redrawn a few times a second)."""

    def __init__(self, stream: TextIO | None = sys.stderr, label: str = "replay") -> None:
        self.stream = stream
        self.label = label
        self._last = 0.0
        self._started = time.perf_counter()

    def update(self, fraction: float, events: int, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        fraction = max(0.0, min(1.0, fraction))
        filled = int(fraction * 30)
        rate = events / max(now - self._started, 1e-9)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} "
            f"{events:,} events {rate:,.0f}/s"
        )
        self.stream.flush()

    def done(self, events: int) -> None:
        if self.stream is None:
            return
        self.update(1.0, events, force=True)
        self.stream.write("\n")
        self.stream.flush()


@dataclass(slots=True)
class ReplayRun:
    snapshots: list[Snapshot]
    events: int
    seconds: float
    replay_seconds: float
    first_event: float | None
    last_event: float | None
    changes: int
    workspaces: list[str] = field(default_factory=list)
    steps: int = 0  # account evaluations the replay made (the cost of a backtest)
    cpu_seconds: float = 0.0  # processor time of the replay, summed over its processes
    peak_rss_mib: float = 0.0  # the largest resident memory of any replaying process


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (0 where it cannot be read)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return 0.0
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS


@dataclass(frozen=True, slots=True)
class Shard:
    """The accounts whose id hashes (CRC-32) to ``index`` modulo ``count``."""

    index: int
    count: int

    def owns(self, account_id: str) -> bool:
        return crc32(account_id.encode()) % self.count == self.index


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Let the cyclic garbage collector wait for 20,000 new objects instead of 700.

    A replay makes millions of short-lived events while it keeps every account's state
    alive, so at the default threshold each young collection also re-examines state
    that is still in use. Nothing in a replay makes reference cycles worth collecting
    sooner: this takes about a tenth off a backtest, at the same peak memory."""
    before = gc.get_threshold()
    gc.set_threshold(20_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@_fewer_collections()
def replay_snapshots(
    events: Iterable[Event],
    outcomes: Sequence[OutcomeRecord],
    config: ScoringConfig,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    interval_days: float = 1.0,
    progress: Progress | None = None,
    shard: Shard | None = None,
) -> ReplayRun:
    """Replay ``events`` (in time order) and assess each outcome's account at each horizon.

    With ``shard``, only that shard's accounts are replayed and assessed (every event is
    still read and counted). Only accounts with an outcome are replayed, and each only
    until its last assessment: nothing else is ever read, and accounts never affect each
    other, so a portfolio of short-lived accounts costs its accounts' lifetimes rather
    than accounts × the whole history's days."""
    if shard is not None:
        outcomes = [o for o in outcomes if shard.owns(o.account_id)]
    replay = Replay(config=config, interval=interval_days * DAY, keep_changes=False)
    baseline = _BaselineTracker(config)
    evidence = ChurnEvidence()
    with_outcome = {o.account_id for o in outcomes}
    # one request per outcome and horizon: an account has an outcome per renewal
    requests = sorted(
        (o.epoch - h * DAY, h, o.account_id, i) for i, o in enumerate(outcomes)
        for h in horizons
    )
    times = [r[0] for r in requests]
    # assessments still to come per account; an account leaves when it reaches none
    remaining: dict[str, int] = defaultdict(int)
    for _, _, account, _ in requests:
        remaining[account] += 1
    span_end = times[-1] if times else None
    next_i = 0
    workspace: str | None = None
    workspaces: set[str] = set()
    snapshots: list[Snapshot] = []
    judged: list[OutcomeRecord] = []  # each snapshot's outcome
    first: float | None = None
    last: float | None = None
    count = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    replay_time = 0.0
    feed = replay.feed
    add = baseline.add
    chunk: list[Event] = []

    def take(until_index: int) -> None:
        nonlocal next_i, replay_time
        while next_i < until_index:
            at, horizon, account, index = requests[next_i]
            next_i += 1
            o = outcomes[index]
            ws = workspace if workspace is not None else "default"
            t0 = time.perf_counter()
            replay.advance_to(at)
            assessment = replay.assess_at(ws, account, at)
            replay_time += time.perf_counter() - t0
            left = remaining[account] = remaining[account] - 1
            # None: no history for this account yet at that moment
            measured = None if assessment is None else baseline.measure(account, at)
            if not left:
                del remaining[account]
                replay.forget(ws, account)
                baseline.forget(account)
            if assessment is None or measured is None:
                continue
            active, logins, seats, usage = measured
            snapshots.append(Snapshot(
                account_id=account,
                horizon_days=horizon,
                at=at,
                score=assessment.score,
                band=assessment.band,
                components={c.name: {"points": c.points, "weight": c.weight,
                                     "value": c.value, "share": round(c.share, 4)}
                            for c in assessment.components},
                signals=sorted({s.type for s in assessment.signals}),
                signals_since=_earliest_starts(assessment.signals),
                active_users_30d=active,
                logins_30d=logins,
                seats=seats,
                arr=o.arr,
                outcome=o.outcome,
                outcome_date=o.date.isoformat(),
                segment=o.segment or assessment.segment,
                usage=usage,
                scored_segment=assessment.segment,
            ))
            judged.append(o)

    def flush() -> None:
        nonlocal replay_time
        if chunk:
            t0 = time.perf_counter()
            feed(chunk)
            replay_time += time.perf_counter() - t0
            chunk.clear()

    for e in events:
        ts = e.timestamp
        if first is None:
            first = ts
            workspace = e.workspace
        if next_i < len(times) and ts > times[next_i]:
            flush()
            take(bisect_left(times, ts))
        workspaces.add(e.workspace)
        count += 1
        last = ts
        if e.account_id in with_outcome:
            evidence.add(e)  # a cancellation comes after the last assessment
        if e.account_id not in remaining:
            continue  # another shard's, without an outcome, or past its last assessment
        add(e)
        chunk.append(e)
        if len(chunk) >= 2048:
            flush()
            if progress is not None and span_end is not None and first is not None:
                progress.update((ts - first) / max(span_end - first, 1.0), count)
    flush()
    take(len(requests))
    for snap, o in zip(snapshots, judged, strict=True):
        snap.churn_type, snap.churn_reason = evidence.classify(o)
    seconds = time.perf_counter() - started
    if progress is not None:
        progress.done(count)
    return ReplayRun(
        snapshots=snapshots, events=count, seconds=seconds, replay_seconds=replay_time,
        first_event=first, last_event=last, changes=replay.stats.changes,
        workspaces=sorted(workspaces), steps=replay.stats.steps,
        cpu_seconds=time.process_time() - cpu_started, peak_rss_mib=peak_rss_mib(),
    )


def _earliest_starts(signals: Iterable[SignalState]) -> dict[str, float]:
    out: dict[str, float] = {}
    for sig in signals:
        if sig.type not in out or sig.since < out[sig.type]:
            out[sig.type] = sig.since
    return out


@dataclass(frozen=True, slots=True)
class HistorySource:
    """A history file to read, by path: what each parallel replay opens on its own."""

    path: Path
    workspace: str = "default"
    columns: str | None = None

    def open(self, shard: Shard | None = None) -> tuple[Iterator[Event], ImportReport]:
        """The file's events (read lazily, in file order) and the report they fill in;
        with ``shard``, other shards' events may be left out (see
        :func:`history.importers.segment_events`)."""
        report = ImportReport()
        mapping = ColumnMapping.parse(self.columns) if self.columns else None
        keep = shard.owns if shard is not None else None
        return import_events(self.path, self.workspace, mapping, report, keep), report


def replay_history(
    source: HistorySource,
    outcomes: Sequence[OutcomeRecord],
    config: ScoringConfig,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    interval_days: float = 1.0,
    jobs: int = 1,
    progress: bool = False,
) -> tuple[ReplayRun, ImportReport]:
    """:func:`replay_snapshots` of ``source`` over ``jobs`` processes (see the module
    docstring); the progress bar, when asked for, is drawn by the first one."""
    if jobs <= 1:
        events, report = source.open()
        run = replay_snapshots(events, outcomes, config, horizons, interval_days,
                               Progress() if progress else None)
        return run, report
    started = time.perf_counter()
    # spawn, not fork: a fresh interpreter per shard, whatever threads the caller runs
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(_replay_shard, source, list(outcomes), config, tuple(horizons),
                        interval_days, Shard(i, jobs), progress and i == 0)
            for i in range(jobs)
        ]
        parts = [future.result() for future in futures]
    runs = [run for run, _ in parts]
    report = ImportReport.combined([report for _, report in parts])
    snapshots = sorted((s for run in runs for s in run.snapshots),
                       key=lambda s: (s.at, s.horizon_days, s.account_id))
    firsts = [run.first_event for run in runs if run.first_event is not None]
    lasts = [run.last_event for run in runs if run.last_event is not None]
    merged = ReplayRun(
        snapshots=snapshots, events=report.kept, seconds=time.perf_counter() - started,
        replay_seconds=max(run.replay_seconds for run in runs),
        first_event=min(firsts, default=None), last_event=max(lasts, default=None),
        changes=sum(run.changes for run in runs),
        workspaces=sorted({ws for run in runs for ws in run.workspaces}),
        steps=sum(run.steps for run in runs),
        cpu_seconds=sum(run.cpu_seconds for run in runs),
        peak_rss_mib=max([peak_rss_mib(), *(run.peak_rss_mib for run in runs)]),
    )
    return merged, report


def _replay_shard(source: HistorySource, outcomes: list[OutcomeRecord],
                  config: ScoringConfig, horizons: tuple[int, ...], interval_days: float,
                  shard: Shard, progress: bool) -> tuple[ReplayRun, ImportReport]:
    events, report = source.open(shard)
    run = replay_snapshots(events, outcomes, config, horizons, interval_days,
                           Progress(label=f"replay, process 1 of {shard.count}")
                           if progress else None, shard)
    return run, report


RiskFn = Callable[[Snapshot], float]

NEVER_ACTIVE_DAYS = float("inf")  # recency of an account with no usage yet: the riskiest


def _recency(s: Snapshot) -> float:
    d = s.usage.days_since_active
    return NEVER_ACTIVE_DAYS if d is None else float(d)


BASELINES: dict[str, RiskFn] = {
    "baseline_recency": _recency,
    "baseline_events_7d": lambda s: -float(s.usage.events_7d),
    "baseline_events_30d": lambda s: -float(s.usage.events_30d),
    "baseline_active_days_14d": lambda s: -float(s.usage.active_days_14d),
    "baseline_active_days_30d": lambda s: -float(s.usage.active_days_30d),
    "baseline_active_users": lambda s: -s.active_share,
    "baseline_logins": lambda s: -s.logins_per_seat,
}

MODELS: dict[str, RiskFn] = {"score": lambda s: 100.0 - s.score, **BASELINES}

# Rankings that are compared with the best baseline, when present.
SCORED_MODELS = ("score", "calibrated", "learned_logistic", "learned_boosting")


def _why_not_computable(name: str, rows: Sequence[Snapshot]) -> str:
    if name == "baseline_logins" and not any(s.logins_30d for s in rows):
        return NO_LOGINS
    if name == "baseline_active_users" and all(s.seats <= 1 for s in rows):
        return ONE_SEAT
    return ALL_ALIKE


def best_baseline(models: dict[str, dict[str, Any]]) -> str | None:
    """The baseline with the highest AUC (then lift), or ``None`` when none was computed."""
    ranked = sorted(
        (name for name in models if name.startswith("baseline_")
         and models[name]["auc"] is not None),
        key=lambda n: (-models[n]["auc"], -models[n]["top_decile_lift"], n),
    )
    return ranked[0] if ranked else None


def preceded_churn(rows: Sequence[Snapshot]) -> list[dict[str, Any]]:
    """What preceded churn, per signal type active at the horizon: how often it was
    active, the churn rate where it was and where it was not, the share of churners it
    flagged, and the median days from its start to the churn (its lead time). Most
    telling first (highest churn rate where active)."""
    n = len(rows)
    churners = sum(1 for s in rows if s.churned)
    types = sorted({t for s in rows for t in s.signals})
    table: list[dict[str, Any]] = []
    for t in types:
        on = [s for s in rows if t in s.signals]
        off_churned = churners - sum(1 for s in on if s.churned)
        on_churned = [s for s in on if s.churned]
        leads = [(_outcome_epoch(s) - s.signals_since[t]) / DAY
                 for s in on_churned if t in s.signals_since]
        table.append({
            "signal": t,
            "accounts_active": len(on),
            "share_active": len(on) / n if n else 0.0,
            "churn_rate_active": len(on_churned) / len(on) if on else None,
            "churn_rate_inactive": off_churned / (n - len(on)) if n > len(on) else None,
            "churners_flagged": len(on_churned) / churners if churners else None,
            "median_lead_days": statistics.median(leads) if leads else None,
        })
    table.sort(key=lambda r: (-(r["churn_rate_active"] or 0.0), r["signal"]))
    return table


def by_churn_type(rows: Sequence[Snapshot], risks: dict[str, list[float]],
                  best: str | None) -> dict[str, dict[str, Any]]:
    """Per churn type: how many churned so, and the AUC of the scored rankings and the
    best baseline at telling those churners from the accounts that stayed whole."""
    out: dict[str, dict[str, Any]] = {}
    shown = [m for m in (*SCORED_MODELS, best) if m is not None and m in risks]
    for kind in CHURN_TYPES:
        keep = [i for i, s in enumerate(rows) if s.churn_type in (None, kind)]
        labels = [rows[i].churn_type == kind for i in keep]
        if not any(labels):
            continue
        out[kind] = {
            "accounts": sum(labels),
            "reasons": dict(sorted(Counter(rows[i].churn_reason for i in keep
                                           if rows[i].churn_type == kind).items())),
            "auc": {m: roc_auc([risks[m][i] for i in keep], labels) for m in shown},
        }
    return out


def _outcome_epoch(s: Snapshot) -> float:
    return s.at + s.horizon_days * DAY


def evaluate_snapshots(
    snapshots: Sequence[Snapshot],
    horizons: Sequence[int],
    params: ProfitParams,
    models: dict[str, RiskFn] | None = None,
) -> list[dict[str, Any]]:
    """Per horizon: every model's figures, churn by band, quantiles, gains curves and
    the score distribution of churners and the others; the baselines that could not be
    computed, the best one, and every scored ranking against it (bootstrap intervals)."""
    models = models or MODELS
    out = []
    for h in horizons:
        rows = [s for s in snapshots if s.horizon_days == h]
        churned = [s.churned for s in rows]
        arr = [s.arr for s in rows]
        entry: dict[str, Any] = {
            "horizon_days": h,
            "accounts": len(rows),
            "churned": sum(churned),
            "base_rate": sum(churned) / len(rows) if rows else 0.0,
            "models": {},
            "not_computable": {},
            "gains": {},
            "quintiles": {},
            "best_baseline": None,
            "comparisons": {},
            "baselines_beating": {},
        }
        if rows:
            risks: dict[str, list[float]] = {}
            for name, fn in models.items():
                risk = [fn(s) for s in rows]
                if name.startswith("baseline_") and len(set(risk)) == 1:
                    entry["not_computable"][name] = _why_not_computable(name, rows)
                    continue
                risks[name] = risk
                entry["models"][name] = evaluate_ranking(risk, churned, arr, params).to_dict()
                entry["gains"][name] = capture_curve(risk, churned, arr, points=40)
                if name in ("score", "calibrated", "baseline_active_users"):
                    entry["quintiles"][name] = rate_by_quantile(risk, churned, 5)
            best = best_baseline(entry["models"])
            entry["best_baseline"] = best
            for name in SCORED_MODELS:
                mine = entry["models"].get(name)
                if mine is None:
                    continue
                if best is not None:
                    entry["comparisons"][name] = {
                        "baseline": best,
                        **paired_bootstrap(risks[name], risks[best], churned,
                                           params.target_share, seed=h),
                    }
                entry["baselines_beating"][name] = [
                    b for b, m in entry["models"].items()
                    if b.startswith("baseline_") and (
                        (m["auc"] or 0.0) > (mine["auc"] or 0.0)
                        or m["top_decile_lift"] > mine["top_decile_lift"])
                ]
            entry["preceded_churn"] = preceded_churn(rows)
            entry["by_churn_type"] = by_churn_type(rows, risks, best)
            entry["bands"] = rate_by_group([s.band for s in rows], churned, BANDS)
            entry["score_distribution"] = {
                "churned": [s.score for s in rows if s.churned],
                "retained": [s.score for s in rows if not s.churned],
            }
        out.append(entry)
    return out


def run_backtest(
    events: Iterable[Event],
    outcomes: Sequence[OutcomeRecord],
    config: ScoringConfig | None = None,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    params: ProfitParams | None = None,
    interval_days: float = 1.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay and evaluate; returns the JSON-ready result (see :mod:`history.report`)."""
    config = config or load_config(None)
    params = params or ProfitParams()
    run = replay_snapshots(events, outcomes, config, horizons, interval_days, progress)
    return result_dict(run, outcomes, config, horizons, params)


def result_dict(
    run: ReplayRun,
    outcomes: Sequence[OutcomeRecord],
    config: ScoringConfig,
    horizons: Sequence[int],
    params: ProfitParams,
    models: dict[str, RiskFn] | None = None,
    snapshots: Sequence[Snapshot] | None = None,
) -> dict[str, Any]:
    rows = list(snapshots if snapshots is not None else run.snapshots)
    period = ""
    if run.first_event is not None and run.last_event is not None:
        period = (f"{datetime.fromtimestamp(run.first_event, tz=UTC).date()} to "
                  f"{datetime.fromtimestamp(run.last_event, tz=UTC).date()}")
    primary = 60 if 60 in horizons else (horizons[0] if horizons else None)
    return {
        "config_version": config.version,
        "events": run.events,
        "period": period,
        "accounts_with_outcome": len({o.account_id for o in outcomes}),
        "primary_horizon": primary,
        "params": {
            "intervention_cost": params.intervention_cost,
            "save_rate": params.save_rate,
            "margin": params.margin,
            "target_share": params.target_share,
            "top_k": params.top_k,
        },
        "replay": {
            "events": run.events,
            "seconds": run.seconds,
            "replay_seconds": run.replay_seconds,
            "events_per_second": run.events / run.seconds if run.seconds else 0.0,
            "replay_events_per_second": (run.events / run.replay_seconds
                                         if run.replay_seconds else 0.0),
            "health_changes": run.changes,
            "account_evaluations": run.steps,
            "cpu_seconds": run.cpu_seconds,
            "events_per_cpu_second": run.events / run.cpu_seconds if run.cpu_seconds else 0.0,
            "peak_rss_mib": run.peak_rss_mib,
        },
        "horizons": evaluate_snapshots(rows, horizons, params, models),
        "snapshots": [s.to_dict() for s in rows],
    }


# --------------------------------------------------------------------------- CLI


def add_common_arguments(parser: Any) -> None:
    """Arguments shared by ``backtest`` and ``calibrate``."""
    from history.cli_args import add_language_argument, checked

    parser.add_argument("events", type=Path,
                        help="history: Segment JSON lines (.jsonl[.gz]) or CSV (.csv[.gz])")
    parser.add_argument("--outcomes", type=Path, required=True,
                        help="outcomes CSV: account_id,date,outcome,arr[,new_arr]")
    parser.add_argument("--workspace", default="default", help="workspace of the history")
    parser.add_argument("--columns", default=None, type=checked(ColumnMapping.parse),
                        help="CSV column mapping, e.g. user=customer,account=company,"
                        "event=action,timestamp=ts,properties=props")
    parser.add_argument("--horizons", default="90,60,30", type=checked(horizons_from),
                        help="days before the outcome to assess at, comma-separated")
    parser.add_argument("--intervention-cost", type=float, default=500.0,
                        help="cost per account contacted, in the scoring config's currency")
    parser.add_argument("--save-rate", type=float, default=0.3,
                        help="share of contacted would-be churners who stay")
    parser.add_argument("--margin", type=float, default=0.8, help="gross margin on ARR")
    parser.add_argument("--top-k", type=int, default=20, help="k for the top-k figures")
    parser.add_argument("--interval-days", type=float, default=1.0,
                        help="evaluation grid of the replay in days (1 = like live)")
    parser.add_argument("--quiet", action="store_true", default=not sys.stderr.isatty(),
                        help="no progress bar (the default when stderr is not a terminal)")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="processes to replay in, each with a share of the accounts "
                        "(default: the number of CPUs)")
    parser.add_argument("--workspaces-dir", type=Path,
                        default=os.environ.get("TELLTALE_WORKSPACES_DIR") or None,
                        help="the workers' per-workspace files: without --config, the "
                        "history is scored under its workspace's own [scoring] "
                        "(default: TELLTALE_WORKSPACES_DIR)")
    add_language_argument(parser)


def scoring_config_for(config: Path | None, workspaces_dir: Path | None,
                       workspace: str) -> ScoringConfig:
    """The scoring config a replay of ``workspace``'s history uses, as a worker would:
    ``config`` when given, else the workspace's own file's ``[scoring]`` in
    ``workspaces_dir``, else the shipped default. An invalid workspace file raises
    WorkspacesConfigError with its problems."""
    if config is not None or workspaces_dir is None:
        return load_config(config)
    from agents.workspaces import SharedConfig, WorkspacesConfigError, read_workspace_file

    path = Path(workspaces_dir) / f"{workspace}.toml"
    if not path.is_file():
        return load_config(None)
    found, problems = read_workspace_file(path, SharedConfig.defaults())
    if found is None:
        raise WorkspacesConfigError([f"{path}: {p}" for p in problems])
    return found.scoring


def add_parser(subparsers: Any) -> Any:
    parser = subparsers.add_parser(
        "backtest", help="replay history and measure how well the score predicted churn",
        description="Replay a history through the scoring core and compare the score, "
        "taken before each renewal or churn, with what happened and with a baseline.",
    )
    add_common_arguments(parser)
    parser.add_argument("--config", type=Path, default=None,
                        help="scoring config TOML (default: the workspace's own in "
                        "--workspaces-dir, else the shipped one)")
    parser.add_argument("--json", type=Path, default=Path("backtest.json"),
                        help="where to write the full result")
    parser.add_argument("--report", type=Path, default=Path("backtest-report"),
                        help="folder for the HTML report and its charts")
    parser.set_defaults(func=run)
    return parser


def params_from(args: Any) -> ProfitParams:
    return ProfitParams(
        intervention_cost=args.intervention_cost, save_rate=args.save_rate,
        margin=args.margin, top_k=args.top_k,
    )


def horizons_from(text: str) -> tuple[int, ...]:
    problem = ValueError(f"horizons {text!r}: give non-negative day counts, e.g. 90,60,30")
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise problem from None
    if not values or any(v < 0 for v in values):
        raise problem
    return values


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


def run(args: Any) -> int:
    import orjson

    from history.report import reader, terminal_summary, where_written, write_html

    config = scoring_config_for(args.config, args.workspaces_dir, args.workspace)
    t = reader(args.language, config.locale)
    horizons = horizons_from(args.horizons)
    outcomes = read_outcomes(args.outcomes)
    source = HistorySource(args.events, args.workspace, args.columns)
    replayed, report = replay_history(source, outcomes, config, horizons, args.interval_days,
                                      args.jobs, progress=not args.quiet)
    result = result_dict(replayed, outcomes, config, horizons, params_from(args))
    result["import"] = report.summary()
    args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    page = write_html(result, args.report, t.gettext("Does the health score predict churn?"),
                      t)
    print(report.summary(), file=sys.stderr)
    print(terminal_summary(result, t))
    print()
    print(where_written(args.json, page, t))
    return 0
