from __future__ import annotations

import orjson
import pytest

from scoring.labels import Band, ChangeReason, ForecastStage, Lifecycle, SignalSeverity
from streams import health_change
from streams.health_change import (
    HEALTH_CHANGES,
    MAX_CHANGE_BYTES,
    HealthChangeError,
    HealthChangeRecord,
    Standing,
)
from tests.fakes.changes import attention, make_change, reason, signal, with_attention


def test_a_valid_change_decodes_into_its_enums() -> None:
    wire = make_change(score=57, previous_score=72, segment="smb", arr=9_000.0,
                       started=[signal("payment_failed", amount=120)])
    health_change.validate(wire)
    record = HealthChangeRecord.from_wire(wire)
    assert record.current.band is Band.WATCH and record.previous is not None
    assert record.previous.band is Band.HEALTHY
    assert isinstance(record.current.lifecycle, Lifecycle)
    assert record.current.forecast is None or isinstance(record.current.forecast,
                                                         ForecastStage)
    assert all(isinstance(r, ChangeReason) for r in record.reasons)
    assert record.signals_started[0].type == "payment_failed"
    assert record.signals_started[0].severity is SignalSeverity.RISK
    assert record.arr == 9_000.0 and record.alert and record.wire is wire


def test_a_record_without_the_alert_flag_is_an_alert() -> None:
    wire = make_change()
    wire.pop("alert", None)
    assert HealthChangeRecord.from_wire(wire).alert
    assert not HealthChangeRecord.from_wire({**wire, "alert": False}).alert


def test_a_band_outside_the_vocabulary_is_refused() -> None:
    wire = make_change()
    with pytest.raises(ValueError):
        HealthChangeRecord.from_wire({**wire, "current": {**wire["current"], "band": "green"}})


def test_every_field_of_the_wire_is_decoded() -> None:
    quiet = reason("champion_quiet", subject="acme-u0", since_day=20_590, days=22)
    wire = with_attention(make_change(
        score=35, previous_score=72, forecast="at_risk", previous_forecast="commit",
        lifecycle="renewal_window", segment="enterprise", arr=120_000.0, owner="Riley Chen",
        owner_slack_id="U024BE7LH", days_to_renewal=40, change_7d=-30,
        external_ids={"hubspot_company_id": "9001"},
        started=[signal("power_user_inactive", subject="acme-u0", days=22)],
        ended=[signal("nps_detractor", severity="info")],
        active=[signal("power_user_inactive", subject="acme-u0", days=22),
                signal("seat_saturation", severity="expansion", pct=85)]),
        attention(quiet, day=20_600, playbooks=("champion_save",)))
    wire["alert"] = False
    record = HEALTH_CHANGES.decode(orjson.dumps(wire))
    assert (record.id, record.workspace, record.account_id, record.account_name) == (
        wire["id"], "demo", "acme", "Acme Corp")
    assert record.event_time == wire["event_time"] and record.day == wire["day"]
    assert record.time == 1_780_000_000.0
    assert record.reasons == (ChangeReason.BAND_CHANGED, ChangeReason.SCORE_MOVED,
                              ChangeReason.FORECAST_CHANGED, ChangeReason.SIGNAL_STARTED,
                              ChangeReason.SIGNAL_ENDED)
    assert record.previous == Standing(72, Band.HEALTHY, ForecastStage.COMMIT,
                                       Lifecycle.RENEWAL_WINDOW)
    assert record.current.band is Band.AT_RISK and record.current.score == 35
    assert record.current.forecast is ForecastStage.AT_RISK
    assert record.components == wire["current"]["components"]
    assert (record.delta, record.change_7d) == (-37, -30)
    assert [s.type for s in record.signals_started] == ["power_user_inactive"]
    assert record.signals_started[0].detail == {"days": 22}
    assert record.signals_started[0].subject == "acme-u0"
    assert record.signals_ended[0].severity is SignalSeverity.INFO
    assert [s.severity for s in record.active_signals] == [SignalSeverity.RISK,
                                                           SignalSeverity.EXPANSION]
    assert record.explanation == wire["explanation"]
    assert [d.to_wire() for d in record.drivers] == wire["drivers"]
    assert (record.owner, record.owner_email, record.owner_slack_id) == (
        "Riley Chen", "riley@vendor.example", "U024BE7LH")
    assert (record.segment, record.arr) == ("enterprise", 120_000.0)
    assert (record.renewal_date, record.days_to_renewal) == (wire["renewal_date"], 40)
    assert record.external_ids == {"hubspot_company_id": "9001"}
    assert [u.to_wire() for u in record.users] == wire["users"]
    assert record.users[0].power_user and record.users[0].band is Band.HEALTHY
    assert record.config_version == "default-1"
    assert record.attention is not None and record.attention.reasons[0].key == quiet.key
    assert record.attention.playbooks == ("champion_save",)
    assert record.alert is False
    # What passes the record on (webhooks, the outbox) sends the bytes that came in.
    assert HEALTH_CHANGES.encode(record) == orjson.dumps(wire)
    assert [s.to_wire() for s in record.active_signals] == wire["active_signals"]
    assert record.previous is not None and record.previous.to_wire() == wire["previous"]


