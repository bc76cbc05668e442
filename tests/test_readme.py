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
