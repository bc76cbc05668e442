"""The pure scoring step: state in, events and time in; new state, assessment and
decisions out. Live workers, replays, backtests and tests all call :func:`step`.

``step`` takes ownership of the states passed to it: it updates them in place (that is
what keeps the per-event path cheap) and returns them. Keep a copy
(``AccountState.copy()``) if you need the old value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scoring import explain
from scoring.apply import apply_events
from scoring.attention import (
    Attention,
    AttentionReason,
    HealthFacts,
    Severity,
    decide,
    reported_onsets,
)
from scoring.changes import (
    Driver,
    HealthChange,
    Snapshot,
    change_id,
    iso,
    iso_date,
    signal_dict,
)
from scoring.config import ScoringConfig
from scoring.i18n import DEFAULT_LANGUAGE, Translator
from scoring.labels import Band, ChangeReason, ForecastStage, Lifecycle
from scoring.scores import (
    Component,
    Facts,
    account_components,
    band_of,
    components_due,
    measure,
    sticky_band,
    user_score,
)
from scoring.signals import DUE_RULES, detect, merge
from scoring.signals.billing import BILLING_TYPES
from scoring.signals.people import quiet_rank
from scoring.stages import (
    created_day,
    days_to_renewal,
    forecast,
    lifecycle,
    segment,
    settle_forecast,
    stages_due,
)
from state.aggregates import (
    DAY,
    AccountState,
    Reported,
    SignalState,
    UserState,
    epoch_day,
    epoch_week,
)
from streams.events import Event

BILLING_SIGNALS = BILLING_TYPES
_SEVERITY_RANK = {"risk": 0, "expansion": 1, "info": 2}
# Reasons of a change that people are told about whatever else it says.
_ALERT_REASONS = frozenset({ChangeReason.FORECAST_CHANGED, ChangeReason.LIFECYCLE_CHANGED})


@dataclass(slots=True)
class UserView:
    """A user as the account sees them: score, band, power-user flag, last seen."""

    user_id: str
    name: str | None
    email: str | None
    score: int
    band: str
    power_user: bool
    last_seen: float | None
    days_inactive: int | None
    components: list[Component] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "name": self.name,
            "email": self.email,
            "score": self.score,
            "band": self.band,
            "power_user": self.power_user,
            "last_seen": iso(self.last_seen),
        }


@dataclass(slots=True)
class AccountAssessment:
    """The account's health at ``time``: score, band, components, stages, active
    signals, attention, users, explanation drivers and bounded daily score history.

    ``change_id`` names the health change decided at this assessment (None when there
    was nothing worth telling) and ``alert`` says whether people are told of it.
    ``drivers`` and ``explanation`` are those of that change: empty when no change was
    decided, and in steps run with ``emit=False`` (nobody is going to read them). The
    signals' texts are in the workspace's language whenever the step emits.
    """

    workspace: str
    account_id: str
    account_name: str | None
    time: float
    day: int
    score: int
    band: str
    components: list[Component]
    forecast: str | None
    lifecycle: str
    signals: list[SignalState]
    drivers: list[Driver]
    explanation: str
    change_7d: int
    change_30d: int
    engagement_wow_pct: float | None
    segment: str
    arr: float | None
    seats: int | None
    active_users_7d: int
    active_users_30d: int
    power_users: list[str]
    renewal_date: str | None
    days_to_renewal: int | None
    owner: str | None
    owner_email: str | None
    owner_slack_id: str | None
    external_ids: dict[str, str]
    config_version: str
    attention: Attention
    change_id: str | None = None
    alert: bool = False
    # Users and the score history are read from the account on first access (most steps
    # never need them); valid until the account is stepped again.
    _users: list[UserView] | None = None
    _history: list[tuple[int, int]] | None = None
    _source: tuple[AccountState, int, ScoringConfig] | None = None

    @property
    def users(self) -> list[UserView]:
        """Up to ``decisions.max_users_in_change`` users, power users first."""
        if self._users is None:
            if self._source is None:
                return []
            acc, today, config = self._source
            self._users = user_views(acc, today, config, config.decisions.max_users_in_change)
        return self._users

    @property
    def history(self) -> list[tuple[int, int]]:
        """The daily scores kept (epoch day, score), oldest first, up to today's."""
        if self._history is None:
            if self._source is None:
                return []
            self._history = sorted(self._source[0].history.items())
        return self._history

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the read model, API and page."""
        return {
            "workspace": self.workspace,
            "account_id": self.account_id,
            "account_name": self.account_name,
            "time": iso(self.time),
            "day": self.day,
            "score": self.score,
            "band": self.band,
            "components": {c.name: c.to_dict() for c in self.components},
            "forecast": self.forecast,
            "lifecycle": self.lifecycle,
            "signals": [signal_dict(s) for s in self.signals],
            "users": [u.to_dict() for u in self.users],
            "drivers": [d.to_dict() for d in self.drivers],
            "explanation": self.explanation,
            "change_7d": self.change_7d,
            "change_30d": self.change_30d,
            "engagement_wow_pct": self.engagement_wow_pct,
            "segment": self.segment,
            "arr": self.arr,
            "seats": self.seats,
            "active_users_7d": self.active_users_7d,
            "active_users_30d": self.active_users_30d,
            "power_users": self.power_users,
            "renewal_date": self.renewal_date,
            "days_to_renewal": self.days_to_renewal,
            "owner": self.owner,
            "owner_email": self.owner_email,
            "owner_slack_id": self.owner_slack_id,
            "external_ids": self.external_ids,
            "history": [[iso_date(d), s] for d, s in self.history],
            "config_version": self.config_version,
            "attention": self.attention.to_dict(),
        }


@dataclass(slots=True)
class StepResult:
    account: AccountState
    users: dict[str, UserState]  # only users this step changed
    assessment: AccountAssessment
    changes: list[HealthChange]
    next_due: float | None  # epoch s to re-evaluate at if nothing arrives
    skipped: list[str] = field(default_factory=list)  # malformed events: "message id: why"


def step(
    account: AccountState | None,
    users: Mapping[str, UserState],
    events: Sequence[Event],
    now: float,
    config: ScoringConfig,
    workspace: str,
    account_id: str,
    emit: bool = True,
) -> StepResult:
    """Apply one account's ``events`` (any order; ``[]`` is a clock tick), re-assess at
    ``now`` (event-time epoch seconds; never earlier than the state's clock) and decide
    what to emit. Pure and deterministic: never reads the wall clock.

    ``emit=False`` (backtests, which only read scores) decides exactly as usual and
    leaves the same state, but builds no :class:`HealthChange` and no explanation;
    ``assessment.change_id`` still says whether a change was decided."""
    acc = account if account is not None else AccountState(workspace, account_id)
    work: dict[str, UserState] = dict(users)
    skipped: list[str] = []
    changed = apply_events(acc, work, events, now, config, skipped)
    t = max(float(now), acc.clock)
    acc.clock = t
    today = epoch_day(t)
    _prune(acc, work, changed, today, config)
    assessment, changes = evaluate(acc, t, config, emit)
    return StepResult(
        account=acc,
        users={uid: work[uid] for uid in sorted(changed)},
        assessment=assessment,
        changes=changes,
        next_due=next_due(acc, today, config),
        skipped=skipped,
    )


# --------------------------------------------------------------------------- pruning


def _prune(
    acc: AccountState, users: dict[str, UserState], changed: set[str], today: int,
    config: ScoringConfig,
) -> None:
    lim = config.limits
    # Windows are summed over explicit day ranges, so days that fell out only cost
    # space: prune when a record holds more entries than its window can (cheap check).
    keep = lim.window_days + 1  # the window plus today
    cutoff = today - keep
    if len(acc.days) > keep:
        acc.days = {d: p for d, p in acc.days.items() if d > cutoff}
    if len(acc.core_days) > keep:
        acc.core_days = {d: n for d, n in acc.core_days.items() if d > cutoff}
    wk_cut = epoch_week(today) - 14
    for uid in changed:
        user = users[uid]
        if len(user.days) > keep or len(user.core_weeks) > 13:
            user.prune(today, lim.window_days)
        s = acc.users.get(uid)
        if s is not None and len(s.weeks) > 14:
            s.weeks = {w: p for w, p in s.weeks.items() if w > wk_cut}
    if len(acc.users) > lim.max_users_per_account:
        recent = sorted(
            acc.users.items(),
            key=lambda kv: (-(kv[1].last_day if kv[1].last_day is not None else -1), kv[0]),
        )[: lim.max_users_per_account]
        acc.users = dict(recent)
    hist_cut = today - config.decisions.history_days
    if len(acc.history) >= config.decisions.history_days:  # room for today
        acc.history = {d: s for d, s in acc.history.items() if d > hist_cut}
    acc.ticket_days = [d for d in acc.ticket_days if today - d < lim.window_days]
    acc.resolved_days = [d for d in acc.resolved_days if today - d < lim.window_days]


# --------------------------------------------------------------------------- evaluation


def evaluate(
    acc: AccountState, t: float, config: ScoringConfig, emit: bool = True
) -> tuple[AccountAssessment, list[HealthChange]]:
    """Assess the account at ``t`` and decide whether to emit a health change; updates
    the account's assessment memory (band, stages, signals, history, last report).
    With ``emit=False`` the decision and the memory are the same, but no change and no
    explanation are built (see :func:`step`).

    Four steps: :func:`assess` (what the account looks like today), :func:`decide_change`
    (whether that is news since the last report), :func:`render` (the sentences, only
    for a change that is emitted) and :func:`remember` (the memory the next evaluation
    starts from)."""
    tr = config.locale.translator() if emit else None
    a, active, started, ended = assess(acc, t, config, tr)
    rep = acc.reported
    reasons, keys, worse, alert = decide_change(a, rep, started, ended, acc, config)
    changes: list[HealthChange] = []
    comp_dicts: dict[str, dict[str, Any]] | None = None
    if reasons:
        a.change_id = decided = change_id(acc.workspace, acc.account_id, keys, a.day)
        a.alert = alert
        comp_dicts = {c.name: c.to_dict() for c in a.components}
        if tr is not None:
            changes.append(_told(decided, acc, a, rep, reasons, worse, started, ended,
                                 comp_dicts, config, tr))
    remember(acc, a, active, comp_dicts)
    return a, changes


# --------------------------------------------------------------------------- assessing


def assess(
    acc: AccountState, t: float, config: ScoringConfig, tr: Translator | None
) -> tuple[AccountAssessment, dict[str, SignalState], list[SignalState], list[SignalState]]:
    """The account at ``t``: score, band, forecast, lifecycle, signal episodes and
    attention, as an assessment with no change decided and nothing rendered yet; with
    the active episodes by key and those that started and ended today.

    Records today's score in ``acc.history`` and what the stages remember (a pending
    forecast, churn); the rest of the assessment memory is :func:`remember`'s. With a
    translator (``emit``) the signals' texts are said in its language."""
    today = epoch_day(t)
    f: Facts = measure(acc, today, config)
    seg = segment(acc, config)
    comps = account_components(acc, f, config, seg)
    score = sum(c.points for c in comps)
    band = sticky_band(score, acc.band, config.bands)
    dtr = days_to_renewal(acc, today)
    detected = detect(acc, f, config, created_day(acc), dtr)
    active, started, ended = merge(acc.signals, detected)

    acc.history[today] = score
    h7 = _history_at(acc, today - 7)
    h30 = _history_at(acc, today - 30)
    change_7d = score - h7 if h7 is not None else 0
    change_30d = score - h30 if h30 is not None else 0
    life = lifecycle(acc, f, config, seg, dtr)
    fc = _forecast(acc, band, life, change_30d, dtr, seg, active, today, config)
    attention = _attention(acc, today, score, band, change_30d, fc, seg, active, config)
    # The signals keep their English text in state; an assessment in another language
    # carries copies said in it.
    signals = list(active.values())
    if tr is not None and tr.language != DEFAULT_LANGUAGE:
        signals = _said(signals, tr)
    active_7 = sum(1 for s in acc.users.values()
                   if s.last_day is not None and today - s.last_day < 7)
    wow = comps[2].detail.get("week_over_week_pct") if len(comps) > 2 else None
    assessment = AccountAssessment(
        workspace=acc.workspace,
        account_id=acc.account_id,
        account_name=acc.name,
        time=t,
        day=today,
        score=score,
        band=band,
        components=comps,
        forecast=fc,
        lifecycle=life,
        signals=signals,
        drivers=[],
        explanation="",
        change_7d=change_7d,
        change_30d=change_30d,
        engagement_wow_pct=wow,
        segment=seg,
        arr=acc.arr,
        seats=acc.seats,
        active_users_7d=active_7,
        active_users_30d=f.active_30,
        power_users=list(f.power),
        renewal_date=iso_date(acc.renewal_day),
        days_to_renewal=dtr,
        owner=acc.owner,
        owner_email=acc.owner_email,
        owner_slack_id=acc.owner_slack_id,
        external_ids=dict(acc.external_ids),
        config_version=config.version,
        attention=attention,
        _source=(acc, today, config),
    )
    return assessment, active, started, ended


