"""The core's closed vocabularies, in one place: band, stages, change reasons and signal
severities, each as an enum (the values the wire format carries), with the label people
read (the page, Slack, reports) and the lower-case name sentences use (explanations).

A leaf of the core: it imports nothing of Telltale's, so every layer can name a band.
"""

from __future__ import annotations

from enum import StrEnum


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


BAND_LABELS: dict[str, str] = {Band.HEALTHY: "Healthy", Band.WATCH: "Watch",
                               Band.AT_RISK: "At risk"}
FORECAST_LABELS: dict[str, str] = {ForecastStage.COMMIT: "Commit",
                                   ForecastStage.BEST_CASE: "Best case",
                                   ForecastStage.AT_RISK: "At risk"}
LIFECYCLE_LABELS: dict[str, str] = {
    Lifecycle.ONBOARDING: "Onboarding", Lifecycle.ADOPTING: "Adopting",
    Lifecycle.MATURE: "Mature", Lifecycle.RENEWAL_WINDOW: "In renewal window",
    Lifecycle.CHURNED: "Churned", Lifecycle.REACTIVATED: "Reactivated",
}
#: Forecast and lifecycle stages share one label table (their values do not overlap but
#: for "at_risk", which reads the same in both).
STAGE_LABELS: dict[str, str] = {**FORECAST_LABELS, **LIFECYCLE_LABELS}

#: Names inside a sentence ("Band moved from watch to at risk").
BAND_NAMES: dict[str, str] = {band: label.lower() for band, label in BAND_LABELS.items()}
FORECAST_NAMES: dict[str, str] = {stage: label.lower()
                                  for stage, label in FORECAST_LABELS.items()}
LIFECYCLE_NAMES: dict[str, str] = {**{stage: label.lower()
                                      for stage, label in LIFECYCLE_LABELS.items()},
                                   Lifecycle.RENEWAL_WINDOW: "in the renewal window"}

