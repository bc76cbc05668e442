"""The scoring configuration: which events matter and how much, how each metric maps to
points, bands, signal thresholds, renewal windows, onboarding milestones, expansion rules.

One frozen value object, loaded from TOML (``scoring/default.toml`` is the shipped,
commented default) and validated as a whole: every problem is reported at once in one
:class:`ConfigError`. ``dataclasses.replace`` changes it programmatically and
:func:`dump_config` writes it back as a loadable TOML file (calibration uses both).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from scoring.attention import Playbook, PlaybookStep, ReasonType, Severity
from scoring.i18n import (
    DEFAULT_CURRENCY,
    DEFAULT_LANGUAGE,
    DEFAULT_TIME_ZONE,
    Translator,
    check_currency,
    check_language,
    check_time_zone,
    translator,
)
from scoring.labels import Band, ForecastStage

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.toml")

FAMILIES = ("adoption", "expansion")
METRIC_NAMES = (
    "active_seats",
    "power_users",
    "engagement",
    "core_features",
    "recency",
    "habit",
    "support",
    "financial",
    "relationship",
)
SEGMENTS = ("smb", "mid_market", "enterprise")


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str], source: str = "scoring config") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is invalid ({len(problems)} problem(s)):\n{lines}")

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[str], str]]:
        # rebuilt from its problems when it crosses a process boundary (backtest jobs);
        # the default would pass the message back in and list it letter by letter
        return type(self), (self.problems, self.source)


@dataclass(frozen=True, slots=True)
class Curve:
    """Piecewise-linear mapping from a metric value to 0-100 points.

    ``points`` are (value, points) pairs with strictly increasing values; below the first
    value the first points apply, above the last the last points apply.
    """

    points: tuple[tuple[float, float], ...]

    def __call__(self, x: float) -> float:
        pts = self.points
        if x <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            if x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return pts[-1][1]


@dataclass(frozen=True, slots=True)
class EventRule:
    """How one activity event counts: weight 1-10, family, core ("sticky") and advanced."""

    weight: int
    family: str = "adoption"
    core: bool = False
    advanced: bool = False


@dataclass(frozen=True, slots=True)
class Metric:
    """One account-score component: its weight (points out of 100) and value→points curve.

    ``trend_curve``/``trend_share`` blend a second, trend-based curve in (engagement uses
    them: ``share`` of the points come from the trend, the rest from the level).
    """

    weight: int
    curve: Curve
    description: str = ""
    trend_curve: Curve | None = None
    trend_share: float = 0.0


@dataclass(frozen=True, slots=True)
class Bands:
    """Score bands: healthy >= ``healthy``, watch >= ``watch``, else at risk.

    ``hysteresis``: points a score must go past a boundary before the band changes, so a
    score hovering at 69/70 does not flap.
    """

    healthy: int = 70
    watch: int = 40
    hysteresis: int = 3


@dataclass(frozen=True, slots=True)
class PowerUsers:
    """Power users: top users by 90-day weighted points that together make ``share`` of
    the account's points, each with at least ``min_points`` and at least
    ``relative_min`` times the mean of the account's users, at most ``max_users``."""

    share: float = 0.6
    min_points: float = 60.0
    relative_min: float = 1.5
    max_users: int = 10
    active_days: int = 14  # a power user seen within this many days counts as active


@dataclass(frozen=True, slots=True)
class Signals:
    """Signal thresholds (days, percent, counts)."""

    power_user_inactive_days: int = 21
    user_inactive_days: tuple[int, ...] = (10, 14)
    user_regular_active_days: int = 6  # active days in the 30 before going quiet
    user_forget_days: int = 90  # user inactivity episodes end (user gone) after this
    seat_drop_pct: float = 20.0
    seat_drop_min_users: int = 6  # below this, one absence is already 20%
    core_decline_pct: float = 30.0
    core_decline_min_events: int = 10
    ticket_spike_count: int = 3
    ticket_spike_days: int = 10
    ticket_open_days: int = 5
    downgrade_days: int = 30
    nps_detractor_below: int = 7
    nps_days: int = 90
    meeting_missed_days: int = 30
    account_lost_days: int = 45
    low_csat_max: int = 2


@dataclass(frozen=True, slots=True)
class Support:
    """Support friction value: points per open ticket, per ticket open too long, for a
    spike and for a low CSAT (<= signals.low_csat_max) in the last ``csat_days``."""

    open_ticket: float = 1.0
    aged_ticket: float = 2.0
    spike: float = 3.0
    low_csat: float = 2.0
    csat_days: int = 30


@dataclass(frozen=True, slots=True)
class Financial:
    """Financial risk value (0-100) contributed by each billing situation."""

    payment_failed: float = 60.0
    downgrade: float = 40.0
    seat_reduction: float = 30.0
    cancelled: float = 100.0
    lookback_days: int = 90


@dataclass(frozen=True, slots=True)
class Relationship:
    """Relationship value on the NPS 0-10 scale: mean NPS of the last ``nps_days`` (or
    ``no_nps`` without answers) minus penalties for missed meetings / skipped QBRs in the
    last ``lookback_days``; held meetings/QBRs add ``held_bonus`` each (capped at 10)."""

    no_nps: float = 7.0
    meeting_missed_penalty: float = 1.5
    qbr_skipped_penalty: float = 2.0
    held_bonus: float = 0.5
    lookback_days: int = 90