def _forecast(
    acc: AccountState, band: str, life: str, change_30d: int, dtr: int | None, seg: str,
    active: Mapping[str, SignalState], today: int, config: ScoringConfig,
) -> str | None:
    """The forecast stage shown today: a new stage must hold before it replaces the old
    one (:func:`~scoring.stages.settle_forecast`), but a move to at risk with the band at
    risk, or the account churned, is at once."""
    billing = sum(1 for s in active.values() if s.type in BILLING_SIGNALS)
    candidate = forecast(band, life, change_30d, dtr, config, seg, billing, acc.forecast)
    if candidate == ForecastStage.AT_RISK and (band == Band.AT_RISK
                                              or life == Lifecycle.CHURNED):
        acc.forecast_pending = None
        return candidate
    return settle_forecast(acc, candidate, today, config)


def _attention(
    acc: AccountState, today: int, score: int, band: str, change_30d: int, fc: str | None,
    seg: str, active: Mapping[str, SignalState], config: ScoringConfig,
) -> Attention:
    """Whether the account needs a person today (:func:`scoring.attention.decide`); a
    score-derived reason already reported keeps the onset it was reported with."""
    rep = acc.reported
    return decide(
        HealthFacts(
            today=today, score=score, band=band,
            score_before=_history_at(acc, today - config.attention.health_fell_days),
            change_30d=change_30d, forecast=fc, segment=seg, arr=acc.arr,
            renewal_day=acc.renewal_day, renewal_window=config.renewal.windows[seg],
            cancelled=acc.cancelled_day is not None,
        ),
        active.values(), config.attention, config.playbooks,
        reported_onsets(k for k, _ in rep.attention) if rep is not None and rep.attention
        else None,
    )


