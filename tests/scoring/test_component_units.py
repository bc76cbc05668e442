"""Every account-score component is one declared unit: its weight and curve, the other
settings it reads, a due rule, text for what it measures and a line in the docs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from scoring import scores
from scoring.config import DEFAULT_CONFIG_PATH, METRIC_NAMES, load_config
from scoring.engine import step
from scoring.explain import component_change_text, weakest_text
from scoring.scores import COMPONENTS, ComponentUnit, measure
from state.aggregates import DAY, AccountState, UserState
from tests.scoring.test_signal_units import _history

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config()
RAW_DEFAULT = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())


def _name(unit: ComponentUnit) -> str:
    return unit.name


def test_the_components_are_the_configured_metrics_in_score_order() -> None:
    assert tuple(u.name for u in COMPONENTS) == METRIC_NAMES
    assert set(scores._DUE) == {u.due for u in COMPONENTS}


@pytest.mark.parametrize("unit", COMPONENTS, ids=_name)
def test_every_component_is_configured_and_documented(unit: ComponentUnit) -> None:
    shipped = RAW_DEFAULT["metrics"][unit.name]
    assert {"weight", "curve"} <= set(shipped), f"metrics.{unit.name} in default.toml"
    for setting in unit.settings:
        section, _, key = setting.partition(".")
        assert hasattr(getattr(CONFIG, section), key), setting
        assert key in RAW_DEFAULT[section], f"{setting}: not in scoring/default.toml"
    assert f"| {unit.name} |" in (ROOT / "scoring" / "README.md").read_text()


def _details() -> dict[str, list[dict[str, Any]]]:
    """Each component's detail on every day of a few histories."""
    out: dict[str, list[dict[str, Any]]] = {u.name: [] for u in COMPONENTS}
    for seed in range(2):
        acc: AccountState | None = None
        users: dict[str, UserState] = {}
        for now, evs in _history(seed):
            r = step(acc, users, evs, now, CONFIG, "t", "a")
            acc = r.account
            users.update(r.users)
            f = measure(acc, int(now // DAY), CONFIG)
            for unit in COMPONENTS:
                out[unit.name].append(unit.measure(acc, f, CONFIG)[2])
                assert all(isinstance(d, int) for d in unit.due(acc, f.today, CONFIG))
    return out


DETAILS = _details()


@pytest.mark.parametrize("unit", COMPONENTS, ids=_name)
def test_every_component_has_text_for_what_it_measures(unit: ComponentUnit) -> None:
    generic = unit.name.replace("_", " ")
    details = DETAILS[unit.name]
    for before, after in zip([None, *details], details, strict=False):
        for text in (weakest_text(unit.name, after),
                     component_change_text(unit.name, before, after, 1),
                     component_change_text(unit.name, before, after, -1)):
            assert text.strip() and text != generic, (unit.name, after)
            assert not re.search(r"[{}<>]|None|\bnan\b", text), (unit.name, text)


def test_recency_keeps_ordering_a_quiet_account_after_the_usage_windows_empty() -> None:
    """Three people stop on day 30. The 90-day windows of the other usage components
    are empty by day 121 (and the score does not rise as they empty), but it keeps
    falling with the days since anyone used the product until the curve's last point
    (180 days), then rests; re-evaluating it on time alone stops there, and nothing was
    missed meanwhile."""
    from tests.scoring.story import Story

    s = Story()
    s.group(0, name="Acme", seats=3, created_at=s.iso_day(-100))
    s.daily(["ana", "ben", "cy"], range(0, 31), "Report Published")
    score_on: dict[int, int] = {}
    for day in (100, 121, 150, 180, 211, 300):
        s.run_to(day, hour=12)
        score_on[day] = s.assessment.score
        exact = s.replay.assess_at("ws", "acme", s.ts(day, 12))
        assert exact is not None and exact.score == score_on[day], day
    assert score_on[100] > score_on[121] > score_on[180] > score_on[211] == score_on[300]
    assert score_on[121] >= score_on[150] >= score_on[180]
    recency = {c.name: c for c in s.assessment.components}["recency"]
    days = recency.detail["days"]
    assert recency.points == 0 and days >= 180
    assert weakest_text("recency", recency.detail) == (
        f"the product was last used {days} days ago")
    acc = s.replay.accounts[("ws", "acme")]
    last = int(acc.last_seen // DAY) if acc.last_seen is not None else None
    assert last is not None
    assert scores._while_recent(acc, last + 179, CONFIG) == [last + 180]
    assert scores._while_recent(acc, last + 180, CONFIG) == []


def _habit_config() -> Any:
    """The shipped config with the habit weighing what relationship did."""
    from dataclasses import replace

    m = dict(CONFIG.metrics)
    m["habit"] = replace(m["habit"], weight=m["relationship"].weight)
    m["relationship"] = replace(m["relationship"], weight=0)
    return replace(CONFIG, metrics=m).validate()


def test_habit_counts_the_days_of_the_year_with_use() -> None:
    """Ana uses the product every third day for 300 days, then stops. The habit is the
    days a month with use over the account's life until it is a year old, then over the
    last year; weighed, it is re-evaluated daily while the account is younger than a
    year and afterwards only when an active day leaves the year. It weighs nothing in
    the shipped config, and then asks for no evaluation at all."""
    from tests.scoring.story import Story

    config = _habit_config()
    s = Story(config=config)
    s.group(0, name="Acme", seats=3, created_at=s.iso_day(0))
    s.daily(["ana"], range(0, 300, 3), "Report Published")
    s.run_to(299, hour=23)
    habit = {c.name: c for c in s.assessment.components}["habit"]
    assert habit.detail == {"active_days": 100, "days": 300, "per_month": 10.0}
    assert habit.weight == config.metrics["habit"].weight and habit.points > 0
    assert weakest_text("habit", habit.detail) == (
        "the product was used on 10.0 days a month over the last 300 days")
    acc = s.replay.accounts[("ws", "acme")]
    d0 = int(s.ts(0) // DAY)
    assert scores._habit_due(acc, d0 + 299, config) == [d0 + 300]  # younger than a year
    assert scores._habit_due(acc, d0 + 299, CONFIG) == []  # weighs nothing: never due
    # a year on, the first active day (day 0) leaves on day 365, then every third day
    assert scores._habit_due(acc, d0 + 364, config) == [d0 + 365]
    assert scores._habit_due(acc, d0 + 365, config) == [d0 + 368]
    s.run_to(400, hour=12)
    habit = {c.name: c for c in s.assessment.components}["habit"]
    # days 36 to 400: the active days 36, 39, ..., 297
    assert habit.detail == {"active_days": 88, "days": 365, "per_month": 7.2}
    exact = s.replay.assess_at("ws", "acme", s.ts(400, 12))
    assert exact is not None and exact.score == s.assessment.score
