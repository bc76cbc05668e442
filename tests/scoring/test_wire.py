"""The health-change wire record: schema, codec, and that emitted changes conform."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from scoring.config import load_config
from scoring.engine import step
from state.aggregates import DAY
from streams.events import Event, EventType, Source
from streams.health_change import HEALTH_CHANGES, HealthChangeError, schema, validate


def sample() -> dict[str, object]:
    now = 20_000 * DAY + 7200
    events = [
        Event("ws", "g", EventType.GROUP, now - 100, now - 100, Source.SEGMENT, user_id="u1",
              account_id="acme", traits={"name": "Acme", "seats": 3, "arr": 70_000,
                                         "renewal_date": "2024-12-01", "owner": "Kim"}),
        Event("ws", "t", EventType.TRACK, now - 50, now - 50, Source.SEGMENT,
              name="Report Published", user_id="u1", account_id="acme"),
    ]
    r = step(None, {}, events, now, load_config(), "ws", "acme")
    assert len(r.changes) == 1
    return r.changes[0].to_dict()


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_emitted_change_validates_and_round_trips() -> None:
    d = sample()
    validate(d)
    assert d["schema"] == "telltale.health-change/1"
    assert d["segment"] == "enterprise"
    assert d["renewal_date"] == "2024-12-01"
    assert d["days_to_renewal"] == 58
    assert d["event_time"] == "2024-10-04T02:00:00Z"
    assert d["day"] == 20_000
    assert HEALTH_CHANGES.decode(HEALTH_CHANGES.encode(d)).wire == d


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("current", "band"), "great"),
        (("current", "score"), 101),
        (("reasons",), []),
        (("reasons",), ["because"]),
        (("event_time",), "yesterday"),
        (("users",), [{"user_id": "u"}]),
        (("schema",), "telltale.health-change/2"),
    ],
)
def test_schema_rejects_bad_records(path: tuple[str, ...], value: object) -> None:
    d = copy.deepcopy(sample())
    target: dict[str, object] = d
    for key in path[:-1]:
        target = target[key]  # type: ignore[assignment]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(d)


def test_missing_field_is_rejected() -> None:
    d = sample()
    del d["config_version"]
    with pytest.raises(jsonschema.ValidationError, match="config_version"):
        validate(d)


def test_decode_rejects_garbage() -> None:
    with pytest.raises(HealthChangeError, match="not_json"):
        HEALTH_CHANGES.decode(b"{nope")
    with pytest.raises(HealthChangeError, match=r"telltale\.health-change/1") as info:
        HEALTH_CHANGES.decode(HEALTH_CHANGES.encode({**sample(), "schema": "other"}))
    assert info.value.code == "bad_health_change" and info.value.path == "/schema"