def _history_at(acc: AccountState, day: int) -> int | None:
    return acc.history.get(day)


# --------------------------------------------------------------------------- deciding


def decide_change(
    a: AccountAssessment, rep: Reported | None, started: list[SignalState],
    ended: list[SignalState], acc: AccountState, config: ScoringConfig,
) -> tuple[list[str], list[str], list[AttentionReason], bool]:
    """Whether assessment ``a`` is news since ``rep`` (the last report, None before the
    first): the change reasons (none: nothing worth telling), the keys its id is hashed
    from, the attention reasons new or worse than reported, and whether people are told
    (``alert``) or only systems.

    Reads the account's score history and whether it was ever active; changes nothing."""
    today, score, band = a.day, a.score, a.band
    dec = config.decisions
    worse, gone = _attention_moves(a.attention.reasons, rep)
    reasons: list[str] = []
    keys: list[str] = []
    if rep is None:
        # First report: at once when there is activity or something to say, else the
        # next day (a group call usually arrives before anyone has used the product).
        alarming = any(sig.severity != "info" for sig in started)
        if acc.last_seen is not None or alarming or any(d < today for d in acc.history):
            reasons.append(ChangeReason.BAND_CHANGED)
            keys.append(f"band:{band}")
    else:
        if band != rep.band:
            reasons.append(ChangeReason.BAND_CHANGED)
            keys.append(f"band:{band}")
        # moved N+ points since the last report, or within the last 7 days when the last
        # report is older than that
        moved = abs(score - rep.score) >= dec.score_move_points
        if not moved and a.time - rep.time >= dec.score_move_days * DAY:
            h = _history_at(acc, today - dec.score_move_days)
            moved = h is not None and abs(score - h) >= dec.score_move_points
        if moved:
            reasons.append(ChangeReason.SCORE_MOVED)
            keys.append(f"score:{score}")
        if a.forecast != rep.forecast:
            reasons.append(ChangeReason.FORECAST_CHANGED)
            keys.append(f"forecast:{a.forecast}")
        if a.lifecycle != rep.lifecycle:
            reasons.append(ChangeReason.LIFECYCLE_CHANGED)
            keys.append(f"lifecycle:{a.lifecycle}")
    if started and (rep is not None or reasons):
        reasons.append(ChangeReason.SIGNAL_STARTED)
        keys.extend(f"start:{s.key}" for s in started)
    if ended and rep is not None:
        reasons.append(ChangeReason.SIGNAL_ENDED)
        keys.extend(f"end:{s.key}" for s in ended)
    if (worse or gone) and (rep is not None or reasons):
        reasons.append(ChangeReason.ATTENTION_CHANGED)
        keys.extend(f"attention:{r.key}:{r.severity.value}" for r in worse)
        keys.extend(f"attention_end:{k}" for k in gone)
    # People are told of news they would act on; the rest (a minor signal resolved, an
    # info checkpoint, a score that only held, a reason ending) goes to systems only.
    floor = Severity(config.attention.alert_severity).rank
    alert = any(r.severity.rank >= floor for r in worse) or bool(
        _ALERT_REASONS.intersection(reasons)) or (
        rep is not None and ChangeReason.BAND_CHANGED in reasons)
    return reasons, keys, worse, alert