def test_a_first_assessment_has_no_previous_standing_nor_attention() -> None:
    record = HEALTH_CHANGES.decode(make_change(previous_score=None, forecast=None))
    assert record.previous is None and record.current.forecast is None
    assert record.attention is None


@pytest.mark.parametrize(("raw", "code", "path"), [
    (b"x" * (MAX_CHANGE_BYTES + 1), "too_large", ""),
    (b"{nope", "not_json", ""),
    (b"[1, 2]", "bad_health_change", ""),
    (b'{"a":' + b"[" * 300 + b"]" * 300 + b"}", "too_deep", ""),
    (orjson.dumps({**make_change(), "delta": "-15"}), "bad_health_change", "/delta"),
    (orjson.dumps({**make_change(), "reasons": ["because"]}), "bad_health_change",
     "/reasons/0"),
])
def test_a_malformed_message_is_a_clear_error(raw: bytes, code: str, path: str) -> None:
    with pytest.raises(HealthChangeError) as info:
        HEALTH_CHANGES.decode(raw)
    assert info.value.code == code and info.value.path == path
    assert str(info.value).startswith(f"{code} at {path or '/'}: ")


def test_what_the_schema_lets_through_the_record_still_refuses() -> None:
    with pytest.raises(HealthChangeError, match=r"month must be in 1\.\.12"):
        HEALTH_CHANGES.decode(make_change(event_time="2026-13-45T00:00:00Z"))
    hostile = attention(reason("champion_quiet", key="quiet\x1fx"), day=20_600)
    with pytest.raises(HealthChangeError, match="reason key"):
        HEALTH_CHANGES.decode(with_attention(make_change(), hostile))
    huge = attention(*[reason("seats_fell", key=f"k{i}", note="x" * 200) for i in range(400)],
                     day=20_600)
    with pytest.raises(HealthChangeError, match="larger"):
        HEALTH_CHANGES.decode(with_attention(make_change(), huge))
    missing = make_change()
    del missing["current"]
    with pytest.raises(HealthChangeError, match="current"):
        HealthChangeRecord.from_wire(missing)  # a wire dict that skipped the schema


def test_the_record_enums_are_the_schema_vocabularies() -> None:
    """What routing and the sinks compare with (the enums) is exactly what the schema lets
    onto the topic, and what scoring's attention names."""
    from scoring.attention import ReasonType, Severity
    from scoring.config import SEGMENTS

    document = health_change.schema()
    defs, props = document["$defs"], document["properties"]
    assert set(props["reasons"]["items"]["enum"]) == set(ChangeReason)
    assert set(defs["band"]["enum"]) == set(Band)
    assert set(defs["forecast"]["enum"]) - {None} == set(ForecastStage)
    assert set(defs["lifecycle"]["enum"]) == set(Lifecycle)
    assert set(defs["signal"]["properties"]["severity"]["enum"]) == set(SignalSeverity)
    assert set(defs["attention_reason"]["properties"]["type"]["enum"]) == set(ReasonType)
    assert set(defs["attention_reason"]["properties"]["severity"]["enum"]) == set(Severity)
    assert set(props["segment"]["enum"]) - {None} == set(SEGMENTS)
