"""What one signal family declares, and what its detector reads and returns.

A :class:`SignalUnit` is everything Telltale knows about one family of signals, in one
place: the types it emits (each with its severity, the sentence key it is rendered by in
:mod:`scoring.explain`, the attention reason it raises, the routing tags that send it to
a default playbook and the line that documents it), the settings it reads, its detector
and its due-time rule. :mod:`scoring.signals.registry` lists the units; detection, due
times, routing and the signals document are all read from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scoring.labels import ReasonType, SignalSeverity
from state.aggregates import AccountState, SignalState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig
    from scoring.scores import Facts

RISK = SignalSeverity.RISK
EXPANSION = SignalSeverity.EXPANSION
INFO = SignalSeverity.INFO


@dataclass(slots=True)
class Detected:
    """A condition that holds now: a signal episode starts or continues with it."""

    type: str
    ident: str  # identity of the condition; episodes continue while it holds
    subject: str | None
    severity: str
    onset_day: int
    detail: dict[str, Any] = field(default_factory=dict)
    # Lower thresholds that keep an already active episode alive (hysteresis).
    sustain_only: bool = False


@dataclass(frozen=True, slots=True)
class Look:
    """What every detector reads about one account on one day."""

    account: AccountState
    f: Facts
    config: ScoringConfig
    ongoing: dict[str, SignalState]  # active episodes by identity
    created_day: int | None
    days_to_renewal: int | None


Detector = Callable[[Look], list[Detected]]
#: Epoch days after ``today`` at which the unit's conditions could change with no new
#: event (a threshold reached, a record leaving its window); days not after ``today``
#: are ignored.
DueRule = Callable[[AccountState, int, "ScoringConfig"], Iterable[int]]


@dataclass(frozen=True, slots=True)
class SignalType:
    """One signal type as scoring emits it and everyone downstream matches it.

    ``name`` is the wire name, or a pattern with ``<n>`` for a type per configured
    threshold (``expand`` then lists the names a configuration makes). ``text_key`` is the
    kind :func:`scoring.explain.signal_text` renders it by, ``examples`` are sample
    details it is rendered from (the text test renders every one). ``reason`` is the
    attention reason it raises (None: not a reason on its own); ``routes`` the routing
    tags of the default playbooks that send it on; ``route_pattern`` the glob those
    playbooks match it with. ``holds`` says, for the signals document, while what it
    holds; ``severity_doc`` overrides the severity shown there.
    """

    name: str
    severity: SignalSeverity
    holds: str
    examples: tuple[Mapping[str, Any], ...]
    routes: tuple[str, ...] = ()
    reason: ReasonType | None = None
    text_key: str = ""
    route_pattern: str = ""
    severity_doc: str = ""
    expand: Callable[[ScoringConfig], tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        # Attention finds a signal's reason by its type name; a type per threshold has
        # no name until a configuration makes one.
        if self.reason is not None and self.expand is not None:
            raise ValueError(f"{self.name}: a type per threshold cannot raise a reason")

    @property
    def key(self) -> str:
        """The kind its sentences are looked up by."""
        return self.text_key or self.name

    @property
    def pattern(self) -> str:
        """The glob routing matches it with."""
        return self.route_pattern or self.name

    def names(self, config: ScoringConfig) -> tuple[str, ...]:
        """The type names emitted under ``config``."""
        return self.expand(config) if self.expand is not None else (self.name,)


@dataclass(frozen=True, slots=True)
class SignalUnit:
    """One family of signals: its types, the settings it reads (``section.key`` of the
    scoring configuration; ``milestones`` for the milestone list), its detector and its
    due-time rule."""

    family: str
    title: str
    types: tuple[SignalType, ...]
    settings: tuple[str, ...]
    detect: Detector
    due: DueRule

    @property
    def sections(self) -> tuple[str, ...]:
        """The configuration sections the unit reads, in order of first mention."""
        return tuple(dict.fromkeys(s.split(".", 1)[0] for s in self.settings))


# --------------------------------------------------------------------------- helpers


def user_name(account: AccountState, uid: str | None) -> str | None:
    """The name a person is shown by (their id when unnamed)."""
    if uid is None:
        return None
    s = account.users.get(uid)
    return (s.name if s is not None and s.name else None) or uid


def fall(look: Look, kind: SignalType, episode: SignalState | None, base: int, current: int,
         threshold_pct: float, pct_field: str, extra: dict[str, Any]) -> list[Detected]:
    """A fall from ``base`` to ``current`` of ``threshold_pct`` percent or more; an episode
    holds down to half of it and keeps the base it started from."""
    drop = (base - current) / base * 100.0
    if drop < threshold_pct / 2:
        return []
    return [Detected(kind.name, kind.name, None, kind.severity, look.f.today,
                     {"previous": base, "current": current, **extra,
                      pct_field: round(drop, 1)},
                     sustain_only=episode is not None or drop < threshold_pct)]


def after(records: Iterable[list[Any]], days: int) -> list[int]:
    """The day each dated record (``[day, ...]``) leaves a window of ``days`` days."""
    return [r[0] + days for r in records]
