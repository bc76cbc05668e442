"""Small event-time stories for scoring tests: build one account's history day by day,
replay it through the same ``step`` as production, and look at what was decided."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scoring.changes import HealthChange
from scoring.config import ScoringConfig, load_config
from scoring.engine import AccountAssessment
from scoring.replay import Replay
from state.aggregates import DAY, SignalState
from streams.events import Event, EventType, Source

START_DAY = 20_000  # 2024-10-04, a Friday; story day n is epoch day START_DAY + n


@dataclass
class Story:
    config: ScoringConfig = field(default_factory=load_config)
    workspace: str = "ws"
    account: str = "acme"
    _events: list[Event] = field(default_factory=list)
    _n: int = 0
    replay: Replay = field(init=False)
    changes: list[HealthChange] = field(default_factory=list)

    interval: float = 3600.0  # evaluate hourly, like a live pipeline with hourly ticks

    def __post_init__(self) -> None:
        self.replay = Replay(self.config, interval=self.interval)

    # ------------------------------------------------------------------ writing

    @staticmethod
    def ts(day: float, hour: float = 10.0) -> float:
        return (START_DAY + day) * DAY + hour * 3600.0

    @staticmethod
    def iso_day(day: int) -> str:
        from scoring.changes import iso_date

        d = iso_date(START_DAY + day)
        assert d is not None
        return d

    def _add(self, day: float, type_: EventType, hour: float, **kw: Any) -> Event:
        self._n += 1
        ts = self.ts(day, hour)
        e = Event(self.workspace, f"{self.account}-m{self._n}", type_, ts, ts, Source.SEGMENT,
                  account_id=self.account, **kw)
        self._events.append(e)
        return e

    def track(self, day: float, user: str | None, name: str, times: int = 1,
              hour: float = 10.0, **props: Any) -> None:
        for i in range(times):
            self._add(day, EventType.TRACK, hour + i * 0.01, name=name, user_id=user,
                      properties=dict(props))

    def page(self, day: float, user: str, name: str) -> None:
        self._add(day, EventType.PAGE, 10.0, name=name, user_id=user)

    def group(self, day: float, user: str | None = None, **traits: Any) -> None:
        self._add(day, EventType.GROUP, 9.0, user_id=user, traits=traits)

    def identify(self, day: float, user: str, name: str, email: str | None = None) -> None:
        traits = {"name": name}
        if email:
            traits["email"] = email
        self._add(day, EventType.IDENTIFY, 9.0, user_id=user, traits=traits)

    def daily(self, users: list[str], days: range, name: str = "Dashboard Viewed",
              times: int = 1) -> None:
        for d in days:
            for u in users:
                self.track(d, u, name, times=times)

    # ------------------------------------------------------------------ running

    def run_to(self, day: int, hour: float = 0.0) -> list[HealthChange]:
        """Evaluate everything up to story day ``day`` at ``hour`` ("on day N")."""
        until = self.ts(day, hour)
        pending = sorted((e for e in self._events if e.timestamp < until),
                         key=lambda e: e.timestamp)
        self._events = [e for e in self._events if e.timestamp >= until]
        out = self.replay.feed(pending)
        out.extend(self.replay.advance_to(until))
        self.changes.extend(out)
        return out

    def starts_on(self, day: int, type_: str) -> tuple[list[HealthChange], list[SignalState]]:
        """Run to the last hour before ``day``, where no ``type_`` signal may be active yet,
        then into ``day``: that run's changes and the ``type_`` signals they start."""
        self.run_to(day - 1, hour=23)
        assert self.active(type_) == [], f"{type_} is active before day {day}"
        changes = self.run_to(day)
        return changes, self.started(changes, type_)

    @property
    def assessment(self) -> AccountAssessment:
        a = self.replay.assessment(self.workspace, self.account)
        assert a is not None
        return a

    def active(self, type_: str) -> list[SignalState]:
        return [s for s in self.assessment.signals if s.type == type_]

    @staticmethod
    def started(changes: list[HealthChange], type_: str) -> list[SignalState]:
        return [s for c in changes for s in c.signals_started if s.type == type_]

    @staticmethod
    def ended(changes: list[HealthChange], type_: str) -> list[SignalState]:
        return [s for c in changes for s in c.signals_ended if s.type == type_]


def small_account(s: Story) -> Story:
    """Acme: 5 seats, created 300 days before day 0; ana and ben active on days 0-29."""
    s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300))
    s.daily(["ana", "ben"], range(0, 30))
    return s


def saturated_account(s: Story, active: int) -> Story:
    """Acme: 30 seats, ``active`` users on days 0-9 and an advanced feature used on day 5;
    run to noon of day 9."""
    s.group(0, name="Acme", seats=30, created_at=s.iso_day(-300))
    s.daily([f"u{i:02d}" for i in range(active)], range(0, 10))
    s.track(5, "u00", "Export Created")
    s.run_to(9, hour=12)
    return s


def upgrade_curious_account(s: Story) -> Story:
    """The :func:`small_account` with a gated-feature click (sso) on day 3 and a look at
    the Pricing page on day 4; run to noon of day 4."""
    small_account(s)
    s.track(3, "ana", "Feature Gated Clicked", feature="sso")
    s.page(4, "ben", "Pricing")
    s.run_to(4, hour=12)
    return s