def _attention_moves(
    reasons: tuple[AttentionReason, ...], rep: Reported | None
) -> tuple[list[AttentionReason], list[str]]:
    """Reasons new or worse than last reported, and keys of reported reasons now gone.

    A record from before attention was kept adopts today's standing silently: an
    upgrade must not announce every open reason of every account at once."""
    if rep is None:
        last: dict[str, int] = {}
    elif rep.attention is None:
        last = {r.key: r.severity.rank for r in reasons}
    else:
        last = {k: v for k, v in rep.attention}
    worse = [r for r in reasons if r.severity.rank > last.get(r.key, -1)]
    now = {r.key for r in reasons}
    return worse, [k for k in last if k not in now]


# --------------------------------------------------------------------------- rendering


def _told(
    decided: str, acc: AccountState, a: AccountAssessment, rep: Reported | None,
    reasons: list[str], worse: list[AttentionReason], started: list[SignalState],
    ended: list[SignalState], comp_dicts: dict[str, dict[str, Any]], config: ScoringConfig,
    tr: Translator,
) -> HealthChange:
    """The health change ``decided`` (its id) at ``a``, written in ``tr``'s language;
    ``a`` gets the same drivers and explanation. ``previous`` is always the last report,
    so the headline, the delta and the drivers share one reference."""
    told_started, told_ended = started, ended
    if tr.language != DEFAULT_LANGUAGE:
        told_started, told_ended = _said(started, tr), _said(ended, tr)
    a.drivers, a.explanation = render(acc, a, rep, reasons, worse, told_started, ended,
                                      config, tr)
    return HealthChange(
        id=decided,
        workspace=a.workspace,
        account_id=a.account_id,
        account_name=a.account_name,
        time=a.time,
        day=a.day,
        reasons=reasons,
        previous=None if rep is None else Snapshot(rep.score, rep.band, rep.forecast,
                                                   rep.lifecycle),
        current=Snapshot(a.score, a.band, a.forecast, a.lifecycle),
        components=comp_dicts,
        delta=_delta(a, rep),
        change_7d=a.change_7d,
        signals_started=told_started,
        signals_ended=told_ended,
        active_signals=a.signals,
        explanation=a.explanation,
        drivers=a.drivers,
        owner=a.owner,
        owner_email=a.owner_email,
        owner_slack_id=a.owner_slack_id,
        segment=a.segment,
        arr=a.arr,
        renewal_date=a.renewal_date,
        days_to_renewal=a.days_to_renewal,
        external_ids=a.external_ids,
        users=[u.to_dict() for u in a.users],
        config_version=a.config_version,
        attention=a.attention,
        alert=a.alert,
        language=config.locale.language,
        currency=config.locale.currency,
        attention_new=[r.key for r in worse],
    )


