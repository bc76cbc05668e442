"""The command line: input mistakes get one clear message and an exit code, not a
traceback; long options are never guessed from a prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import cli


def test_unreadable_and_invalid_inputs_are_reported_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("account,date,outcome\nacme,2025-03-01,renewed\n")
    config = tmp_path / "scoring.toml"
    config.write_text("[weights]\nusage = 1\n")

    assert cli.main(["backtest", str(tmp_path / "missing.jsonl"), "--outcomes",
                     str(outcomes), "--quiet"]) == 1
    assert "No such file" in capsys.readouterr().err
    assert cli.main(["backtest", str(events), "--outcomes", str(outcomes), "--quiet",
                     "--config", str(config)]) == 2
    assert "weights: unknown setting" in capsys.readouterr().err
    outcomes.write_text("account,date,outcome\nacme,next tuesday,renewed\n")
    assert cli.main(["backtest", str(events), "--outcomes", str(outcomes)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("telltale backtest: outcomes: 1 bad row") and "Traceback" not in err


def test_option_prefixes_are_not_expanded(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["metrics", "events.jsonl", "--out", "outcomes.csv"])
    assert exit_info.value.code == 2
    assert "--outcomes" in capsys.readouterr().err
