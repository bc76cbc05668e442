"""The core's closed vocabularies, in one place: band, stages, change reasons, signal
severities and attention reasons, each as an enum (the values the wire format carries),
with the label people read (the page, Slack, reports) and the lower-case name sentences
use (explanations).

The tables below are the English labels, which are also the message ids: the functions
at the end look them up in the reader's language (``scoring/i18n.py``).

Near the leaves of the core: it imports only :mod:`scoring.i18n`, so every layer can name
a band.
"""

from __future__ import annotations

from enum import StrEnum

from scoring.i18n import DEFAULT_LANGUAGE, N_, Lang, as_translator


class Band(StrEnum):
    """Score band: healthy, watch or at risk (limits in ``ScoringConfig.bands``)."""

    HEALTHY = "healthy"
    WATCH = "watch"
    AT_RISK = "at_risk"


class Lifecycle(StrEnum):
    ONBOARDING = "onboarding"
    ADOPTING = "adopting"
    MATURE = "mature"
    RENEWAL_WINDOW = "renewal_window"
    CHURNED = "churned"
    REACTIVATED = "reactivated"


class ForecastStage(StrEnum):
    COMMIT = "commit"
    BEST_CASE = "best_case"
    AT_RISK = "at_risk"


class ChangeReason(StrEnum):
    """Why a health change was emitted (``reasons`` of the wire record)."""

    BAND_CHANGED = "band_changed"
    SCORE_MOVED = "score_moved"
    FORECAST_CHANGED = "forecast_changed"
    LIFECYCLE_CHANGED = "lifecycle_changed"
    SIGNAL_STARTED = "signal_started"
    SIGNAL_ENDED = "signal_ended"
    ATTENTION_CHANGED = "attention_changed"


class SignalSeverity(StrEnum):
    RISK = "risk"
    EXPANSION = "expansion"
    INFO = "info"


class ReasonType(StrEnum):
    """Why an account is on someone's list (:mod:`scoring.attention`). Values are stable
    wire names. Kept here, below the signal units, because each unit names the reason its
    types raise and attention reads those declarations."""

    CHAMPION_QUIET = "champion_quiet"  # a power user not seen for N days
    SEATS_FELL = "seats_fell"  # active seats fell N% in 30 days
    CORE_USAGE_FELL = "core_usage_fell"  # core ("sticky") feature use fell N%
    HEALTH_FELL = "health_fell"  # score fell N points within the week
    HEALTH_AT_RISK = "health_at_risk"  # score in the at-risk band
    RENEWAL_AT_RISK = "renewal_at_risk"  # renewal near while health is weak or falling
    PAYMENT_FAILED = "payment_failed"
    PLAN_DOWNGRADED = "plan_downgraded"
    SEATS_REDUCED = "seats_reduced"
    SUPPORT_SPIKE = "support_spike"  # several tickets within a few days
    TICKET_OPEN_LONG = "ticket_open_long"
    NPS_DETRACTOR = "nps_detractor"
    MEETING_MISSED = "meeting_missed"
    ONBOARDING_MISSED = "onboarding_missed"
    ACCOUNT_INACTIVE = "account_inactive"  # nobody active for N days
    PLAYBOOK_STEP_OVERDUE = "playbook_step_overdue"  # decided on the worklist, not here
    # Expansion leads: a separate list, never mixed into risk.
    SEAT_SATURATION = "seat_saturation"
    GATED_FEATURE = "gated_feature"
    UPGRADE_INTEREST = "upgrade_interest"


BAND_LABELS: dict[str, str] = {Band.HEALTHY: N_("band", "Healthy"),
                               Band.WATCH: N_("band", "Watch"),
                               Band.AT_RISK: N_("band", "At risk")}
FORECAST_LABELS: dict[str, str] = {ForecastStage.COMMIT: N_("stage", "Commit"),
                                   ForecastStage.BEST_CASE: N_("stage", "Best case"),
                                   ForecastStage.AT_RISK: N_("stage", "At risk")}
