"""README.md is the entry point: its promises must stay true as the code changes."""

from __future__ import annotations

import re
from pathlib import Path

from agents.cli import settings_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_settings_table_matches_the_settings_object() -> None:
    table = re.search(
        r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", README, re.S
    )
    assert table is not None, "README lost its settings table markers"
    assert table.group(1) == settings_markdown(), "run scripts/update-readme"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, re.M), ".ci/run must call the README's test command"


def test_readme_names_files_that_exist() -> None:
    for path in re.findall(r"\]\(([\w./-]+)\)", README):
        assert (ROOT / path).exists(), f"README links to missing {path}"
    named = r"`((?:agents|streams|state|scoring|history|deploy|docs)/[\w./-]+)`"
    for path in re.findall(named, README):
        assert (ROOT / path.rstrip("/")).exists(), f"README names missing {path}"


def test_the_walk_of_one_event_names_at_most_twelve_files_all_on_the_workers_path() -> None:
    """The README's walk from the collector to Slack stays short and true: at most twelve
    files (a folder counts once), each one the worker really runs, and every stage the
    event passes through named."""
    from agents.app import MODULES
    from tests.test_layers import PACKAGES, build_graph

    walk = re.search(r"To follow one event, read these files in order:\n(.*?)\n\n", README,
                     re.S)
    assert walk is not None, "README lost its walk of one event"
    named = {path.split(":")[0].rstrip("/")
             for path in re.findall(r"`((?:agents|streams|state|scoring)/[\w./:-]+)`",
                                    walk.group(1))}
    assert len(named) <= 12, sorted(named)
    graph = build_graph(ROOT, PACKAGES)
    on_path = graph.reachable(["agents.worker", "agents.app", *MODULES])
    for path in named:
        module = path.removesuffix(".py").replace("/", ".")
        assert module in on_path, f"{path} is in the walk but the worker never runs it"
    stages = {"agents/collector.py", "agents/resolve.py", "agents/score.py",
              "agents/notify.py", "agents/sinks/slack.py"}
    assert stages <= named, f"the walk skips {sorted(stages - named)}"