@dataclass(frozen=True, slots=True)
class UserScore:
    """User score: weights (sum 100) and curves of recency (days since seen), frequency
    (active days in the last 30) and intensity (weighted points in the last 30 days)."""

    recency_weight: int = 40
    frequency_weight: int = 35
    intensity_weight: int = 25
    recency: Curve = field(
        default_factory=lambda: Curve(((0, 100), (3, 90), (7, 70), (14, 35), (30, 0)))
    )
    frequency: Curve = field(default_factory=lambda: Curve(((0, 0), (4, 40), (12, 80), (20, 100))))
    intensity: Curve = field(
        default_factory=lambda: Curve(((0, 0), (30, 40), (150, 80), (400, 100)))
    )


@dataclass(frozen=True, slots=True)
class Renewal:
    """Renewal windows (days before the renewal date the window opens) per segment,
    playbook checkpoints (days before renewal), and the ARR above which an account
    without a segment trait is enterprise (mid-market above ``mid_market_arr``)."""

    windows: Mapping[str, int] = field(
        default_factory=lambda: {"smb": 90, "mid_market": 120, "enterprise": 180}
    )
    checkpoints: tuple[int, ...] = (180, 90, 60, 30)
    enterprise_arr: float = 50_000.0
    mid_market_arr: float = 15_000.0


@dataclass(frozen=True, slots=True)
class Milestone:
    """An onboarding milestone: reached by ``event``, due ``due_days`` after creation."""

    name: str
    event: str
    due_days: int


@dataclass(frozen=True, slots=True)
class Expansion:
    """Expansion (CSQL) rules: seat saturation with advanced-feature use, gated-feature
    clicks, upgrade-page visits or higher-tier questions within ``recent_days``."""

    saturation_pct: float = 80.0
    advanced_days: int = 30
    recent_days: int = 14
    upgrade_pages: tuple[str, ...] = ("Upgrade", "Pricing")


@dataclass(frozen=True, slots=True)
class Stages:
    """Lifecycle and forecast thresholds (days, points)."""

    onboarding_days: int = 30
    mature_days: int = 90
    reactivated_days: int = 30
    falling_points_30d: int = 10  # a 30-day score drop of this much is "falling"
    forecast_settle_days: int = 7  # a new forecast must hold this long (at risk: at once)


@dataclass(frozen=True, slots=True)
class Decisions:
    """When a health change is emitted: score moved ``score_move_points`` within
    ``score_move_days``; ``history_days`` daily score points are kept."""

    score_move_points: int = 10
    score_move_days: int = 7
    history_days: int = 90
    max_users_in_change: int = 50


