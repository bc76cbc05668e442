"""`telltale demo`, the README's first command, end to end against the real Kafka and Redis:
simulated customers posted through the HTTP collector come out as explained health changes
and a list of accounts needing attention."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from devstack.process import free_port
from scoring.changes import HealthChange

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_prints_explained_changes_and_the_accounts_needing_attention(
    kafka_bootstrap: str, redis_url: str
) -> None:
    env = {**os.environ, "TELLTALE_BROKER": f"kafka://{kafka_bootstrap}",
           "TELLTALE_REDIS_URL": redis_url}
    port = free_port()
    run = subprocess.run(
        [sys.executable, "-m", "agents.cli", "demo", "--accounts", "20", "--days", "30",
         "--once", "--duration", "180", "--web-port", str(port)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    # Every simulated event was acknowledged by the collector.
    posted = re.search(r"posted (\d+) simulated events to the collector", run.stderr)
    assert posted is not None and int(posted.group(1)) > 500, run.stderr[-3000:]
    # Health changes as they happen, one explained line each.
    change_line = re.compile(r"^\S.*: \d+ (healthy|watch|at_risk) \[")
    changes = [line for line in out.splitlines() if change_line.match(line)]
    assert changes, out[-3000:]
    assert all(("Health " in line) for line in changes)
    # Then each owner's worklist: every account with the reasons that list it, in words.
    listing = re.search(
        r"Accounts needing attention today \((\d+)\):\n(.*?)\nThe CSM page: ([^\n]*)", out, re.S
    )
    assert listing is not None, out[-3000:]
    count, body, page = int(listing.group(1)), listing.group(2), listing.group(3)
    if "attention" in {f.name for f in fields(HealthChange)}:  # the core decides attention
        assert count >= 1, out[-3000:]
    accounts = re.findall(r"^    \S.*: \d+ \((?:healthy|watch|at_risk)\)\n((?:      .*\n?)*)",
                          body, re.M)
    assert len(accounts) == count, body
    assert all(re.match(r"      • \S", reasons) for reasons in accounts), body
    owners = re.findall(r"^  \S.* \((\d+)\):$", body, re.M)
    assert sum(int(n) for n in owners) == count
    # The page is named without its token: a token never travels in an address.
    assert page == (f"http://127.0.0.1:{port}/today (sign in with the API token "
                    f"demo-api-token)")
    # Nothing the demo started is left behind: its worker stopped with it.
    assert "[demo] demo stopped" in run.stderr