def _delta(a: AccountAssessment, rep: Reported | None) -> int:
    """Points moved since the last report (0 on the first)."""
    return a.score - rep.score if rep is not None else 0


def render(
    acc: AccountState, a: AccountAssessment, rep: Reported | None, reasons: list[str],
    worse: list[AttentionReason], started: list[SignalState], ended: list[SignalState],
    config: ScoringConfig, tr: Translator,
) -> tuple[list[Driver], str]:
    """The drivers and the paragraph of the change decided at ``a``, in ``tr``'s language:
    the headline against the last report ``rep``, what moved the score, what started
    (``started`` as said in ``tr``), what ended and the notes (:func:`_notes`). Written
    only for a change that is emitted: nobody reads them otherwise, and most
    evaluations decide none."""
    delta = _delta(a, rep)
    drivers = _drivers(a.components, rep, delta, tr)
    reason_texts = [d.text for d in drivers]
    text = explain.paragraph(
        None if rep is None else rep.score, a.score, a.band,
        reason_texts if delta != 0 or rep is None else [],
        [s.text for s in _for_text(started, reason_texts)],
        a.change_7d if abs(a.change_7d) >= config.decisions.score_move_points else None,
        [
            line
            for line in (
                _ended_text(acc, s, config, a.day, tr) for s in _for_text(ended, reason_texts)
            )
            if line not in reason_texts
        ],
        _notes(a, rep, reasons, worse, tr),
        tr,
    )
    return drivers, text


