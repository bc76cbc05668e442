"""Lifecycle stage, forecast stage, segment and renewal arithmetic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scoring.labels import Band, ForecastStage, Lifecycle
from state.aggregates import AccountState

if TYPE_CHECKING:  # a signal unit reads created_day, and attention reads the units
    from scoring.config import ScoringConfig
    from scoring.scores import Facts


def segment(account: AccountState, config: ScoringConfig) -> str:
    """The segment trait when valid, else derived from ARR (smb when unknown)."""
    if account.segment_trait in config.renewal.windows:
        return account.segment_trait  # type: ignore[return-value]
    arr = account.arr
    if arr is not None:
        if arr > config.renewal.enterprise_arr:
            return "enterprise"
        if arr > config.renewal.mid_market_arr:
            return "mid_market"
    return "smb"


def created_day(account: AccountState) -> int | None:
    """Account creation day: the created_at trait, else the first activity."""
    if account.created_day is not None:
        return account.created_day
    if account.first_seen is not None:
        return int(account.first_seen // 86400)
    return None


def days_to_renewal(account: AccountState, today: int) -> int | None:
    return None if account.renewal_day is None else account.renewal_day - today


def lifecycle(
    account: AccountState, f: Facts, config: ScoringConfig, seg: str, dtr: int | None
) -> str:
    """Lifecycle stage; updates the account's churned/reactivated memory.

    churned: cancelled, or no activity for ``signals.account_lost_days``; reactivated:
    activity again after being churned (for ``stages.reactivated_days``); renewal window:
    within the segment's window before the renewal date; onboarding: younger than
    ``stages.onboarding_days`` with milestones still open; adopting: younger than
    ``stages.mature_days``; mature otherwise.
    """
    today = f.today
    st = config.stages
    lost = f.inactive_days is not None and f.inactive_days >= config.signals.account_lost_days
    if account.cancelled_day is not None or lost:
        if account.churned_day is None:
            account.churned_day = today
        account.reactivated_day = None
        return Lifecycle.CHURNED
    if account.churned_day is not None:
        account.churned_day = None
        account.reactivated_day = today
    if account.reactivated_day is not None:
        if today - account.reactivated_day < st.reactivated_days:
            return Lifecycle.REACTIVATED
        account.reactivated_day = None
    if dtr is not None and 0 <= dtr <= config.renewal.windows[seg]:
        return Lifecycle.RENEWAL_WINDOW
    born = created_day(account)
    age = today - born if born is not None else 0
    if age < st.onboarding_days and any(
        m.name not in account.milestones for m in config.milestones
    ):
        return Lifecycle.ONBOARDING
    if age < st.mature_days:
        return Lifecycle.ADOPTING
    return Lifecycle.MATURE


def forecast(
    band: str, life: str, change_30d: int, dtr: int | None, config: ScoringConfig, seg: str,
    risk_signals: int,
    previous: str | None = None,
) -> str | None:
    """Forecast stage for accounts with a renewal date: commit when healthy and not
    falling; at risk when at risk, churned, or watch and falling (or with billing
    trouble) inside the renewal window; best case otherwise.

    "Falling" is a 30-day drop of ``stages.falling_points_30d`` and only counts inside
    the segment's renewal window: months before renewal the band alone decides, so the
    forecast does not follow every monthly swing. Once the forecast has left commit the
    drop must shrink below half the threshold before it counts as recovered."""
    if dtr is None:
        return None
    in_window = dtr <= config.renewal.windows[seg]
    limit = config.stages.falling_points_30d
    if previous is not None and previous != ForecastStage.COMMIT:
        limit = (limit + 1) // 2
    falling = in_window and change_30d <= -limit
    if life == Lifecycle.CHURNED or band == Band.AT_RISK:
        return ForecastStage.AT_RISK
    if band == Band.HEALTHY:
        return ForecastStage.BEST_CASE if falling or risk_signals else ForecastStage.COMMIT
    if band == Band.WATCH and (falling or risk_signals) and in_window:
        return ForecastStage.AT_RISK
    return ForecastStage.BEST_CASE


def settle_forecast(account: AccountState, candidate: str | None, today: int,
                    config: ScoringConfig) -> str | None:
    """The forecast to show: a new stage replaces the current one only after holding for
    ``stages.forecast_settle_days`` (a score wobbling around a threshold must not flip
    the renewal forecast back and forth); the first forecast, a lost renewal date and a
    move to at risk with the band at risk take effect at once."""
    current = account.forecast
    if candidate == current:
        account.forecast_pending = None
        return current
    if current is None or candidate is None:
        account.forecast_pending = None
        return candidate
    pending = account.forecast_pending
    if pending is None or pending[0] != candidate:
        account.forecast_pending = [candidate, today]
        pending = account.forecast_pending
    if today - pending[1] >= config.stages.forecast_settle_days:
        account.forecast_pending = None
        return candidate
    return current



def stages_due(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """Days a stage can move by time alone: a renewal window opening, the day after the
    renewal, the end of onboarding and adoption, the end of a reactivation and the day a
    pending forecast settles."""
    st = config.stages
    days: list[int] = []
    if account.renewal_day is not None:
        days.extend(account.renewal_day - w for w in config.renewal.windows.values())
        days.append(account.renewal_day + 1)
    born = created_day(account)
    if born is not None:
        days.append(born + st.onboarding_days)
        days.append(born + st.mature_days)
    if account.reactivated_day is not None:
        days.append(account.reactivated_day + st.reactivated_days)
    if account.forecast_pending is not None:
        days.append(account.forecast_pending[1] + st.forecast_settle_days)
    return days
