"""A seeded, deterministic simulator of B2B SaaS usage, in Segment-spec JSON.

It plans a portfolio of accounts first (segment, seats, ARR, renewal date, the people in
each account and what will happen to the account at renewal), then walks the calendar day
by day and emits what those people and the surrounding systems (helpdesk, billing, NPS
survey tool, CRM meetings) would have sent: ``identify``, ``group``, ``track`` and
``page`` calls with the event names of Telltale's default vocabulary.

Churners get precursors (the champion stops logging in, usage decays, tickets spike,
payments fail, NPS drops, meetings are missed), each with its own onset that varies from
a couple of weeks to half a year before the renewal date, and each optional. About a
quarter of churners show nothing at all (budget cuts, acquisitions), and a share of
renewing accounts go through the same troubles and renew anyway. The outcome of an
account is therefore only partly written in its events, as in real life, which is what
makes a backtest on this data meaningful rather than a foregone conclusion.

The output is deterministic for a given :class:`SimulationConfig` (one ``random.Random``
seeded from it, calendar-ordered generation, no wall clock).
"""

from __future__ import annotations

import copy
import csv
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

DAY = 86_400.0

CORE_FEATURES = ("Report Published", "Workflow Completed", "Transaction Completed")
ADVANCED_FEATURES = ("Export Created", "Automation Created", "API Key Created")
_ADVANCED_WEIGHTS = (0.5, 0.42, 0.08)
GATED_FEATURES = ("sso", "audit_log", "advanced_permissions", "custom_roles", "sandbox")

SEGMENTS = ("smb", "mid_market", "enterprise")
PERSONAS = ("power", "regular", "occasional", "admin")

# Probability that a user of each persona is active on a working day at full engagement.
# Occasional users are licensed but rarely there, so a month of activity does not cover
# every seat (real seat utilisation sits well below 100%).
_ACTIVE_PROBABILITY = {"power": 0.85, "regular": 0.4, "occasional": 0.035, "admin": 0.25}
_WEEKEND_FACTOR = 0.12

_FIRST_NAMES = (
    "Dana", "Alex", "Sam", "Priya", "Jordan", "Mei", "Omar", "Lena", "Tomás", "Aisha",
    "Noah", "Chloé", "Ravi", "Sofia", "Kenji", "Marta", "Lucas", "Zoe", "Ibrahim", "Elena",
    "Hugo", "Nina", "Felix", "Amara", "Jonas", "Yuki", "Carlos", "Ingrid", "Mateo", "Leila",
)
_LAST_NAMES = (
    "Reyes", "Chen", "Okafor", "Müller", "Patel", "Kowalski", "Nakamura", "Silva", "Haddad",
    "Johansson", "Rossi", "Dubois", "Novak", "Kim", "Ahmed", "Garcia", "Fischer", "Moreau",
    "Singh", "Lindqvist", "Costa", "Brennan", "Ivanova", "Tanaka", "Mensah", "Larsen",
)
_NAME_FIRST = (
    "Northwind", "Bluefin", "Copperleaf", "Harbor", "Lumen", "Granite", "Juniper", "Orbit",
    "Pioneer", "Quarry", "Redwood", "Summit", "Tidal", "Vantage", "Willow", "Zephyr",
    "Atlas", "Beacon", "Cinder", "Delta", "Ember", "Fjord", "Golden", "Helix", "Iris",
    "Kestrel", "Lighthouse", "Meridian", "Nimbus", "Oakridge", "Prairie", "Silverline",
)
_NAME_SECOND = (
    "Labs", "Logistics", "Health", "Analytics", "Foods", "Retail", "Capital", "Robotics",
    "Media", "Energy", "Systems", "Studios", "Partners", "Software", "Bank", "Travel",
)
_OWNERS = (
    ("Riley Morgan", "U01RMORGAN"),
    ("Casey Lin", "U02CLIN"),
    ("Jamie Ortiz", "U03JORTIZ"),
    ("Taylor Brooks", "U04TBROOKS"),
    ("Morgan Adeyemi", "U05MADEYEMI"),
)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. Every field has a default; the output depends only on these."""

    accounts: int = 200
    """Number of customer accounts."""
    days: int = 365
    """Length of the simulated history in days."""
    churn_rate: float = 0.15
    """Share of accounts renewing inside the history that churn at renewal."""
    contraction_rate: float = 0.08
    """Share of accounts renewing inside the history that renew with fewer seats."""
    seed: int = 7
    """Seed of the random generator: same seed, same events."""
    start: date = date(2025, 1, 1)
    """First simulated day (UTC)."""
    new_account_share: float = 0.12
    """Share of accounts created during the history (they go through onboarding)."""
    workspace: str = "demo"
    """Workspace name written into nothing but kept for callers that convert to events."""
    first_renewal_day: int | None = None
    """Earliest day index of a renewal (default: a third into the history, at least 120)."""


@dataclass(slots=True)
class PlannedUser:
    user_id: str
    name: str
    email: str
    role: str
    persona: str
    activity: float  # the user's own multiplier on the persona's daily probability
    fragility: float  # drops out once the account's relative engagement falls below this
    joins_day: int  # day index of the first appearance
    leaves_day: int | None = None  # day index after which the user is gone


@dataclass(slots=True)
class PlannedAccount:
    """One account and its fate, decided before any event is generated."""

    account_id: str
    name: str
    segment: str
    plan: str
    seats: int
    arr: float
    created_at: date
    renewal_date: date
    owner: str
    owner_slack_id: str
    domain: str
    card_billing: bool
    engagement: float  # baseline engagement 0.25-1.0
    outcome: str | None  # renewed / churned / contracted, None if renewal after history
    new_arr: float | None
    new_seats: int | None
    external_ids: dict[str, str]
    users: list[PlannedUser] = field(default_factory=list)
    # precursors: name -> onset day index (absolute); parameters alongside
    decay_onset: int | None = None
    decay_days: float = 60.0  # e-folding time of the usage decay
    decay_floor: float = 0.1
    dip: tuple[int, int] | None = None  # temporary usage dip (start, end) day index
    champion_leaves: int | None = None
    champion_replaced: bool = False
    ticket_spike: int | None = None
    payment_failure: int | None = None
    payment_recovers: bool = True
    detractor_onset: int | None = None
    meetings_missed_onset: int | None = None
    cancel_notice_days: int = 0
    precursors: list[str] = field(default_factory=list)
    # state while generating
    last_payment_day: int = -1

    def traits(self) -> dict[str, Any]:
        traits: dict[str, Any] = {
            "name": self.name,
            "seats": self.seats,
            "plan": self.plan,
            "arr": round(self.arr, 2),
            "segment": self.segment,
            "renewal_date": self.renewal_date.isoformat(),
            "owner": self.owner,
            "owner_email": _owner_email(self.owner),
            "owner_slack_id": self.owner_slack_id,
            "created_at": self.created_at.isoformat() + "T00:00:00Z",
        }
        traits.update(self.external_ids)
        return traits


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to an account at (or by) a date. ``arr`` is before, ``new_arr`` after."""

    account_id: str
    date: date
    outcome: str  # renewed / churned / contracted
    arr: float
    new_arr: float | None = None
    segment: str | None = None