def _notes(
    a: AccountAssessment, rep: Reported | None, reasons: list[str],
    worse: list[AttentionReason], tr: Translator,
) -> list[str]:
    """What the paragraph says besides the score: the band, forecast and lifecycle moves
    (the stages as they stand on a first report) and, for a change only about attention,
    why the account is (or is no longer) on someone's list."""
    notes: list[str] = []
    if rep is not None:
        if ChangeReason.BAND_CHANGED in reasons:
            notes.append(explain.band_note(rep.band, a.band, tr))
        if ChangeReason.FORECAST_CHANGED in reasons:
            notes.append(explain.forecast_note(rep.forecast, a.forecast, tr))
        if ChangeReason.LIFECYCLE_CHANGED in reasons:
            notes.append(explain.lifecycle_note(rep.lifecycle, a.lifecycle, tr))
    else:
        notes.append(explain.lifecycle_note(None, a.lifecycle, tr))
        if a.forecast is not None:
            notes.append(explain.forecast_note(None, a.forecast, tr))
    if reasons == [ChangeReason.ATTENTION_CHANGED]:
        # In the worklist's words; in any other change the headline, the drivers and the
        # signals already name the cause.
        note = explain.attention_note(
            [explain.attention_text(r.type.value, r.params, r.since_day, a.day, tr)
             for r in worse[:2]], still_needed=bool(a.attention.reasons), language=tr)
        if note:
            notes.append(note)
    return notes


def _drivers(
    comps: list[Component], reported: Reported | None, delta: int, t: Translator
) -> list[Driver]:
    if reported is None:
        short = sorted(
            (
                c for c in comps
                if c.weight - c.points >= max(1, c.weight * 0.3) and not _defaulted(c)
            ),
            key=lambda c: (-(c.weight - c.points), c.name),
        )[:2]
        return [
            Driver(c.name, c.points - c.weight, explain.weakest_text(c.name, c.detail, t))
            for c in short
        ]
    prev = reported.components
    # Moves are measured on unrounded points: a component whose numbers did not change
    # can still gain or lose a rounded point when the others move, which explains nothing.
    moves = []
    for c in comps:
        p = prev.get(c.name)
        before = (p.get("raw", p["points"]) if p else 0.0)
        d_raw = c.raw - before
        if abs(d_raw) >= 0.5:
            moves.append((d_raw, c, p))
    if delta < 0:
        moves = sorted((m for m in moves if m[0] < 0), key=lambda m: (m[0], m[1].name))
    elif delta > 0:
        moves = sorted((m for m in moves if m[0] > 0), key=lambda m: (-m[0], m[1].name))
    else:
        moves = sorted(moves, key=lambda m: (-abs(m[0]), m[1].name))
    out = []
    for d_raw, c, p in moves[:3]:
        d = int(d_raw + (0.5 if d_raw > 0 else -0.5))  # half away from zero: never 0
        before_detail = p["detail"] if p else None
        out.append(Driver(c.name, d, explain.component_change_text(
            c.name, before_detail, c.detail, d, t), before_detail))
    return out


def _defaulted(c: Component) -> bool:
    """A component resting on its no-data default (no NPS answers, no meetings)."""
    d = c.detail
    return c.name == "relationship" and not d.get("responses") and not (
        d.get("meetings_missed") or d.get("qbrs_skipped") or d.get("held")
    )


def _ended_text(acc: AccountState, s: SignalState, config: ScoringConfig, today: int,
                t: Translator) -> str:
    """Why a signal ended; a quiet person's episode also ends when they have been away so
    long they are no longer counted, which is not a return."""
    if quiet_rank(s.type) >= 0 and s.subject is not None:
        summary = acc.users.get(s.subject)
        forget = config.signals.user_forget_days
        if summary is None or summary.last_day is None or today - summary.last_day >= forget:
            return explain.user_gone_text(s.detail, forget, t)
    return explain.signal_ended_text(s.type, s.detail, t)


