"""Health-change decisions and the wire record (``telltale.health-change/1``).

A change is emitted when something a person would act on happens: the band changes (with
hysteresis), the score moves ``decisions.score_move_points`` within
``decisions.score_move_days``, the forecast or lifecycle stage changes, a signal starts
or ends, or the account's attention standing changes (a reason appears, gets worse or
ends). Its id is a hash of workspace, account, reason keys and the event-time day, so
replays and redeliveries produce the same id. ``alert`` says whether people should be
told (Slack, the page's alerts) or only systems (webhooks, CRM fields): a resolved minor
signal, an info checkpoint or a reason ending is recorded but is not an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from state.aggregates import DAY, SignalState

if TYPE_CHECKING:  # attention imports this module for dates
    from scoring.attention import Attention

SCHEMA = "telltale.health-change/1"


@lru_cache(maxsize=4096)
def _date_text(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, tz=UTC).strftime("%Y-%m-%d")


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with a ``Z`` suffix (seconds precision); None stays None."""
    if ts is None:
        return None
    day, secs = divmod(int(ts // 1), 86400)
    hours, rest = divmod(secs, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{_date_text(day)}T{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def iso_date(day: int | None) -> str | None:
    """ISO date (YYYY-MM-DD) of an epoch day; None stays None."""
    return None if day is None else _date_text(day)


def iso_day(day: int) -> str:
    """ISO date (YYYY-MM-DD) of an epoch day."""
    return _date_text(day)


def signal_dict(s: SignalState) -> dict[str, Any]:
    return {
        "type": s.type,
        "key": s.key,
        "subject": s.subject,
        "severity": s.severity,
        "since": iso(s.since),
        "detail": s.detail,
        "text": s.text,
    }


def change_id(workspace: str, account_id: str, reason_keys: list[str], day: int) -> str:
    h = blake2b(digest_size=16)
    for part in (workspace, account_id, str(day), *sorted(reason_keys)):
        h.update(part.encode())
        h.update(b"\x00")
    return "hc_" + h.hexdigest()


@dataclass(slots=True)
class Snapshot:
    score: int
    band: str
    forecast: str | None
    lifecycle: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "band": self.band,
            "forecast": self.forecast,
            "lifecycle": self.lifecycle,
        }


@dataclass(slots=True)
class Driver:
    """A component that moved the score: its name, the points it moved, the sentence,
    and the component's detail at the last report (``previous``; None on a first
    assessment), so that a reader in another language can say it again from
    ``previous`` and the current detail (``explain.component_change_text``)."""

    component: str
    delta: int
    text: str
    previous: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"component": self.component, "delta": self.delta,
                               "text": self.text}
        if self.previous is not None:
            out["previous"] = self.previous
        return out


@dataclass(slots=True)
class HealthChange:
    """One decision to tell the world about an account's health."""

    id: str
    workspace: str
    account_id: str
    account_name: str | None
    time: float
    day: int
    reasons: list[str]
    previous: Snapshot | None
    current: Snapshot
    components: dict[str, dict[str, Any]]
    delta: int
    change_7d: int
    signals_started: list[SignalState]
    signals_ended: list[SignalState]
    active_signals: list[SignalState]
    explanation: str
    drivers: list[Driver]
    owner: str | None
    owner_email: str | None
    owner_slack_id: str | None
    segment: str | None
    arr: float | None
    renewal_date: str | None
    days_to_renewal: int | None
    external_ids: dict[str, str]
    users: list[dict[str, Any]]
    config_version: str
    extra: dict[str, Any] = field(default_factory=dict)
    attention: Attention | None = None  # the account's attention at this change
    alert: bool = True  # whether people are told, or only systems
    language: str = "en"  # the language explanation and texts are written in
    currency: str = "USD"  # of arr and of amounts in the texts (ISO 4217)
    attention_new: list[str] = field(default_factory=list)  # keys of reasons new or worse

    def to_dict(self) -> dict[str, Any]:
        """The wire JSON (validated by ``streams/schemas/health-change.v1.json``)."""
        current = self.current.to_dict()
        current["components"] = self.components
        record = self._fields(current)
        if self.attention is not None:
            record["attention"] = self.attention.to_dict()
            record["attention_new"] = list(self.attention_new)
        record["alert"] = self.alert
        record["language"] = self.language
        record["currency"] = self.currency
        return record

    def _fields(self, current: dict[str, Any]) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "id": self.id,
            "workspace": self.workspace,
            "account_id": self.account_id,
            "account_name": self.account_name,
            "event_time": iso(self.time),
            "day": self.day,
            "reasons": list(self.reasons),
            "previous": None if self.previous is None else self.previous.to_dict(),
            "current": current,
            "delta": self.delta,
            "change_7d": self.change_7d,
            "signals_started": [signal_dict(s) for s in self.signals_started],
            "signals_ended": [signal_dict(s) for s in self.signals_ended],
            "active_signals": [signal_dict(s) for s in self.active_signals],
            "explanation": self.explanation,
            "drivers": [d.to_dict() for d in self.drivers],
            "owner": self.owner,
            "owner_email": self.owner_email,
            "owner_slack_id": self.owner_slack_id,
            "segment": self.segment,
            "arr": self.arr,
            "renewal_date": self.renewal_date,
            "days_to_renewal": self.days_to_renewal,
            "external_ids": dict(self.external_ids),
            "users": self.users,
            "config_version": self.config_version,
        }