OUTCOME_FIELDS = ("account_id", "date", "outcome", "arr", "new_arr", "segment")


def _owner_email(owner: str) -> str:
    first, last = owner.lower().split(" ", 1)
    return f"{first}.{last}@telltale-customer.example"


class Simulation:
    """A planned portfolio: iterate :meth:`events` for Segment-spec dicts in time order."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.start_epoch = datetime(
            config.start.year, config.start.month, config.start.day, tzinfo=UTC
        ).timestamp()
        self.end = config.start + timedelta(days=config.days)
        self.accounts = _plan_accounts(config, self._rng)

    @property
    def outcomes(self) -> list[Outcome]:
        """Outcomes of accounts whose renewal falls inside the history."""
        result = []
        for acc in self.accounts:
            if acc.outcome is None:
                continue
            result.append(
                Outcome(
                    account_id=acc.account_id,
                    date=acc.renewal_date,
                    outcome=acc.outcome,
                    arr=round(acc.arr, 2),
                    new_arr=None if acc.new_arr is None else round(acc.new_arr, 2),
                    segment=acc.segment,
                )
            )
        return result

    def events(self, until: float | None = None) -> Iterator[dict[str, Any]]:
        """Segment-spec messages in timestamp order; stop before ``until`` (epoch s)."""
        gen = _Generator(self, random.Random(self.config.seed * 7919 + 1))
        for day in range(self.config.days):
            batch = gen.day(day)
            batch.sort(key=_sort_key)
            for epoch, message in batch:
                if until is not None and epoch > until:
                    return
                yield message

    def ground_truth(self) -> dict[str, dict[str, Any]]:
        """Per account: outcome and the precursors it was given (for tests and demos)."""
        return {
            acc.account_id: {
                "outcome": acc.outcome,
                "renewal_date": acc.renewal_date.isoformat(),
                "precursors": list(acc.precursors),
                "segment": acc.segment,
                "arr": acc.arr,
            }
            for acc in self.accounts
        }


def _sort_key(item: tuple[float, dict[str, Any]]) -> float:
    return item[0]


def simulate(config: SimulationConfig | None = None, **overrides: Any) -> Simulation:
    """Plan a portfolio. ``simulate(accounts=300, days=365, seed=1).events()`` streams it."""
    cfg = replace(config or SimulationConfig(), **overrides)
    if cfg.accounts < 1 or cfg.days < 1:
        raise ValueError("accounts and days must be at least 1")
    if not 0.0 <= cfg.churn_rate <= 1.0 or not 0.0 <= cfg.contraction_rate <= 1.0:
        raise ValueError("churn_rate and contraction_rate are shares between 0 and 1")
    if cfg.churn_rate + cfg.contraction_rate > 1.0:
        raise ValueError("churn_rate + contraction_rate must not exceed 1")
    return Simulation(cfg)


def simulate_recent(
    end: float, days: int = 30, accounts: int = 50, seed: int = 7, churn_rate: float = 0.15
) -> tuple[Simulation, Iterator[dict[str, Any]]]:
    """A portfolio whose history ends at ``end`` (epoch s, e.g. now) for live demos.

    Returns the simulation (for outcomes and ground truth) and its events up to ``end``;
    the history starts ``days`` days before ``end``'s day. Renewals fall in the half year
    after ``end``, so renewal windows and forecasts are live, and the troubles of the
    accounts that will churn have begun for some of them and not yet for others.
    """
    end_day = datetime.fromtimestamp(end, tz=UTC).date()
    start = end_day - timedelta(days=days)
    sim = simulate(accounts=accounts, days=days + 180, seed=seed, start=start,
                   churn_rate=churn_rate, first_renewal_day=days + 7)
    return sim, sim.events(until=end)


# --------------------------------------------------------------------------- planning


def _plan_accounts(cfg: SimulationConfig, rng: random.Random) -> list[PlannedAccount]:
    accounts: list[PlannedAccount] = []
    # Renewals land inside the history but late enough that a 90-day horizon has some
    # history behind it; short histories (live demos) just spread them out.
    earliest_renewal = min(cfg.days - 1, max(cfg.days // 3, 120))
    if cfg.first_renewal_day is not None:
        earliest_renewal = min(cfg.days - 1, max(0, cfg.first_renewal_day))
    used_names: set[str] = set()
    for i in range(cfg.accounts):
        segment = rng.choices(SEGMENTS, weights=(0.55, 0.33, 0.12))[0]
        if segment == "smb":
            seats = rng.randint(3, 12)
            price = rng.uniform(420, 780)
            plan = rng.choice(("starter", "team"))
        elif segment == "mid_market":
            seats = rng.randint(14, 45)
            price = rng.uniform(700, 1100)
            plan = "business"
        else:
            seats = rng.randint(45, 110)
            price = rng.uniform(1100, 2200)
            plan = "enterprise"
        arr = round(seats * price / 100) * 100.0
        if segment != "enterprise" and arr > 50_000:
            arr = 49_000.0
        if segment == "enterprise" and arr <= 50_000:
            arr = 55_000.0
        name = _company_name(rng, used_names)
        domain = name.lower().replace(" ", "") + ".example"
        is_new = rng.random() < cfg.new_account_share
        if is_new:
            created_day = rng.randint(0, max(0, cfg.days // 2))
            created_at = cfg.start + timedelta(days=created_day)
            renewal_date = created_at + timedelta(days=365)
        else:
            renewal_day = rng.randint(earliest_renewal, cfg.days - 1)
            renewal_date = cfg.start + timedelta(days=renewal_day)
            years = rng.randint(1, 4)
            created_at = renewal_date - timedelta(days=365 * years)
        owner, slack = _OWNERS[rng.randrange(len(_OWNERS))]
        external: dict[str, str] = {}
        if rng.random() < 0.5:
            external["hubspot_company_id"] = str(rng.randint(10**9, 10**10 - 1))
        if rng.random() < 0.3:
            external["salesforce_account_id"] = "001" + f"{rng.getrandbits(60):015X}"[:15]
        engagement = 0.25 + 0.75 * rng.betavariate(3.0, 1.6)
        acc = PlannedAccount(
            account_id=f"acct-{i + 1:05d}",
            name=name,
            segment=segment,
            plan=plan,
            seats=seats,
            arr=arr,
            created_at=created_at,
            renewal_date=renewal_date,
            owner=owner,
            owner_slack_id=slack,
            domain=domain,
            card_billing=segment == "smb" or (segment == "mid_market" and rng.random() < 0.6),
            engagement=engagement,
            outcome=None,
            new_arr=None,
            new_seats=None,
            external_ids=external,
        )
        acc.users = _plan_users(acc, rng, cfg, created_day=(created_at - cfg.start).days)
        accounts.append(acc)

    _assign_outcomes(accounts, cfg, rng)
    for acc in accounts:
        _plan_precursors(acc, cfg, rng)
    return accounts


def _company_name(rng: random.Random, used: set[str]) -> str:
    for _ in range(50):
        name = f"{rng.choice(_NAME_FIRST)} {rng.choice(_NAME_SECOND)}"
        if name not in used:
            used.add(name)
            return name
    name = f"{rng.choice(_NAME_FIRST)} {rng.choice(_NAME_SECOND)} {len(used) + 1}"
    used.add(name)
    return name


def _plan_users(
    acc: PlannedAccount, rng: random.Random, cfg: SimulationConfig, created_day: int
) -> list[PlannedUser]:
    filled = max(2, round(acc.seats * rng.uniform(0.7, 1.0)))
    users: list[PlannedUser] = []
    n_power = max(1, round(filled * rng.uniform(0.08, 0.2)))
    n_admin = 1 if filled < 30 else 2
    for j in range(filled):
        if j < n_admin:
            persona = "admin"
        elif j < n_admin + n_power:
            persona = "power"
        else:
            persona = "regular" if rng.random() < 0.55 else "occasional"
        first = rng.choice(_FIRST_NAMES)
        last = rng.choice(_LAST_NAMES)
        email_local = f"{first}.{last}".lower().replace("é", "e").replace("á", "a")
        email_local = email_local.replace("ü", "u")
        if created_day >= 0:
            # New account: the admin arrives first, the team trickles in over weeks.
            joins = created_day + (0 if j == 0 else int(rng.expovariate(1 / 12)))
        else:
            joins = 0
        users.append(
            PlannedUser(
                user_id=f"{acc.account_id}-u{j + 1:03d}",
                name=f"{first} {last}",
                email=f"{email_local}{j + 1}@{acc.domain}",
                role="admin" if persona == "admin" else "member",
                persona=persona,
                activity=rng.uniform(0.6, 1.15),
                # Power users and admins hold on longest when an account cools down.
                fragility=rng.random() * (0.5 if persona in ("power", "admin") else 1.0),
                joins_day=joins,
            )
        )
    # Ordinary turnover: a few people leave during the year in any account.
    for user in users:
        if user.persona != "admin" and rng.random() < 0.06:
            user.leaves_day = rng.randint(max(user.joins_day, 1), cfg.days + 30)
    return users


def _assign_outcomes(
    accounts: list[PlannedAccount], cfg: SimulationConfig, rng: random.Random
) -> None:
    end = cfg.start + timedelta(days=cfg.days)
    renewing = [a for a in accounts if a.renewal_date < end]
    n_churn = round(len(renewing) * cfg.churn_rate)
    n_contract = round(len(renewing) * cfg.contraction_rate)
    # Accounts that never engaged much are somewhat more likely to leave, but only
    # somewhat: plenty of keen customers churn and plenty of lukewarm ones stay.
    pool = list(renewing)
    churners = _weighted_sample(pool, [1.6 - a.engagement for a in pool], n_churn, rng)
    churn_ids = {a.account_id for a in churners}
    rest = [a for a in pool if a.account_id not in churn_ids]
    contractors = _weighted_sample(rest, [1.4 - a.engagement for a in rest], n_contract, rng)
    contract_ids = {a.account_id for a in contractors}
    for acc in renewing:
        if acc.account_id in churn_ids:
            acc.outcome = "churned"
            acc.new_arr = 0.0
            acc.new_seats = 0
        elif acc.account_id in contract_ids:
            acc.outcome = "contracted"
            acc.new_seats = max(1, round(acc.seats * rng.uniform(0.5, 0.85)))
            acc.new_arr = round(acc.arr * acc.new_seats / acc.seats / 100) * 100.0
        else:
            acc.outcome = "renewed"
            if rng.random() < 0.18:  # expansion at renewal
                acc.new_seats = acc.seats + max(1, round(acc.seats * rng.uniform(0.1, 0.4)))
                acc.new_arr = round(acc.arr * acc.new_seats / acc.seats / 100) * 100.0
            else:
                acc.new_seats = acc.seats
                acc.new_arr = acc.arr


def _weighted_sample(
    items: list[PlannedAccount], weights: list[float], k: int, rng: random.Random
) -> list[PlannedAccount]:
    # Efraimidis–Spirakis: keys u^(1/w), keep the k largest; deterministic given rng.
    keyed = sorted(
        ((rng.random() ** (1.0 / max(w, 1e-6)), i) for i, w in enumerate(weights)), reverse=True
    )
    return [items[i] for _, i in keyed[:k]]


def _plan_precursors(acc: PlannedAccount, cfg: SimulationConfig, rng: random.Random) -> None:
    renewal_day = (acc.renewal_date - cfg.start).days

    def onset(lo: int, hi: int) -> int:
        return renewal_day - rng.randint(lo, hi)

    if acc.outcome == "churned":
        acc.cancel_notice_days = rng.randint(0, 10)
        if rng.random() < 0.25:
            acc.precursors.append("silent")  # budget cut, acquisition: nothing shows
            return
        chosen = False
        while not chosen:
            if rng.random() < 0.65:
                acc.decay_onset = onset(20, 200)
                acc.decay_days = rng.uniform(20, 90)
                acc.decay_floor = rng.uniform(0.05, 0.45)
                acc.precursors.append("usage_decay")
                chosen = True
            if rng.random() < 0.45:
                acc.champion_leaves = onset(15, 170)
                acc.precursors.append("champion_leaves")
                chosen = True
            if rng.random() < 0.35:
                acc.ticket_spike = onset(10, 150)
                acc.precursors.append("ticket_spike")
                chosen = True
            if acc.card_billing and rng.random() < 0.3:
                acc.payment_failure = onset(10, 120)
                acc.payment_recovers = rng.random() < 0.4
                acc.precursors.append("payment_failure")
                chosen = True
            if rng.random() < 0.45:
                acc.detractor_onset = onset(20, 200)
                acc.precursors.append("nps_detractor")
            if acc.segment != "smb" and rng.random() < 0.5:
                acc.meetings_missed_onset = onset(20, 160)
                acc.precursors.append("meetings_missed")
    elif acc.outcome == "contracted":
        if rng.random() < 0.55:
            acc.decay_onset = onset(30, 200)
            acc.decay_days = rng.uniform(40, 120)
            acc.decay_floor = rng.uniform(0.45, 0.75)
            acc.precursors.append("usage_decay")
        if rng.random() < 0.5:
            # The people the customer will stop paying for go quiet first.
            n_leave = max(1, acc.seats - (acc.new_seats or acc.seats))
            quiet = [u for u in acc.users if u.persona in ("occasional", "regular")]
            for user in rng.sample(quiet, min(n_leave, len(quiet))):
                user.leaves_day = onset(10, 150)
            acc.precursors.append("seats_idle")
        if rng.random() < 0.2:
            acc.ticket_spike = onset(10, 150)
            acc.precursors.append("ticket_spike")
        if rng.random() < 0.25:
            acc.detractor_onset = onset(20, 200)
            acc.precursors.append("nps_detractor")
    else:
        # Renewing (or not yet due) accounts go through the same troubles now and then.
        horizon = renewal_day if acc.outcome else cfg.days
        if rng.random() < 0.15:
            begin = rng.randint(0, max(0, horizon - 30))
            acc.dip = (begin, begin + rng.randint(20, 60))
            acc.precursors.append("usage_dip")
        if rng.random() < 0.06:
            acc.decay_onset = rng.randint(0, max(0, horizon - 30))
            acc.decay_days = rng.uniform(60, 150)
            acc.decay_floor = rng.uniform(0.3, 0.7)
            acc.precursors.append("usage_decay")
        if rng.random() < 0.1:
            acc.champion_leaves = rng.randint(0, max(0, horizon - 15))
            acc.champion_replaced = rng.random() < 0.7
            acc.precursors.append("champion_leaves")
        if rng.random() < 0.15:
            acc.ticket_spike = rng.randint(0, max(0, horizon - 10))
            acc.precursors.append("ticket_spike")
        if acc.card_billing and rng.random() < 0.07:
            acc.payment_failure = rng.randint(0, max(0, horizon - 10))
            acc.payment_recovers = True
            acc.precursors.append("payment_failure")
        if rng.random() < 0.15:
            acc.detractor_onset = rng.randint(0, max(0, horizon - 20))
            acc.precursors.append("nps_detractor")
        if acc.segment != "smb" and rng.random() < 0.12:
            acc.meetings_missed_onset = rng.randint(0, max(0, horizon - 20))
            acc.precursors.append("meetings_missed")


# --------------------------------------------------------------------------- generation


class _Generator:
    """Walks the calendar and emits each day's messages for every live account."""

    def __init__(self, sim: Simulation, rng: random.Random) -> None:
        self.sim = sim
        self.cfg = sim.config
        self.rng = rng
        # Renewals change seats, ARR and renewal dates as the calendar runs; work on a copy
        # so that the plan (and the outcomes) stay as decided.
        self.accounts = copy.deepcopy(sim.accounts)
        self._day_prefix = ""
        self.scheduled: dict[int, list[tuple[PlannedAccount, str, str, dict[str, Any]]]] = {}
        self.ticket_seq = 0
        self.announced: set[str] = set()
        self.start_day_index = {
            acc.account_id: (acc.created_at - self.cfg.start).days for acc in self.accounts
        }
        # The champion is the most active power user of each account.
        self.champion: dict[str, str] = {}
        for acc in self.accounts:
            powers = [u for u in acc.users if u.persona == "power"]
            if powers:
                self.champion[acc.account_id] = max(powers, key=lambda u: u.activity).user_id

    # -- helpers -------------------------------------------------------------------

    def _message_id(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}"

    def _stamp(self, day: int, seconds: float) -> tuple[float, str]:
        seconds = min(seconds, 86_399.999)  # a late session ends at midnight, not after
        epoch = self.sim.start_epoch + day * DAY + seconds
        whole = int(seconds)
        ms = int((seconds - whole) * 1000)
        h, rem = divmod(whole, 3600)
        m, s = divmod(rem, 60)
        return epoch, f"{self._day_prefix}T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"

    def _call(self, out: list[tuple[float, dict[str, Any]]], day: int, seconds: float,
              type_: str, user_id: str, **fields: Any) -> dict[str, Any]:
        """One Segment call of ``user_id`` at ``seconds`` after midnight of ``day``, added
        to ``out``: its type, a fresh message id, the user, ``fields``, then its time."""
        epoch, stamp = self._stamp(day, seconds)
        message: dict[str, Any] = {"type": type_, "messageId": self._message_id(),
                                   "userId": user_id, **fields, "timestamp": stamp}
        out.append((epoch, message))
        return message

    def _track(
        self,
        out: list[tuple[float, dict[str, Any]]],
        day: int,
        seconds: float,
        user_id: str,
        event: str,
        properties: dict[str, Any] | None = None,
        group_id: str | None = None,
    ) -> None:
        message = self._call(out, day, seconds, "track", user_id, event=event,
                             properties=properties or {})
        if group_id is not None:
            message["context"] = {"groupId": group_id}

    def _page(
        self, out: list[tuple[float, dict[str, Any]]], day: int, seconds: float,
        user_id: str, name: str,
    ) -> None:
        self._call(out, day, seconds, "page", user_id, name=name,
                   properties={"path": "/" + name.lower()})

    def _announce(
        self, out: list[tuple[float, dict[str, Any]]], day: int, seconds: float,
        acc: PlannedAccount, user: PlannedUser,
    ) -> None:
        # The group call first, so that a single pass over the history (like the live
        # identity map) already knows the account when the identify arrives.
        self._call(out, day, seconds, "group", user.user_id, groupId=acc.account_id,
                   traits=acc.traits())
        self._call(out, day, seconds + 0.5, "identify", user.user_id,
                   traits={"name": user.name, "email": user.email, "role": user.role})

    def _work_time(self) -> float:
        # Business hours with a tail into the evening, in seconds after midnight UTC.
        return min(86_000.0, max(60.0, self.rng.gauss(13.5 * 3600, 2.6 * 3600)))

    def engagement(self, acc: PlannedAccount, day: int) -> float:
        level = acc.engagement
        if acc.decay_onset is not None and day >= acc.decay_onset:
            fall = math.exp(-(day - acc.decay_onset) / acc.decay_days)
            level *= acc.decay_floor + (1 - acc.decay_floor) * fall
        if acc.dip is not None and acc.dip[0] <= day < acc.dip[1]:
            level *= 0.45
        return level

    # -- one day ---------------------------------------------------------------------

    def day(self, day: int) -> list[tuple[float, dict[str, Any]]]:
        cfg = self.cfg
        current = cfg.start + timedelta(days=day)
        self._day_prefix = current.isoformat()
        weekend = current.weekday() >= 5
        out: list[tuple[float, dict[str, Any]]] = []
        for acc, user_id, event, props in self.scheduled.pop(day, []):
            if acc.outcome == "churned" and current > acc.renewal_date:
                continue  # the customer is gone; nothing more is recorded about it
            self._track(out, day, self._work_time(), user_id, event, props, acc.account_id)
        for acc in self.accounts:
            renewal_day = (acc.renewal_date - cfg.start).days
            if day < self.start_day_index[acc.account_id]:
                continue
            if acc.outcome == "churned" and day > renewal_day:
                continue
            self._account_day(out, acc, day, renewal_day, weekend, current)
        return out

    def _account_day(
        self,
        out: list[tuple[float, dict[str, Any]]],
        acc: PlannedAccount,
        day: int,
        renewal_day: int,
        weekend: bool,
        current: date,
    ) -> None:
        rng = self.rng
        level = self.engagement(acc, day)
        # When an account cools down, people stop using the product one by one (the least
        # committed first) rather than everybody using it a little less.
        relative = level / acc.engagement
        gid = acc.account_id
        champion = self.champion.get(gid)
        active_users: list[PlannedUser] = []
        admin = acc.users[0]
        for user in acc.users:
            if day < user.joins_day or (user.leaves_day is not None and day > user.leaves_day):
                continue
            if user.user_id not in self.announced:
                self.announced.add(user.user_id)
                self._announce(out, day, 30 + rng.random() * 60, acc, user)
                if 0 <= self.start_day_index[gid] < day and user is not admin:
                    self._track(out, day, 7 * 3600 + rng.random() * 3600, admin.user_id,
                                "Teammate Invited", {"invitee": user.email})
            if (
                acc.champion_leaves is not None
                and user.user_id == champion
                and day >= acc.champion_leaves
            ):
                continue
            if relative < user.fragility:
                continue
            p = _ACTIVE_PROBABILITY[user.persona] * user.activity * level
            if (
                acc.champion_leaves is not None and acc.champion_replaced
                and day >= acc.champion_leaves + 14 and user.persona == "regular"
            ):
                p *= 1.25  # someone else picks the tool up
            if weekend:
                p *= _WEEKEND_FACTOR
            if rng.random() < p:
                active_users.append(user)
                self._session(out, acc, user, day, level)

        if acc.outcome is not None and day == renewal_day:
            self._renewal(out, acc, day)
        elif acc.outcome == "churned" and day == renewal_day - acc.cancel_notice_days:
            self._track(out, day, self._work_time(), admin.user_id, "Subscription Cancelled",
                        {"reason": rng.choice(("budget", "switched_vendor", "no_longer_needed",
                                               "acquired"))}, gid)
        self._support(out, acc, day, level)
        self._billing(out, acc, day, current)
        self._relationship(out, acc, day, level, current, active_users)

    def _session(
        self,
        out: list[tuple[float, dict[str, Any]]],
        acc: PlannedAccount,
        user: PlannedUser,
        day: int,
        level: float,
    ) -> None:
        rng = self.rng
        t = self._work_time()
        uid = user.user_id
        self._track(out, day, t, uid, "Logged In")
        persona = user.persona
        depth = 0.35 + 0.65 * level
        if persona == "power":
            n_dash, n_core, n_adv = rng.randint(1, 2), rng.randint(1, 5), rng.randint(0, 2)
        elif persona == "regular":
            n_dash, n_core, n_adv = rng.randint(1, 2), rng.randint(0, 2), int(rng.random() < 0.15)
        elif persona == "admin":
            n_dash, n_core, n_adv = 1, int(rng.random() < 0.4), int(rng.random() < 0.1)
        else:
            n_dash, n_core, n_adv = int(rng.random() < 0.7), int(rng.random() < 0.25), 0
        n_core = int(n_core * depth + rng.random())
        for _ in range(n_dash):
            t += rng.uniform(20, 400)
            self._track(out, day, t, uid, "Dashboard Viewed")
        for _ in range(n_core):
            t += rng.uniform(60, 900)
            self._track(out, day, t, uid, rng.choice(CORE_FEATURES))
        for _ in range(n_adv):
            t += rng.uniform(60, 900)
            self._track(out, day, t, uid, rng.choices(ADVANCED_FEATURES, _ADVANCED_WEIGHTS)[0])
        # Expansion interest: engaged accounts near their seat limit hit gated features.
        if level > 0.6 and persona in ("power", "admin") and rng.random() < 0.02:
            t += rng.uniform(30, 300)
            self._track(out, day, t, uid, "Feature Gated Clicked",
                        {"feature": rng.choice(GATED_FEATURES)})
            if rng.random() < 0.5:
                t += rng.uniform(5, 60)
                self._page(out, day, t, uid, rng.choice(("Pricing", "Upgrade")))
            if rng.random() < 0.15:
                self._track(out, day, t + 30, uid, "Higher Tier Asked")

    def _renewal(
        self, out: list[tuple[float, dict[str, Any]]], acc: PlannedAccount, day: int
    ) -> None:
        admin = acc.users[0]
        gid = acc.account_id
        t = 10 * 3600 + self.rng.random() * 3600
        if acc.outcome == "churned":
            return
        new_seats = acc.new_seats or acc.seats
        if new_seats != acc.seats:
            self._track(out, day, t, admin.user_id, "Seats Changed",
                        {"seats": new_seats, "previous_seats": acc.seats}, gid)
        if acc.outcome == "contracted" and acc.plan in ("team", "business", "enterprise") and (
            self.rng.random() < 0.4
        ):
            lower = {"team": "starter", "business": "team", "enterprise": "business"}[acc.plan]
            self._track(out, day, t + 5, admin.user_id, "Plan Downgraded",
                        {"from_plan": acc.plan, "to_plan": lower}, gid)
            acc.plan = lower
        acc.seats = new_seats
        acc.arr = acc.new_arr or acc.arr
        acc.renewal_date = acc.renewal_date + timedelta(days=365)
        if not acc.card_billing:
            self._track(out, day, t + 10, admin.user_id, "Payment Succeeded",
                        {"amount": round(acc.arr, 2)}, gid)
        epoch, stamp = self._stamp(day, t + 20)
        out.append((epoch, {
            "type": "group",
            "messageId": self._message_id(),
            "userId": admin.user_id,
            "groupId": gid,
            "traits": acc.traits(),
            "timestamp": stamp,
        }))

    def _requester(self, acc: PlannedAccount) -> str:
        return self.rng.choice(acc.users[: max(1, len(acc.users) // 2)]).user_id

    def _open_ticket(
        self, out: list[tuple[float, dict[str, Any]]], acc: PlannedAccount, day: int,
        level: float, urgent: bool,
    ) -> None:
        rng = self.rng
        self.ticket_seq += 1
        ticket_id = f"T-{self.ticket_seq:06d}"
        requester = self._requester(acc)
        priority = rng.choice(("high", "urgent")) if urgent else rng.choice(
            ("low", "normal", "normal", "high"))
        self._track(out, day, self._work_time(), requester, "Ticket Opened",
                    {"ticket_id": ticket_id, "priority": priority}, acc.account_id)
        # Unhappy accounts wait longer and rate the help lower.
        resolve_after = 1 + int(rng.expovariate(1 / (2.0 if level > 0.5 else 6.0)))
        due = day + resolve_after
        self.scheduled.setdefault(due, []).append(
            (acc, requester, "Ticket Resolved", {"ticket_id": ticket_id}))
        if rng.random() < 0.45:
            mood = level if not urgent else level * 0.6
            score = max(1, min(5, round(rng.gauss(1.6 + 3.4 * mood, 0.9))))
            self.scheduled.setdefault(due + 1, []).append(
                (acc, requester, "CSAT Submitted", {"ticket_id": ticket_id, "score": score}))

    def _support(
        self, out: list[tuple[float, dict[str, Any]]], acc: PlannedAccount, day: int,
        level: float,
    ) -> None:
        rng = self.rng
        if rng.random() < 0.006 * math.sqrt(len(acc.users)):
            self._open_ticket(out, acc, day, level, urgent=False)
        spike = acc.ticket_spike
        if spike is not None and spike <= day < spike + 8 and rng.random() < 0.55:
            self._open_ticket(out, acc, day, level, urgent=True)

    def _billing(
        self, out: list[tuple[float, dict[str, Any]]], acc: PlannedAccount, day: int,
        current: date,
    ) -> None:
        if not acc.card_billing or current.day != min(acc.created_at.day, 28):
            return
        admin = acc.users[0].user_id
        amount = round(acc.arr / 12, 2)
        t = 3 * 3600 + self.rng.random() * 1800
        failing = acc.payment_failure is not None and acc.payment_failure <= day and (
            not acc.payment_recovers or day < acc.payment_failure + 31
        )
        if failing:
            self._track(out, day, t, admin, "Payment Failed", {"amount": amount}, acc.account_id)
            retry = day + self.rng.randint(3, 7)
            outcome = "Payment Succeeded" if acc.payment_recovers else "Payment Failed"
            self.scheduled.setdefault(retry, []).append(
                (acc, admin, outcome, {"amount": amount}))
        else:
            self._track(out, day, t, admin, "Payment Succeeded", {"amount": amount},
                        acc.account_id)

    def _relationship(
        self,
        out: list[tuple[float, dict[str, Any]]],
        acc: PlannedAccount,
        day: int,
        level: float,
        current: date,
        active_users: list[PlannedUser],
    ) -> None:
        rng = self.rng
        gid = acc.account_id
        detractor = acc.detractor_onset is not None and day >= acc.detractor_onset
        # NPS survey: each active user is asked about once a quarter and a third answer.
        for user in active_users:
            if rng.random() < 0.0035:
                mean = 3.0 + 7.0 * level if not detractor else 2.5 + 4.0 * level
                score = max(0, min(10, round(rng.gauss(mean, 1.8))))
                self._track(out, day, self._work_time(), user.user_id, "NPS Submitted",
                            {"score": score}, gid)
        if acc.segment == "smb" or current.weekday() >= 5:
            return
        missing = acc.meetings_missed_onset is not None and day >= acc.meetings_missed_onset
        admin = acc.users[0].user_id
        meeting_day = 1 + (int(acc.account_id[-3:]) % 20)
        if current.day == meeting_day:
            miss_p = 0.55 if missing else 0.08 + 0.15 * (1 - level)
            name = "Meeting Missed" if rng.random() < miss_p else "Meeting Held"
            self._track(out, day, self._work_time(), admin, name, {}, gid)
        if acc.segment == "enterprise" and current.day == meeting_day and current.month % 3 == 0:
            skip_p = 0.5 if missing else 0.08
            name = "QBR Skipped" if rng.random() < skip_p else "QBR Held"
            self._track(out, day, self._work_time(), admin, name, {}, gid)


# --------------------------------------------------------------------------- files


def write_outcomes(outcomes: list[Outcome], stream: TextIO) -> None:
    """Outcomes CSV: account_id,date,outcome,arr,new_arr,segment."""
    writer = csv.writer(stream)
    writer.writerow(OUTCOME_FIELDS)
    for o in outcomes:
        writer.writerow([
            o.account_id, o.date.isoformat(), o.outcome, f"{o.arr:.2f}",
            "" if o.new_arr is None else f"{o.new_arr:.2f}", o.segment or "",
        ])


def write_simulation(sim: Simulation, events_path: Path, outcomes_path: Path | None) -> int:
    """Write events as JSON lines (gzip when the name ends in .gz); returns the count."""
    import gzip

    import orjson

    count = 0
    opener: Any = gzip.open if events_path.suffix == ".gz" else open
    with opener(events_path, "wb") as fh:
        buf: list[bytes] = []
        for message in sim.events():
            buf.append(orjson.dumps(message))
            count += 1
            if len(buf) >= 5000:
                fh.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            fh.write(b"\n".join(buf) + b"\n")
    if outcomes_path is not None:
        with open(outcomes_path, "w", newline="", encoding="utf-8") as fh_out:
            write_outcomes(sim.outcomes, fh_out)
    return count


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> Any:
    parser = subparsers.add_parser(
        "simulate", help="generate a realistic B2B SaaS usage history with known outcomes",
        description="Write Segment-spec JSON lines of a simulated portfolio and its outcomes.",
    )
    from history.cli_args import positive_int

    parser.add_argument("--accounts", type=positive_int, default=200, help="number of accounts")
    parser.add_argument("--days", type=positive_int, default=365,
                        help="length of the history in days")
    parser.add_argument("--churn-rate", type=float, default=0.15,
                        help="share of renewals that churn (0-1)")
    parser.add_argument("--contraction-rate", type=float, default=0.08,
                        help="share of renewals that contract (0-1)")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1),
                        help="first day, YYYY-MM-DD")
    parser.add_argument("--out", type=Path, default=Path("events.jsonl"),
                        help="events file (JSON lines; .gz compresses)")
    parser.add_argument("--outcomes", type=Path, default=Path("outcomes.csv"),
                        help="outcomes CSV file")
    parser.set_defaults(func=run)
    return parser


def run(args: Any) -> int:
    import sys
    import time

    started = time.perf_counter()
    sim = simulate(
        accounts=args.accounts, days=args.days, churn_rate=args.churn_rate,
        contraction_rate=args.contraction_rate, seed=args.seed, start=args.start,
    )
    count = write_simulation(sim, args.out, args.outcomes)
    elapsed = time.perf_counter() - started
    outcomes = sim.outcomes
    churned = sum(1 for o in outcomes if o.outcome == "churned")
    print(
        f"{count:,} events for {args.accounts} accounts over {args.days} days "
        f"-> {args.out} ({elapsed:.1f} s); {len(outcomes)} renewals, {churned} churned "
        f"-> {args.outcomes}",
        file=sys.stderr,
    )
    return 0
