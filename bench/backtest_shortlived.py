"""A large portfolio of short-lived accounts, and how fast ``telltale backtest`` replays it.

Like the real consumer histories that made the replay slow: tens of thousands of
one-person accounts, each active on about 30 days within six weeks somewhere in nine
months, a few dozen events each, with a renewal-or-churn decision a month after its
active stretch. Churners' usage fades over their stretch (a learnable signal, noisy).

    .venv/bin/python bench/backtest_shortlived.py --accounts 50000 --jobs 1,2

Writes the history (JSON lines) and its outcomes into a temporary folder (or ``--keep
DIR``), then times ``telltale backtest`` for each ``--jobs``, reports events/s (wall, and
per CPU-second, which a loaded machine stretches less), the load average before each run
and the peak RSS of the command and its worker processes, and checks that every
``--jobs`` gives the same result. ``--reference FILE`` also compares each result with a
``backtest-jobsN.json`` kept from an earlier run (another checkout's code, say): the
snapshots and every figure of the report but the timings must be identical. Prints
figures; exits non-zero only when results differ (timings depend on the load).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.simulated import machine_line

START = date(2025, 1, 1)
SPAN_DAYS = 270  # nine months
STRETCH_DAYS = 42  # each account's active stretch
DECISION_AFTER = 30  # days from the end of the stretch to the renewal or churn
EVENTS = (("Logged In", 5), ("Dashboard Viewed", 3), ("Report Published", 1),
          ("Export Created", 1))


def _stamp(day: date, seconds: float) -> str:
    t = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _account(rng: random.Random, i: int, churn_rate: float,
             ) -> tuple[list[tuple[str, bytes]], tuple[str, str, str, float]]:
    """One account's messages (time stamp, JSON line) and its outcome row."""
    account, user = f"c{i:06d}", f"u{i:06d}"
    begin = START + timedelta(days=rng.randrange(SPAN_DAYS - STRETCH_DAYS - DECISION_AFTER))
    churned = rng.random() < churn_rate
    # churners fade: the chance of a visit falls across the stretch
    days = [d for d in range(STRETCH_DAYS)
            if rng.random() < (0.95 - (0.8 * d / STRETCH_DAYS if churned else 0.2))]
    messages: list[tuple[str, bytes]] = []

    def add(day: date, seconds: float, message: dict[str, Any]) -> None:
        stamp = _stamp(day, seconds)
        message.update(messageId=f"{account}-{len(messages)}", userId=user, timestamp=stamp)
        messages.append((stamp, orjson.dumps(message)))

    add(begin, 60.0, {"type": "group", "groupId": account,
                      "traits": {"name": account, "seats": 1,
                                 "created_at": begin.isoformat()}})
    names = [n for n, _ in EVENTS]
    weights = [w for _, w in EVENTS]
    for d in days:
        day = begin + timedelta(days=d)
        for k in range(rng.choice((1, 1, 1, 2))):
            add(day, 3600.0 * (8 + rng.random() * 12) + k,
                {"type": "track", "event": rng.choices(names, weights)[0],
                 "properties": {}, "context": {"groupId": account}})
    decision = begin + timedelta(days=STRETCH_DAYS + DECISION_AFTER)
    return messages, (account, decision.isoformat(), "churned" if churned else "renewed",
                      round(rng.uniform(60, 600), 2))


def write_history(accounts: int, events_path: Path, outcomes_path: Path,
                  seed: int = 7, churn_rate: float = 0.3) -> int:
    """Write the portfolio; returns the number of events. Deterministic for ``seed``."""
    rng = random.Random(seed)
    lines: list[tuple[str, int, bytes]] = []
    outcomes: list[tuple[str, str, str, float]] = []
    for i in range(accounts):
        messages, outcome = _account(rng, i, churn_rate)
        lines.extend((stamp, len(lines) + n, line) for n, (stamp, line) in enumerate(messages))
        outcomes.append(outcome)
    lines.sort()
    with events_path.open("wb") as fh:
        for _, _, line in lines:
            fh.write(line + b"\n")
    with outcomes_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["account_id", "date", "outcome", "arr"])
        writer.writerows(outcomes)
    return len(lines)


def comparable(result: dict[str, Any]) -> bytes:
    """A backtest's result less what depends on the machine (timings, memory)."""
    return orjson.dumps({k: v for k, v in result.items() if k != "replay"},
                        option=orjson.OPT_SORT_KEYS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--keep", type=Path, default=None,
                        help="folder to write the history and results into (kept)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="a backtest JSON from an earlier run of the same history "
                        "to compare every result with")
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="telltale-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        events_path, outcomes_path = folder / "events.jsonl", folder / "outcomes.csv"
        started = time.perf_counter()
        # in a process of its own: the backtests forked later would otherwise start
        # with (and report as their peak) the memory the generator held
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            count = pool.submit(write_history, args.accounts, events_path, outcomes_path,
                                args.seed).result()
        print(f"history: {args.accounts:,} accounts, {count:,} events "
              f"({count / args.accounts:.1f} per account) in "
              f"{time.perf_counter() - started:.1f} s")
        results: dict[int, bytes] = {}
        reference = comparable(orjson.loads(args.reference.read_bytes())) \
            if args.reference else None
        for n in sorted({int(x) for x in args.jobs.split(",") if x.strip()}):
            out = folder / f"backtest-jobs{n}.json"
            telltale = Path(sys.executable).with_name("telltale")
            command = [str(telltale), "backtest", str(events_path), "--outcomes",
                       str(outcomes_path), "--quiet", "--jobs", str(n), "--json", str(out),
                       "--report", str(folder / f"report-jobs{n}")]
            load = os.getloadavg()[0]
            started = time.perf_counter()
            cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
            result = orjson.loads(out.read_bytes())
            replay = result["replay"]
            results[n] = comparable(result)
            # A loaded machine stretches wall time; CPU time per process says what a
            # quiet one would do.
            print(f"telltale backtest --jobs {n} (load average {load:.1f} before): "
                  f"{count:,} events in {seconds:.1f} s wall "
                  f"({count / seconds:,.0f} events/s, import + replay + report), "
                  f"{used:.1f} CPU s in all ({count / used:,.0f} events per CPU-second; "
                  f"{count * n / used:,.0f} events/s if each of the {n} processes had a "
                  f"core); {replay['account_evaluations']:,} account evaluations; "
                  f"peak RSS {replay['peak_rss_mib']:,.0f} MiB per process")
        same = True
        if len(results) > 1:
            same = len(set(results.values())) == 1
            print("results identical for every --jobs: " + ("yes" if same else "NO"))
        if reference is not None:
            matches = all(r == reference for r in results.values())
            print(f"results identical to {args.reference}: " + ("yes" if matches else "NO"))
            same = same and matches
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