@dataclass(frozen=True, slots=True)
class LocaleSettings:
    """How the workspace reads: ``language`` of every sentence and label (``en``,
    ``fr``), ``currency`` of ARR and payments (ISO 4217: EUR, USD, GBP...), and
    ``time_zone`` its dates are on (IANA: Europe/Paris, America/New_York...)."""

    language: str = DEFAULT_LANGUAGE
    currency: str = DEFAULT_CURRENCY
    time_zone: str = DEFAULT_TIME_ZONE

    def translator(self) -> Translator:
        """The translator this workspace writes with (cached per settings)."""
        return translator(self.language, self.currency, self.time_zone)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep state small whatever the history length."""

    window_days: int = 90
    max_users_per_account: int = 2000
    max_open_tickets: int = 200
    recent_ids_per_user: int = 256
    recent_ids_per_account: int = 512
    recent_records: int = 20  # NPS answers, CSAT, meetings, gated clicks kept


def _default_severities() -> dict[str, str]:
    return {
        ReasonType.CHAMPION_QUIET: Severity.HIGH,
        ReasonType.SEATS_FELL: Severity.MEDIUM,
        ReasonType.CORE_USAGE_FELL: Severity.MEDIUM,
        ReasonType.HEALTH_FELL: Severity.MEDIUM,
        ReasonType.HEALTH_AT_RISK: Severity.HIGH,
        ReasonType.RENEWAL_AT_RISK: Severity.CRITICAL,
        ReasonType.PAYMENT_FAILED: Severity.HIGH,
        ReasonType.PLAN_DOWNGRADED: Severity.HIGH,
        ReasonType.SEATS_REDUCED: Severity.MEDIUM,
        ReasonType.SUPPORT_SPIKE: Severity.MEDIUM,
        ReasonType.TICKET_OPEN_LONG: Severity.LOW,
        ReasonType.NPS_DETRACTOR: Severity.MEDIUM,
        ReasonType.MEETING_MISSED: Severity.LOW,
        ReasonType.ONBOARDING_MISSED: Severity.MEDIUM,
        ReasonType.ACCOUNT_INACTIVE: Severity.CRITICAL,
        ReasonType.PLAYBOOK_STEP_OVERDUE: Severity.MEDIUM,
        ReasonType.SEAT_SATURATION: Severity.LOW,
        ReasonType.GATED_FEATURE: Severity.LOW,
        ReasonType.UPGRADE_INTEREST: Severity.LOW,
    }


_SEVERITIES: Mapping[str, Severity] = {s.value: s for s in Severity}  # cheaper than Severity()


def _default_severity_points() -> dict[str, float]:
    return {Severity.LOW: 1.0, Severity.MEDIUM: 2.0, Severity.HIGH: 4.0, Severity.CRITICAL: 8.0}


@dataclass(frozen=True, slots=True)
class AttentionRules:
    """Which accounts need a person today, and how urgently.

    ``severity``: reason type → low / medium / high / critical. A fall of
    ``health_fell_points`` within ``health_fell_days`` is HEALTH_FELL (one level worse
    from ``health_fell_severe_points``); a power user quiet ``champion_severe_days`` or
    more is one level worse than CHAMPION_QUIET. RENEWAL_AT_RISK: renewal within the
    segment's window (``renewal.windows``) while the band is one of ``renewal_weak_bands``,
    or the score fell ``renewal_falling_points`` within 30 days, or the forecast is one of
    ``renewal_forecasts``. Priority (0 without a reason) = S x A x R x H where S = the
    worst reason's ``severity_points`` + ``others_share`` x those of the others; A = 1 +
    ``arr_weight`` x min(ARR, ``arr_cap``) / ``arr_cap``; R = 1 + ``renewal_weight`` x
    (1 - days to renewal / ``renewal_days``) while renewal is 0 to ``renewal_days`` days
    away, else 1; H = 1 + ``health_weight`` x (100 - score) / 100. ``worklist_size``:
    accounts per owner per day. A reason appearing or getting worse is an alert (people
    are told) from ``alert_severity`` up.
    """

    severity: Mapping[str, str] = field(default_factory=_default_severities)
    health_fell_points: int = 10
    health_fell_days: int = 7
    health_fell_severe_points: int = 20
    champion_severe_days: int = 42
    renewal_weak_bands: tuple[str, ...] = (Band.WATCH, Band.AT_RISK)
    renewal_falling_points: int = 10
    renewal_forecasts: tuple[str, ...] = (ForecastStage.AT_RISK,)
    severity_points: Mapping[str, float] = field(default_factory=_default_severity_points)
    others_share: float = 0.5
    arr_weight: float = 0.5
    arr_cap: float = 100_000.0
    renewal_weight: float = 2.0
    renewal_days: int = 180
    worklist_size: int = 5
    alert_severity: str = Severity.MEDIUM
    health_weight: float = 2.0

    def severity_of(self, reason: ReasonType) -> Severity:
        return _SEVERITIES[self.severity.get(reason, Severity.MEDIUM)]


def _steps(*steps: tuple[str, str, int]) -> tuple[PlaybookStep, ...]:
    return tuple(PlaybookStep(title, role, due) for title, role, due in steps)


def _default_playbooks() -> tuple[Playbook, ...]:
    r = ReasonType
    return (
        Playbook(
            "champion_loss", "Champion gone quiet", frozenset({r.CHAMPION_QUIET}),
            _steps(("Ask the champion how things are going", "csm", 1),
                   ("Find out whether they left or changed role", "csm", 3),
                   ("Meet a second sponsor in the account", "csm", 14)),
            "the champion is active again, or a new champion is named and active",
        ),
        Playbook(
            "onboarding_rescue", "Onboarding milestone missed", frozenset({r.ONBOARDING_MISSED}),
            _steps(("Offer a working session on the missed milestone", "csm", 2),
                   ("Agree an onboarding plan with the admin", "csm", 7)),
            "the milestone is reached",
        ),
        Playbook(
            "detractor_recovery", "NPS detractor", frozenset({r.NPS_DETRACTOR}),
            _steps(("Call the detractor and listen", "csm", 2),
                   ("Share what will change and when", "manager", 7)),
            "the next answer from that person is 7 or more",
        ),
        Playbook(
            "support_escalation", "Support tickets piling up",
            frozenset({r.SUPPORT_SPIKE, r.TICKET_OPEN_LONG}),
            _steps(("Review the open tickets with support", "support", 1),
                   ("Tell the customer who owns each ticket", "csm", 2)),
            "no ticket open for more than 5 days and no spike",
        ),
        Playbook(
            "failed_payment", "Failed payment", frozenset({r.PAYMENT_FAILED}),
            _steps(("Check the card or invoice with finance", "finance", 1),
                   ("Tell the billing contact how to pay", "csm", 3)),
            "the payment is settled",
        ),
        Playbook(
            "renewal_health_check", "Renewal T-180: health check", frozenset(),
            _steps(("Review health, usage and open risks", "csm", 7),
                   ("Confirm the sponsor and decision makers", "csm", 14)),
            "risks and sponsor known 180 days out",
            segments=frozenset({"enterprise"}), renewal_within_days=180, renewal_beyond_days=90,
        ),
        Playbook(
            "renewal_value_review", "Renewal T-90: value review", frozenset(),
            _steps(("Prepare the value review (outcomes, usage)", "csm", 7),
                   ("Hold the value review with the sponsor", "csm", 21)),
            "the sponsor agrees the value delivered",
            segments=frozenset({"enterprise", "mid_market"}), renewal_within_days=90,
            renewal_beyond_days=60,
        ),
        Playbook(
            "renewal_pricing", "Renewal T-60: pricing", frozenset(),
            _steps(("Send the renewal quote", "csm", 7),),
            "the quote is accepted or negotiated",
            renewal_within_days=60, renewal_beyond_days=30,
        ),
        Playbook(
            "renewal_contract", "Renewal T-30: contract", frozenset(),
            _steps(("Send the contract for signature", "csm", 3),
                   ("Chase the signature", "manager", 14)),
            "the contract is signed before the renewal date",
            renewal_within_days=30,
        ),
        Playbook(
            "expansion_lead", "Expansion lead",
            frozenset({r.SEAT_SATURATION, r.GATED_FEATURE, r.UPGRADE_INTEREST}),
            _steps(("Qualify the interest with the champion", "csm", 3),
                   ("Hand the lead to sales", "csm", 7)),
            "a qualified opportunity is opened",
        ),
    )


def _default_events() -> dict[str, EventRule]:
    return {
        "Logged In": EventRule(1),
        "Dashboard Viewed": EventRule(2),
        "Report Published": EventRule(8, core=True),
        "Workflow Completed": EventRule(8, core=True),
        "Transaction Completed": EventRule(9, core=True),
        "Teammate Invited": EventRule(7, core=True),
        "Export Created": EventRule(5, advanced=True),
        "API Key Created": EventRule(5, advanced=True),
        "Automation Created": EventRule(6, advanced=True),
        "Feature Gated Clicked": EventRule(1, family="expansion"),
        "Upgrade Page Viewed": EventRule(1, family="expansion"),
        "Higher Tier Asked": EventRule(1, family="expansion"),
    }


def _default_metrics() -> dict[str, Metric]:
    return {
        "active_seats": Metric(
            18, Curve(((0, 0), (25, 30), (50, 65), (80, 100))),
            "percent of licensed seats active in the last 30 days",
        ),
        "power_users": Metric(
            15, Curve(((0, 0), (50, 40), (100, 100))),
            "percent of power users active in the last 14 days",
        ),
        "engagement": Metric(
            18, Curve(((0, 0), (5, 30), (20, 70), (50, 100))),
            "weighted points per seat per week (30 days), blended with the change of the "
            "last 30 days against the 60 before (percent)",
            trend_curve=Curve(((-50, 0), (-20, 40), (0, 75), (20, 100))),
            trend_share=0.5,
        ),
        "core_features": Metric(
            7, Curve(((-60, 0), (-30, 40), (0, 80), (20, 100))),
            "change of core-feature events, last 28 days against the 28 before (percent)",
        ),
        "recency": Metric(
            12, Curve(((0, 100), (7, 85), (30, 50), (90, 20), (180, 0))),
            "days since anyone last used the product",
        ),
        "habit": Metric(
            0, Curve(((0, 0), (0.5, 15), (1, 25), (2, 38), (4, 50), (12, 80), (20, 100))),
            "days a month with use, over the last year (the account's life when younger)",
        ),
        "support": Metric(
            10, Curve(((0, 100), (2, 70), (5, 30), (8, 0))),
            "support friction points (open, aged, spike, low CSAT)",
        ),
        "financial": Metric(
            10, Curve(((0, 100), (100, 0))),
            "financial risk 0-100 (failed payment, downgrade, seat cut, cancellation)",
        ),
        "relationship": Metric(
            10, Curve(((0, 0), (6, 40), (7, 60), (9, 100))),
            "NPS-scale relationship value (0-10) after meeting penalties",
        ),
    }


def _default_milestones() -> tuple[Milestone, ...]:
    return (
        Milestone("workspace_setup", "Dashboard Viewed", 7),
        Milestone("first_report", "Report Published", 14),
        Milestone("team_invited", "Teammate Invited", 21),
        Milestone("first_workflow", "Workflow Completed", 30),
    )


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Everything the scoring core needs to judge health; ``version`` travels with every
    score and health change."""

    version: str = "default-2"
    events: Mapping[str, EventRule] = field(default_factory=_default_events)
    unknown_event_weight: int = 1  # other track events / page views (0: not activity)
    metrics: Mapping[str, Metric] = field(default_factory=_default_metrics)
    #: Component weights of one segment's accounts (``segment_weights.<segment>``, every
    #: component, summing to 100) where they differ from ``metrics``; curves are shared.
    segment_weights: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    bands: Bands = field(default_factory=Bands)
    power_users: PowerUsers = field(default_factory=PowerUsers)
    signals: Signals = field(default_factory=Signals)
    support: Support = field(default_factory=Support)
    financial: Financial = field(default_factory=Financial)
    relationship: Relationship = field(default_factory=Relationship)
    user_score: UserScore = field(default_factory=UserScore)
    renewal: Renewal = field(default_factory=Renewal)
    milestones: tuple[Milestone, ...] = field(default_factory=_default_milestones)
    expansion: Expansion = field(default_factory=Expansion)
    stages: Stages = field(default_factory=Stages)
    decisions: Decisions = field(default_factory=Decisions)
    limits: Limits = field(default_factory=Limits)
    attention: AttentionRules = field(default_factory=AttentionRules)
    playbooks: tuple[Playbook, ...] = field(default_factory=_default_playbooks)
    locale: LocaleSettings = field(default_factory=LocaleSettings)

    def weight(self, metric: str, segment: str | None = None) -> int:
        """Points out of 100 that ``metric`` weighs in ``segment``'s accounts."""
        own = self.segment_weights.get(segment) if segment is not None else None
        return own[metric] if own else self.metrics[metric].weight

    def validate(self) -> ScoringConfig:
        """Return self, or raise :class:`ConfigError` listing every problem."""
        problems = _problems(self)
        if problems:
            raise ConfigError(problems)
        return self


