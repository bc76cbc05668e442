"""Replay and simulator speed: how fast ``telltale simulate`` writes a year of history and
how fast ``telltale backtest`` replays it through the scoring core.

Prints, for a simulated portfolio (default: 1,000 accounts over 365 days):

- simulator: events generated per second, and the seconds for the whole history
  (written as JSON lines, as ``telltale simulate`` does);
- import: Segment JSON lines → canonical events per second;
- replay: events per second through :class:`scoring.replay.Replay` with the backtest's
  snapshots, for each evaluation grid asked for (1 day is what live does);
- the whole ``telltale backtest`` command, wall clock, with the accounts split over
  each number of processes asked for (``--jobs``; each process reads the whole file,
  decodes its own accounts' lines, and replays its share of the accounts).

Usage: ``python bench/replay.py [--accounts 1000] [--days 365] [--intervals 1,7,30]
[--jobs 1,2]``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.simulated import machine_line, portfolio_parser
from history.backtest import replay_snapshots
from history.importers import ImportReport, import_segment_jsonl, read_outcomes
from history.simulate import simulate, write_simulation
from scoring.config import load_config


def main() -> int:
    parser = portfolio_parser(__doc__)
    parser.add_argument("--intervals", default="1,7,30",
                        help="evaluation grids to time, in days, comma-separated")
    parser.add_argument("--cli-interval", type=float, default=1.0,
                        help="grid of the timed telltale backtest runs (0 skips them)")
    parser.add_argument("--jobs", default=f"1,{os.cpu_count() or 1}",
                        help="process counts to time telltale backtest with, comma-separated")
    args = parser.parse_args()
    print(machine_line())

    with tempfile.TemporaryDirectory(prefix="telltale-bench-") as tmp:
        folder = Path(tmp)
        events_path = folder / "events.jsonl"
        outcomes_path = folder / "outcomes.csv"

        started = time.perf_counter()
        sim = simulate(accounts=args.accounts, days=args.days, seed=args.seed)
        count = write_simulation(sim, events_path, outcomes_path)
        seconds = time.perf_counter() - started
        print(f"simulate: {args.accounts:,} accounts x {args.days} days = {count:,} events "
              f"in {seconds:.1f} s ({count / seconds:,.0f} events/s, written as JSON lines)")

        started = time.perf_counter()
        report = ImportReport()
        events = list(import_segment_jsonl(events_path, "bench", report))
        seconds = time.perf_counter() - started
        print(f"import:   {len(events):,} events in {seconds:.1f} s "
              f"({len(events) / seconds:,.0f} events/s)")
        outcomes = read_outcomes(outcomes_path)
        config = load_config(None)

        for interval in (float(x) for x in args.intervals.split(",") if x.strip()):
            run = replay_snapshots(events, outcomes, config, (90, 60, 30),
                                   interval_days=interval)
            print(f"replay:   grid {interval:g} d: {run.events:,} events in "
                  f"{run.replay_seconds:.1f} s of scoring ({run.events / run.replay_seconds:,.0f}"
                  f" events/s); with the baselines and snapshots {run.seconds:.1f} s "
                  f"({run.events / run.seconds:,.0f} events/s); {len(run.snapshots):,} "
                  "snapshots")

        jobs = sorted({int(x) for x in args.jobs.split(",") if x.strip()})
        for n in jobs if args.cli_interval > 0 else []:
            telltale = Path(sys.executable).with_name("telltale")
            command = [str(telltale), "backtest", str(events_path), "--outcomes",
                       str(outcomes_path), "--workspace", "bench", "--quiet",
                       "--interval-days", str(args.cli_interval), "--jobs", str(n),
                       "--json", str(folder / "bt.json"), "--report", str(folder / "report")]
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            seconds = time.perf_counter() - started
            print(f"telltale backtest --jobs {n} (grid {args.cli_interval:g} d, import + "
                  f"replay + report): {count:,} events in {seconds:.1f} s "
                  f"({count / seconds:,.0f} events/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
