"""The action codec: what people did travels intact, and nothing else gets through."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pytest

from streams.actions import (
    ACTIONS,
    MAX_ACTION_BYTES,
    MAX_TEXT_CHARS,
    ActionError,
    ActionType,
    handling_of,
)
from tests.fakes.actions import make_action


@pytest.mark.parametrize("action", [
    make_action("acknowledge", reasons={"champion_quiet:u1": "high", "seats_fell": "low"}),
    make_action("snooze", until="2026-06-05"),
    make_action("assign", assignee="sam@vendor.example"),
    make_action("assign", assignee=None),
    make_action("note", text="Called Dana.\nShe is back from leave on Monday."),
    make_action("step_done", playbook="champion_save", step=1),
])
def test_every_action_type_round_trips(action: Any) -> None:
    assert ACTIONS.decode(ACTIONS.encode(action)) == action


def wire(**changes: Any) -> dict[str, Any]:
    obj = make_action("note", text="hello").to_dict()
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


@pytest.mark.parametrize(("obj", "problem"), [
    (wire(schema="telltale.action/2"), "schema"),
    (wire(type="delete"), "type"),
    (wire(until="2026-06-05"), "does not belong"),
    (wire(text=...), "needs 'text'"),
    (wire(id=""), "id must be"),
    (wire(account_id="a\x1fb"), "account_id"),
    (wire(account_id="x" * 257), "longer"),
    (wire(actor="eve\r\nX-Injected: 1"), "control"),
    (wire(actor=" riley"), "spaces"),
    (wire(workspace=7), "workspace"),
    (wire(at="yesterday"), "at must"),
    (wire(at=float("inf")), "at must"),
    (wire(at=True), "at must"),
    (wire(text="x" * (MAX_TEXT_CHARS + 1)), "longer"),
    (wire(text="bell\x07"), "control"),
    (wire(text="   "), "non-empty"),
    ({**wire(), "type": "snooze", "until": "5 June"} | {"text": ...}, "until"),
    ({k: v for k, v in wire(type="snooze", until="2026-02-30").items() if k != "text"},
     "calendar"),
    ({k: v for k, v in wire(type="step_done", playbook="p", step=100).items()
      if k != "text"}, "step"),
    ({k: v for k, v in wire(type="acknowledge", reasons=[{"key": "k", "severity": "dire"}])
      .items() if k != "text"}, "severity"),
])
def test_hostile_actions_are_refused_with_the_field_named(obj: dict[str, Any],
                                                          problem: str) -> None:
    obj = {k: v for k, v in obj.items() if v is not ...}
    with pytest.raises(ActionError, match=problem):
        ACTIONS.decode(orjson.dumps(obj))


def test_garbage_and_oversized_messages_are_refused() -> None:
    for raw in (b"", b"not json", b"[1, 2]", b"null"):
        with pytest.raises(ActionError):
            ACTIONS.decode(raw)
    with pytest.raises(ActionError, match="larger"):
        ACTIONS.decode(b" " * (MAX_ACTION_BYTES + 1))


def test_the_handling_is_the_actions_applied_in_time_order() -> None:
    later = make_action("assign", assignee="sam@vendor.example", at=200.0)
    earlier = make_action("assign", assignee="ana@vendor.example", at=100.0)
    snoozed = make_action("snooze", until="1970-01-11", at=150.0)
    handling = handling_of([later, snoozed, earlier])
    assert handling.assignee == "sam@vendor.example"
    assert handling.snoozed_until == 10
    assert handling_of([]).acknowledged is None
    assert make_action("note", text="x").type is ActionType.NOTE
    assert date(1970, 1, 11) == snoozed.until