# --------------------------------------------------------------------------- validation


def _check_curve(name: str, curve: Curve, problems: list[str], lo: float = 0.0) -> None:
    pts = curve.points
    if len(pts) < 2:
        problems.append(f"{name}: a curve needs at least 2 points")
        return
    xs = [p[0] for p in pts]
    if any(b <= a for a, b in itertools.pairwise(xs)):
        problems.append(f"{name}: curve values must be strictly increasing, got {xs}")
    for x, y in pts:
        if not (math.isfinite(x) and math.isfinite(y)):
            problems.append(f"{name}: curve points must be finite numbers")
        elif not lo <= y <= 100:
            problems.append(f"{name}: curve points must be within 0-100, got {y}")


def _problems(c: ScoringConfig) -> list[str]:
    p: list[str] = []
    for key, check in (("language", check_language), ("currency", check_currency),
                       ("time_zone", check_time_zone)):
        problem = check(getattr(c.locale, key))
        if problem:
            p.append(f"locale.{key}: {problem}")
    if not c.version or not isinstance(c.version, str):
        p.append("version: must be a non-empty string")
    if not c.events:
        p.append("events: at least one activity event is needed")
    for name, rule in c.events.items():
        if not isinstance(rule.weight, int) or not 1 <= rule.weight <= 10:
            p.append(f"events.{name!r}.weight: must be an integer 1-10, got {rule.weight!r}")
        if rule.family not in FAMILIES:
            p.append(f"events.{name!r}.family: must be one of {FAMILIES}, got {rule.family!r}")
    if not 0 <= c.unknown_event_weight <= 10:
        p.append("unknown_event_weight: must be 0-10")
    missing = [m for m in METRIC_NAMES if m not in c.metrics]
    extra = [m for m in c.metrics if m not in METRIC_NAMES]
    if missing:
        p.append(f"metrics: missing {missing}")
    if extra:
        p.append(f"metrics: unknown {extra} (known: {list(METRIC_NAMES)})")
    total = 0
    for name, m in c.metrics.items():
        if not isinstance(m.weight, int) or m.weight < 0:
            p.append(f"metrics.{name}.weight: must be a non-negative integer, got {m.weight!r}")
        else:
            total += m.weight
        _check_curve(f"metrics.{name}.curve", m.curve, p)
        if m.trend_curve is not None:
            _check_curve(f"metrics.{name}.trend_curve", m.trend_curve, p)
        if not 0 <= m.trend_share <= 1:
            p.append(f"metrics.{name}.trend_share: must be within 0-1, got {m.trend_share}")
    if total != 100:
        p.append(f"metrics: weights must sum to 100, got {total}")
    for seg, weights in c.segment_weights.items():
        where = f"segment_weights.{seg}"
        if seg not in SEGMENTS:
            p.append(f"{where}: unknown segment (known: {list(SEGMENTS)})")
        if sorted(weights) != sorted(METRIC_NAMES):
            p.append(f"{where}: needs a weight for each of {list(METRIC_NAMES)}, "
                     f"got {sorted(weights)}")
        if any(not isinstance(w, int) or isinstance(w, bool) or w < 0
               for w in weights.values()):
            p.append(f"{where}: weights must be non-negative integers")
        elif sum(weights.values()) != 100:
            p.append(f"{where}: weights must sum to 100, got {sum(weights.values())}")
    b = c.bands
    if not 0 < b.watch < b.healthy <= 100:
        p.append(
            f"bands: need 0 < watch < healthy <= 100 (ordered), got watch={b.watch} "
            f"healthy={b.healthy}"
        )
    if not 0 <= b.hysteresis < 20:
        p.append(f"bands.hysteresis: must be 0-19 points, got {b.hysteresis}")
    pu = c.power_users
    if not 0 < pu.share <= 1:
        p.append(f"power_users.share: must be within (0, 1], got {pu.share}")
    if pu.min_points < 0 or pu.relative_min < 0 or pu.max_users < 1 or pu.active_days < 1:
        p.append(
            "power_users: min_points >= 0, relative_min >= 0, max_users >= 1 and "
            "active_days >= 1 required"
        )
    s = c.signals
    for f in fields(Signals):
        v = getattr(s, f.name)
        vals = v if isinstance(v, tuple) else (v,)
        if not vals or any(not isinstance(x, int | float) or x <= 0 for x in vals):
            p.append(f"signals.{f.name}: thresholds must be positive, got {v!r}")
    if list(s.user_inactive_days) != sorted(set(s.user_inactive_days)):
        p.append("signals.user_inactive_days: must be increasing")
    if s.seat_drop_pct >= 100 or s.core_decline_pct >= 100:
        p.append("signals: percent drops must be below 100")
    for section in (c.support, c.financial, c.relationship, c.expansion, c.stages, c.limits):
        for f in fields(section):
            v = getattr(section, f.name)
            if isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
                p.append(f"{type(section).__name__.lower()}.{f.name}: must be >= 0, got {v}")
    for f in fields(Decisions):
        if getattr(c.decisions, f.name) <= 0:
            p.append(f"decisions.{f.name}: must be positive")
    if c.decisions.max_users_in_change > 50:
        p.append("decisions.max_users_in_change: at most 50 (the health-change schema limit)")
    us = c.user_score
    if us.recency_weight + us.frequency_weight + us.intensity_weight != 100:
        p.append("user_score: recency/frequency/intensity weights must sum to 100")
    for n in ("recency", "frequency", "intensity"):
        _check_curve(f"user_score.{n}", getattr(us, n), p)
    r = c.renewal
    for seg in SEGMENTS:
        if seg not in r.windows:
            p.append(f"renewal.windows: missing segment {seg!r}")
        elif r.windows[seg] <= 0:
            p.append(f"renewal.windows.{seg}: must be positive days")
    for seg in r.windows:
        if seg not in SEGMENTS:
            p.append(f"renewal.windows: unknown segment {seg!r}")
    if any(x <= 0 for x in r.checkpoints) or list(r.checkpoints) != sorted(
        set(r.checkpoints), reverse=True
    ):
        p.append("renewal.checkpoints: must be positive and decreasing (e.g. 180, 90, 60, 30)")
    if not 0 < r.mid_market_arr < r.enterprise_arr:
        p.append("renewal: need 0 < mid_market_arr < enterprise_arr")
    seen: set[str] = set()
    for ms in c.milestones:
        if ms.name in seen:
            p.append(f"milestones: duplicate milestone {ms.name!r}")
        seen.add(ms.name)
        if ms.due_days <= 0:
            p.append(f"milestones.{ms.name}: due_days must be positive")
        if not ms.event:
            p.append(f"milestones.{ms.name}: event must be named")
    if not 0 < c.expansion.saturation_pct <= 100:
        p.append("expansion.saturation_pct: must be within (0, 100]")
    if c.stages.onboarding_days >= c.stages.mature_days:
        p.append("stages: onboarding_days must be below mature_days")
    _attention_problems(c, p)
    return p


