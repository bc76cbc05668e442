"""The demo's one line per message on the health-changes topic, decoded by the topic's
codec like every other consumer."""

from __future__ import annotations

import orjson

from agents.demo import describe_message
from tests.fakes.changes import make_change


def test_an_alert_is_one_line_with_score_band_reasons_and_why() -> None:
    line = describe_message(orjson.dumps(make_change(score=57, previous_score=72)))
    assert line is not None
    assert line.startswith("Acme Corp: 57 watch [band_changed, score_moved, forecast_changed] ")
    assert line.endswith("(25 → 20 of 30 seats).")


def test_a_change_that_only_updates_the_record_prints_nothing() -> None:
    assert describe_message(orjson.dumps(make_change(alert=False))) is None


def test_anything_else_on_the_topic_is_shown_as_it_is() -> None:
    assert describe_message(b'{"events": 12}') == '{"events": 12}'
    assert describe_message(None) == ""
