"""A backtest's cost follows its accounts' lifetimes, not accounts × the history's days,
and gives exactly what a plain replay of every account gives."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.backtest_shortlived import comparable, write_history
from history.backtest import HistorySource, replay_history, replay_snapshots, result_dict
from history.evaluation import ProfitParams
from history.importers import import_segment_jsonl, read_outcomes, segment_events
from scoring.config import load_config
from scoring.replay import Replay
from state.aggregates import DAY
from streams.events import Event

HORIZONS = (60, 30)


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Event], Any]:
    folder = tmp_path_factory.mktemp("short-lived")
    write_history(240, folder / "events.jsonl", folder / "outcomes.csv", seed=3)
    outcomes = read_outcomes(folder / "outcomes.csv")
    events = list(import_segment_jsonl(folder / "events.jsonl", "default"))
    # accounts nobody asks about: read, never replayed
    extra = [{"type": "track", "messageId": f"x{i}", "userId": f"x{i % 40}",
              "event": "Logged In", "timestamp": e.timestamp, "context": {"groupId": f"x{i % 40}"}}
             for i, e in enumerate(events[::5])]
    merged = sorted(events + list(segment_events(extra, "default")),
                    key=lambda e: (e.timestamp, e.message_id))
    return merged, outcomes


def _plain(events: list[Event], outcomes: Any) -> dict[tuple[str, int], tuple[Any, ...]]:
    """Every account replayed on the daily grid for the whole history, each assessed at
    its moments: the reference the backtest must equal."""
    replay = Replay(config=load_config(None), keep_changes=False)
    requests = sorted((o.epoch - h * DAY, h, o.account_id) for o in outcomes for h in HORIZONS)
    out: dict[tuple[str, int], tuple[Any, ...]] = {}
    i = 0
    for at, h, account in requests:
        batch = []
        while i < len(events) and events[i].timestamp <= at:
            batch.append(events[i])
            i += 1
        replay.feed(batch)
        replay.advance_to(at)
        a = replay.assess_at("default", account, at)
        if a is not None:
            out[(account, h)] = (a.score, a.band, sorted({s.type for s in a.signals}),
                                 [(c.name, c.points) for c in a.components])
    return out


def test_the_backtest_replays_each_account_only_over_its_lifetime(
    short_lived: tuple[list[Event], Any],
) -> None:
    events, outcomes = short_lived
    run = replay_snapshots(events, outcomes, load_config(None), HORIZONS)
    got = {(s.account_id, s.horizon_days): (s.score, s.band, s.signals,
                                            [(n, c["points"]) for n, c in s.components.items()])
           for s in run.snapshots}
    assert got == _plain(events, outcomes)
    # one evaluation per day at most, from the account's first event to its last assessment
    first: dict[str, float] = {}
    for e in events:
        if e.account_id is not None:
            first.setdefault(e.account_id, e.timestamp)
    last: dict[str, float] = defaultdict(float)
    for o in outcomes:
        last[o.account_id] = max(last[o.account_id], o.epoch - min(HORIZONS) * DAY)
    lifetimes = sum(max(0.0, (last[a] - first[a]) / DAY) + 1 for a in last if a in first)
    assert run.steps <= lifetimes
    history_days = (events[-1].timestamp - events[0].timestamp) / DAY
    assert run.steps < 0.3 * len(outcomes) * history_days


def test_forgotten_accounts_leave_nothing_behind() -> None:
    config = load_config(None)
    replay = Replay(config=config, keep_changes=False)
    messages = [{"type": "track", "messageId": f"m{i}", "userId": f"u{i % 3}",
                 "event": "Report Published", "timestamp": 1_750_000_000 + i * 3_600,
                 "context": {"groupId": "a" if i % 3 else "b"}} for i in range(60)]
    replay.run(list(segment_events(messages, "default")))
    replay.forget("default", "a")
    assert [k for k in replay.accounts] == [("default", "b")]
    assert {k[1] for k in replay.users} == {"b"}
    assert replay.assessment("default", "a") is None
    assert replay.assess_at("default", "a", 1_760_000_000) is None
    replay.advance_to(1_760_000_000)  # its due time passes without stepping it again
    assert ("default", "a") not in replay.accounts


def test_a_short_lived_portfolio_gives_one_result_in_one_process_or_two(
    tmp_path: Path,
) -> None:
    """What ``telltale backtest --jobs 2`` writes equals ``--jobs 1``: every snapshot and
    every figure of the report (the per-process split must not show)."""
    write_history(300, tmp_path / "events.jsonl", tmp_path / "outcomes.csv", seed=5)
    outcomes = read_outcomes(tmp_path / "outcomes.csv")
    config = load_config(None)
    source = HistorySource(tmp_path / "events.jsonl")

    def backtest(jobs: int) -> bytes:
        run, report = replay_history(source, outcomes, config, (90, 60, 30), jobs=jobs)
        result = result_dict(run, outcomes, config, (90, 60, 30), ProfitParams())
        result["import"] = report.summary()
        return comparable(result)

    alone = backtest(1)
    assert alone == backtest(2)
    result = orjson.loads(alone)
    assert len(result["snapshots"]) >= 500  # two horizons fall within most lifetimes
    assert result["horizons"][1]["models"]["score"]["auc"] is not None