LIFECYCLE_LABELS: dict[str, str] = {
    Lifecycle.ONBOARDING: N_("stage", "Onboarding"), Lifecycle.ADOPTING: N_("stage", "Adopting"),
    Lifecycle.MATURE: N_("stage", "Mature"),
    Lifecycle.RENEWAL_WINDOW: N_("stage", "In renewal window"),
    Lifecycle.CHURNED: N_("stage", "Churned"), Lifecycle.REACTIVATED: N_("stage", "Reactivated"),
}
#: Forecast and lifecycle stages share one label table (their values do not overlap but
#: for "at_risk", which reads the same in both).
STAGE_LABELS: dict[str, str] = {**FORECAST_LABELS, **LIFECYCLE_LABELS}

#: Names inside a sentence ("Band moved from watch to at risk").
BAND_NAMES: dict[str, str] = {Band.HEALTHY: N_("band name", "healthy"),
                              Band.WATCH: N_("band name", "watch"),
                              Band.AT_RISK: N_("band name", "at risk")}
_WEAK = N_("band name", "weak")
FORECAST_NAMES: dict[str, str] = {ForecastStage.COMMIT: N_("forecast name", "commit"),
                                  ForecastStage.BEST_CASE: N_("forecast name", "best case"),
                                  ForecastStage.AT_RISK: N_("forecast name", "at risk")}
LIFECYCLE_NAMES: dict[str, str] = {
    Lifecycle.ONBOARDING: N_("lifecycle name", "onboarding"),
    Lifecycle.ADOPTING: N_("lifecycle name", "adopting"),
    Lifecycle.MATURE: N_("lifecycle name", "mature"),
    Lifecycle.RENEWAL_WINDOW: N_("lifecycle name", "in the renewal window"),
    Lifecycle.CHURNED: N_("lifecycle name", "churned"),
    Lifecycle.REACTIVATED: N_("lifecycle name", "reactivated"),
}
#: Score components (``scoring.config.METRIC_NAMES``) as the page names them.
COMPONENT_LABELS: dict[str, str] = {
    "active_seats": N_("component", "Active seats"),
    "power_users": N_("component", "Power users"),
    "engagement": N_("component", "Engagement"),
    "core_features": N_("component", "Core features"),
    "recency": N_("component", "Recency"),
    "habit": N_("component", "Habit"),
    "support": N_("component", "Support"),
    "financial": N_("component", "Financial"),
    "relationship": N_("component", "Relationship"),
}


def component_label(name: str, language: Lang = DEFAULT_LANGUAGE) -> str:
    """A component's label ("Active seats" / "Sièges actifs"); unknown: its name in words."""
    label = COMPONENT_LABELS.get(name)
    if label is None:
        return name.replace("_", " ").capitalize()
    return as_translator(language).pgettext("component", label)


def band_label(band: str, language: Lang = DEFAULT_LANGUAGE) -> str:
    """The label people read for a band ("At risk" / "À risque"); an unknown value as is."""
    label = BAND_LABELS.get(str(band))
    return str(band) if label is None else as_translator(language).pgettext("band", label)


def stage_label(stage: str, language: Lang = DEFAULT_LANGUAGE) -> str:
    """The label of a forecast or lifecycle stage; an unknown value as is."""
    label = STAGE_LABELS.get(str(stage))
    return str(stage) if label is None else as_translator(language).pgettext("stage", label)


def band_name(band: str, language: Lang = DEFAULT_LANGUAGE) -> str:
    """A band inside a sentence ("Band moved from watch to at risk"); "weak" when unknown."""
    return as_translator(language).pgettext("band name", BAND_NAMES.get(str(band), _WEAK))


def forecast_name(stage: str, language: Lang = DEFAULT_LANGUAGE) -> str:
    return as_translator(language).pgettext("forecast name", FORECAST_NAMES[stage])


def lifecycle_name(stage: str, language: Lang = DEFAULT_LANGUAGE) -> str:
    return as_translator(language).pgettext("lifecycle name", LIFECYCLE_NAMES[stage])
