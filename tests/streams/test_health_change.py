from __future__ import annotations

import pytest

from scoring.labels import Band, ChangeReason, ForecastStage, Lifecycle, SignalSeverity
from streams import health_change
from streams.health_change import HealthChangeRecord
from tests.fakes.changes import make_change, signal


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