def _said(signals: list[SignalState], t: Translator) -> list[SignalState]:
    """Copies of ``signals`` with their text in ``t``'s language."""
    return [replace(s, text=explain.signal_text(s.type, s.detail, t)) for s in signals]


def _for_text(signals: list[SignalState], reasons: list[str]) -> list[SignalState]:
    """Signals worth a sentence: one per quiet person (the strongest), none for people
    the reasons already name; risks first, then expansion, then info."""
    strongest: dict[str, SignalState] = {}
    out: list[SignalState] = []
    for s in signals:
        rank = quiet_rank(s.type)
        if rank < 0 or s.subject is None:
            out.append(s)
            continue
        if any(str(s.detail.get("name")) in r for r in reasons):
            continue
        cur = strongest.get(s.subject)
        if cur is None or rank > quiet_rank(cur.type):
            strongest[s.subject] = s
    out.extend(strongest.values())
    return sorted(out, key=lambda s: (_SEVERITY_RANK[s.severity], s.key))


# --------------------------------------------------------------------------- remembering


def _reported(a: AccountAssessment, comp_dicts: dict[str, dict[str, Any]]) -> Reported:
    """The last report the next evaluation compares with: the stages, each component's
    points and detail, and the attention standing as [key, severity rank] pairs."""
    return Reported(a.time, a.score, a.band, a.forecast, a.lifecycle, {
        c.name: {"points": c.points, "raw": round(c.raw, 3),
                 "detail": comp_dicts[c.name]["detail"]}
        for c in a.components
    }, [[r.key, r.severity.rank] for r in a.attention.reasons])


def remember(
    acc: AccountState, a: AccountAssessment, active: dict[str, SignalState],
    reported: dict[str, dict[str, Any]] | None,
) -> None:
    """Keep what the next evaluation starts from: the score, the band (sticky), the
    stages and the active signal episodes; and when a change was decided, its report
    (``reported``: the components as the change carries them), which the next change
    is measured against."""
    if reported is not None:
        acc.reported = _reported(a, reported)
    acc.score = a.score
    acc.band = a.band
    acc.forecast = a.forecast
    acc.lifecycle = a.lifecycle
    acc.signals = active


# --------------------------------------------------------------------------- users


def user_views(
    acc: AccountState, today: int, config: ScoringConfig, limit: int | None = None
) -> list[UserView]:
    """Users ranked power users first, then most recently seen; scored at ``today``."""
    ranked = sorted(
        acc.users.items(),
        key=lambda kv: (
            not kv[1].power,
            -(kv[1].last_day if kv[1].last_day is not None else -(10**9)),
            kv[0],
        ),
    )
    if limit is not None:
        ranked = ranked[:limit]
    out = []
    for uid, s in ranked:
        score, comps = user_score(s, today, config)
        out.append(UserView(
            user_id=uid, name=s.name, email=s.email, score=score,
            band=band_of(score, config.bands), power_user=s.power, last_seen=s.last_seen,
            days_inactive=None if s.last_day is None else today - s.last_day,
            components=comps,
        ))
    return out


# --------------------------------------------------------------------------- due time


def next_due(acc: AccountState, today: int, config: ScoringConfig) -> float | None:
    """Earliest epoch second at which a time-only condition could change: the earliest
    day after ``today`` that a component (:func:`~scoring.scores.components_due`), a
    signal unit (its ``due`` rule) or a stage (:func:`~scoring.stages.stages_due`) names.
    Tomorrow is the earliest there can be, so the search stops there."""
    tomorrow = today + 1
    best: int | None = None
    for rule in _DUE_RULES:
        for day in rule(acc, today, config):
            if day > today and (best is None or day < best):
                if day == tomorrow:
                    return tomorrow * DAY
                best = day
    return None if best is None else best * DAY


#: Components first: while activity is in the windows they roll every day.
_DUE_RULES = (components_due, *DUE_RULES, stages_due)


__all__ = [
    "AccountAssessment",
    "StepResult",
    "UserView",
    "assess",
    "decide_change",
    "evaluate",
    "next_due",
    "remember",
    "render",
    "step",
    "user_views",
]