def _attention_problems(c: ScoringConfig, p: list[str]) -> None:
    a = c.attention
    types = {t.value for t in ReasonType}
    levels = {s.value for s in Severity}
    for name, level in a.severity.items():
        if name not in types:
            p.append(f"attention.severity.{name}: unknown reason type (known: {sorted(types)})")
        if level not in levels:
            p.append(f"attention.severity.{name}: must be one of {sorted(levels)}, got {level!r}")
    if a.alert_severity not in levels:
        p.append(f"attention.alert_severity: must be one of {sorted(levels)}")
    for level in levels:
        v = a.severity_points.get(level)
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            p.append(f"attention.severity_points.{level}: must be a number >= 0")
    for name in a.severity_points:
        if name not in levels:
            p.append(f"attention.severity_points.{name}: unknown severity")
    for name in ("health_fell_points", "health_fell_days", "health_fell_severe_points",
                 "champion_severe_days", "renewal_falling_points", "renewal_days",
                 "worklist_size"):
        if getattr(a, name) <= 0:
            p.append(f"attention.{name}: must be positive")
    if a.health_fell_severe_points < a.health_fell_points:
        p.append("attention.health_fell_severe_points: must be at least health_fell_points")
    if a.health_fell_days > c.decisions.history_days:
        p.append("attention.health_fell_days: at most decisions.history_days")
    for name in ("others_share", "arr_weight", "renewal_weight", "health_weight"):
        if getattr(a, name) < 0:
            p.append(f"attention.{name}: must be >= 0")
    if a.arr_cap <= 0:
        p.append("attention.arr_cap: must be positive")
    for band in a.renewal_weak_bands:
        if band not in tuple(Band):
            p.append(f"attention.renewal_weak_bands: unknown band {band!r}")
    for stage in a.renewal_forecasts:
        if stage not in tuple(ForecastStage):
            p.append(f"attention.renewal_forecasts: unknown forecast {stage!r}")
    names: set[str] = set()
    for pb in c.playbooks:
        where = f"playbooks.{pb.name or '?'}"
        if not pb.name:
            p.append("playbooks: every playbook needs a name")
        elif pb.name in names:
            p.append(f"{where}: duplicate playbook name")
        names.add(pb.name)
        if not pb.title:
            p.append(f"{where}.title: must be given")
        if not pb.steps:
            p.append(f"{where}.steps: at least one step")
        for i, st in enumerate(pb.steps):
            if not st.title or not st.owner_role or st.due_days < 0:
                p.append(f"{where}.steps[{i}]: needs a title, an owner_role and due_days >= 0")
        unknown = sorted(seg for seg in pb.segments if seg not in SEGMENTS)
        if unknown:
            p.append(f"{where}.segments: unknown {unknown} (known: {list(SEGMENTS)})")
        if pb.min_arr is not None and pb.min_arr < 0:
            p.append(f"{where}.min_arr: must be >= 0")
        within, beyond = pb.renewal_within_days, pb.renewal_beyond_days
        if within is not None and within < 0:
            p.append(f"{where}.renewal_within_days: must be >= 0")
        if beyond is not None and (within is None or beyond >= within):
            p.append(f"{where}.renewal_beyond_days: needs renewal_within_days above it")
        if not pb.reasons and not pb.segments and within is None and pb.min_arr is None:
            p.append(f"{where}: a trigger needs reasons or a renewal window")


