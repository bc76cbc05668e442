"""What the benches over a simulated book of business share: the size and seed of the
portfolio on the command line, and the line about the machine printed before any figure
(the machine is shared: its load stretches every timing)."""

from __future__ import annotations

import argparse
import os


def portfolio_parser(doc: str) -> argparse.ArgumentParser:
    """A bench's command line, described by the first paragraph of ``doc``, with the
    simulated portfolio's ``--accounts`` (1,000), ``--days`` (365) and ``--seed`` (7)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    return parser


def machine_line() -> str:
    """``machine: <cores> cores, load average <1, 5 and 15 minutes>``."""
    return (f"machine: {os.cpu_count()} cores, load average "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