# --------------------------------------------------------------------------- loading


def _curve(raw: Any, where: str, problems: list[str]) -> Curve:
    try:
        pts = tuple((float(a), float(b)) for a, b in raw)
    except (TypeError, ValueError):
        problems.append(f"{where}: must be a list of [value, points] pairs")
        return Curve(((0.0, 0.0), (1.0, 100.0)))
    return Curve(pts)


def _section(cls: type, raw: Any, where: str, problems: list[str]) -> Any:
    """Build a section dataclass from a TOML table, reporting unknown keys and bad types."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table")
        return cls()
    known = {f.name: f for f in fields(cls)}
    default = cls()
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            problems.append(f"{where}.{key}: unknown setting (known: {sorted(known)})")
            continue
        current = getattr(default, key)
        if isinstance(current, Curve):
            kwargs[key] = _curve(value, f"{where}.{key}", problems)
        elif isinstance(current, tuple):
            if not isinstance(value, list):
                problems.append(f"{where}.{key}: must be a list")
                continue
            kwargs[key] = tuple(value)
        elif isinstance(current, Mapping):
            if not isinstance(value, dict):
                problems.append(f"{where}.{key}: must be a table")
                continue
            kwargs[key] = dict(value)
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                problems.append(f"{where}.{key}: must be true or false")
                continue
            kwargs[key] = value
        elif isinstance(current, int | float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{where}.{key}: must be a number, got {value!r}")
                continue
            if isinstance(current, int) and not isinstance(value, int):
                problems.append(f"{where}.{key}: must be a whole number, got {value!r}")
                continue
            kwargs[key] = value
        else:
            kwargs[key] = value
    return replace(default, **kwargs)


def config_from_dict(raw: Mapping[str, Any], source: str = "scoring config") -> ScoringConfig:
    """Build and validate a config from a parsed TOML document; missing sections keep
    their defaults. Raises :class:`ConfigError` listing every problem."""
    p: list[str] = []
    known_top = {f.name for f in fields(ScoringConfig)}
    for key in raw:
        if key not in known_top:
            p.append(f"{key}: unknown setting (known: {sorted(known_top)})")
    base = ScoringConfig()
    kwargs: dict[str, Any] = {}
    if "version" in raw:
        kwargs["version"] = str(raw["version"])
    if "unknown_event_weight" in raw:
        kwargs["unknown_event_weight"] = raw["unknown_event_weight"]
    if "events" in raw:
        events: dict[str, EventRule] = {}
        for name, spec in dict(raw["events"]).items():
            if not isinstance(spec, dict):
                p.append(f"events.{name!r}: must be a table with weight/family/core/advanced")
                continue
            unknown = set(spec) - {"weight", "family", "core", "advanced"}
            if unknown:
                p.append(f"events.{name!r}: unknown keys {sorted(unknown)}")
            if "weight" not in spec:
                p.append(f"events.{name!r}.weight: missing")
            events[name] = EventRule(
                weight=spec.get("weight", 0),
                family=spec.get("family", "adoption"),
                core=bool(spec.get("core", False)),
                advanced=bool(spec.get("advanced", False)),
            )
        kwargs["events"] = events
    if "metrics" in raw:
        metrics: dict[str, Metric] = {}
        for name, spec in dict(raw["metrics"]).items():
            if not isinstance(spec, dict):
                p.append(f"metrics.{name}: must be a table")
                continue
            unknown = set(spec) - {"weight", "curve", "description", "trend_curve", "trend_share"}
            if unknown:
                p.append(f"metrics.{name}: unknown keys {sorted(unknown)}")
            if "curve" not in spec or "weight" not in spec:
                p.append(f"metrics.{name}: needs weight and curve")
                continue
            trend = spec.get("trend_curve")
            metrics[name] = Metric(
                weight=spec["weight"],
                curve=_curve(spec["curve"], f"metrics.{name}.curve", p),
                description=str(spec.get("description", "")),
                trend_curve=None if trend is None else _curve(trend, f"metrics.{name}.trend", p),
                trend_share=float(spec.get("trend_share", 0.0)),
            )
        kwargs["metrics"] = metrics
    if "segment_weights" in raw:
        per_segment: dict[str, dict[str, int]] = {}
        for seg, spec in dict(raw["segment_weights"]).items():
            if not isinstance(spec, dict):
                p.append(f"segment_weights.{seg}: must be a table of component = weight")
                continue
            per_segment[str(seg)] = dict(spec)
        kwargs["segment_weights"] = per_segment
    sections: dict[str, type] = {
        "bands": Bands,
        "power_users": PowerUsers,
        "signals": Signals,
        "support": Support,
        "financial": Financial,
        "relationship": Relationship,
        "user_score": UserScore,
        "renewal": Renewal,
        "expansion": Expansion,
        "stages": Stages,
        "decisions": Decisions,
        "limits": Limits,
        "attention": AttentionRules,
        "locale": LocaleSettings,
    }
    for key, cls in sections.items():
        if key in raw:
            kwargs[key] = _section(cls, raw[key], key, p)
    if "milestones" in raw:
        ms: list[Milestone] = []
        for i, spec in enumerate(raw["milestones"] or []):
            try:
                ms.append(Milestone(str(spec["name"]), str(spec["event"]), int(spec["due_days"])))
            except (KeyError, TypeError, ValueError):
                p.append(f"milestones[{i}]: needs name, event and due_days")
        kwargs["milestones"] = tuple(ms)
    if "playbooks" in raw:
        kwargs["playbooks"] = _playbooks(raw["playbooks"], p)
    config = replace(base, **kwargs)
    p.extend(_problems(config))
    if p:
        raise ConfigError(p, source)
    return config


_PLAYBOOK_KEYS = frozenset({
    "name", "title", "reasons", "steps", "success", "segments", "min_arr",
    "renewal_within_days", "renewal_beyond_days",
})
_STEP_KEYS = frozenset({"title", "owner_role", "due_days"})


def _optional_number(spec: Mapping[str, Any], key: str, where: str, problems: list[str],
                     whole: bool = False) -> Any:
    v = spec.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or (whole and not isinstance(v, int)):
        problems.append(f"{where}.{key}: must be a {'whole ' if whole else ''}number")
        return None
    return v


def _playbooks(raw: Any, problems: list[str]) -> tuple[Playbook, ...]:
    """``[[playbooks]]`` tables (each with ``[[playbooks.steps]]``) → Playbook objects."""
    if not isinstance(raw, list):
        problems.append("playbooks: must be an array of tables ([[playbooks]])")
        return ()
    out: list[Playbook] = []
    types = {t.value for t in ReasonType}
    for i, spec in enumerate(raw):
        where = f"playbooks[{i}]"
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be a table")
            continue
        unknown = set(spec) - _PLAYBOOK_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        reasons = spec.get("reasons", [])
        segments = spec.get("segments", [])
        if not isinstance(reasons, list) or not isinstance(segments, list):
            problems.append(f"{where}: reasons and segments must be lists")
            reasons, segments = [], []
        bad = sorted(str(r) for r in reasons if r not in types)
        if bad:
            problems.append(f"{where}.reasons: unknown reason types {bad}")
        steps: list[PlaybookStep] = []
        for j, st in enumerate(spec.get("steps") or []):
            if not isinstance(st, dict) or set(st) - _STEP_KEYS or not isinstance(
                    st.get("title"), str) or not isinstance(st.get("due_days", 3), int):
                problems.append(f"{where}.steps[{j}]: needs title (text), owner_role and "
                                "due_days (whole days)")
                continue
            steps.append(PlaybookStep(st["title"], str(st.get("owner_role", "csm")),
                                      st.get("due_days", 3)))
        out.append(Playbook(
            name=str(spec.get("name", "")),
            title=str(spec.get("title", "")),
            reasons=frozenset(ReasonType(r) for r in reasons if r in types),
            steps=tuple(steps),
            success=str(spec.get("success", "")),
            segments=frozenset(str(x) for x in segments),
            min_arr=_optional_number(spec, "min_arr", where, problems),
            renewal_within_days=_optional_number(spec, "renewal_within_days", where, problems,
                                                 whole=True),
            renewal_beyond_days=_optional_number(spec, "renewal_beyond_days", where, problems,
                                                 whole=True),
        ))
    return tuple(out)


def load_config(path: str | Path | None = None) -> ScoringConfig:
    """Load and validate a TOML scoring config; ``None`` loads the shipped default."""
    target = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        with target.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(target)) from exc
    return config_from_dict(raw, str(target))


# --------------------------------------------------------------------------- dumping


def configured_playbooks(path: str | Path | None = None) -> tuple[Playbook, ...]:
    """The playbooks of the scoring config at ``path`` (none when it declares none)."""
    return tuple(load_config(path).playbooks)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, Curve):
        return _toml_value([list(pt) for pt in v.points])
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_config(config: ScoringConfig) -> str:
    """Write ``config`` as TOML that :func:`load_config` reads back to an equal config."""
    out = [
        "# Telltale scoring configuration (written by dump_config).",
        f"version = {_toml_value(config.version)}",
        f"unknown_event_weight = {config.unknown_event_weight}",
        "",
    ]
    for name, rule in config.events.items():
        out.append(f"[events.{_toml_value(name)}]")
        out.append(
            f"weight = {rule.weight}\nfamily = {_toml_value(rule.family)}\n"
            f"core = {_toml_value(rule.core)}\nadvanced = {_toml_value(rule.advanced)}\n"
        )
    for name, m in config.metrics.items():
        out.append(f"[metrics.{name}]")
        out.append(f"weight = {m.weight}")
        out.append(f"description = {_toml_value(m.description)}")
        out.append(f"curve = {_toml_value(m.curve)}")
        if m.trend_curve is not None:
            out.append(f"trend_curve = {_toml_value(m.trend_curve)}")
            out.append(f"trend_share = {m.trend_share!r}")
        out.append("")
    for seg, weights in config.segment_weights.items():
        out.append(f"[segment_weights.{seg}]")
        out.extend(f"{name} = {w}" for name, w in weights.items())
        out.append("")
    for key in (
        "bands", "power_users", "signals", "support", "financial", "relationship",
        "user_score", "expansion", "stages", "decisions", "limits", "locale",
    ):
        section = getattr(config, key)
        out.append(f"[{key}]")
        for f in fields(section):
            out.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
        out.append("")
    r = config.renewal
    out.append("[renewal]")
    out.append(f"checkpoints = {_toml_value(r.checkpoints)}")
    out.append(f"enterprise_arr = {r.enterprise_arr!r}")
    out.append(f"mid_market_arr = {r.mid_market_arr!r}")
    out.append("[renewal.windows]")
    for seg, days in r.windows.items():
        out.append(f"{seg} = {days}")
    out.append("")
    for ms in config.milestones:
        out.append("[[milestones]]")
        out.append(f"name = {_toml_value(ms.name)}")
        out.append(f"event = {_toml_value(ms.event)}")
        out.append(f"due_days = {ms.due_days}\n")
    out.extend(_attention_lines(config))
    return "\n".join(out) + "\n"


def _attention_lines(config: ScoringConfig) -> list[str]:
    a = config.attention
    out = ["[attention]"]
    tables = []
    for f in fields(a):
        v = getattr(a, f.name)
        if isinstance(v, Mapping):
            tables.append((f.name, v))
        else:
            out.append(f"{f.name} = {_toml_value(v)}")
    for name, table in tables:
        out.append(f"[attention.{name}]")
        out.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    out.append("")
    for pb in config.playbooks:
        out.append("[[playbooks]]")
        out.append(f"name = {_toml_value(pb.name)}")
        out.append(f"title = {_toml_value(pb.title)}")
        out.append(f"reasons = {_toml_value(sorted(pb.reasons))}")
        out.append(f"success = {_toml_value(pb.success)}")
        out.append(f"segments = {_toml_value(sorted(pb.segments))}")
        for key in ("min_arr", "renewal_within_days", "renewal_beyond_days"):
            v = getattr(pb, key)
            if v is not None:
                out.append(f"{key} = {_toml_value(v)}")
        for st in pb.steps:
            out.append("[[playbooks.steps]]")
            out.append(f"title = {_toml_value(st.title)}")
            out.append(f"owner_role = {_toml_value(st.owner_role)}")
            out.append(f"due_days = {st.due_days}")
        out.append("")
    return out
