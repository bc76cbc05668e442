"""Where CRM ids, owner addresses and Slack user ids enter: a group call's traits, applied
by the scoring core. A value that is not strictly one is dropped with a reason; the valid
one already known stays."""

from __future__ import annotations

from typing import Any

import pytest

from scoring.config import load_config
from scoring.engine import StepResult, step
from state.aggregates import DAY, AccountState
from streams import identifiers
from streams.events import Event, EventType, Source

T0 = 20_000 * DAY + 36_000
VALID = {"salesforce_account_id": "001Aa00000Xyz12AAA", "hubspot_company_id": "9001",
         "owner_slack_id": "U024BE7LH", "owner_email": "riley@vendor.example"}


def group(n: int, **traits: Any) -> Event:
    ts = T0 + n
    return Event("ws", f"g{n}", EventType.GROUP, ts, ts, Source.SEGMENT, user_id="dana",
                 account_id="acme", traits=traits)


def run(account: AccountState | None, *events: Event) -> StepResult:
    return step(account, {}, list(events), T0 + 100, load_config(), "ws", "acme")


@pytest.mark.parametrize(("key", "hostile"), [
    ("salesforce_account_id", "//other.host/x"),
    ("salesforce_account_id", "../../sobjects/User/005000000000001"),
    ("salesforce_account_id", "001Aa00000Xyz12AA"),  # 17 characters
    ("salesforce_account_id", "001Aa00000Xyz12AAA\n"),
    ("salesforce_account_id", "001Aa00000Xyz1２AAA"),  # a full-width digit
    ("salesforce_account_id", 1234567890123456789),
    ("hubspot_company_id", "9001/../../owners"),
    ("hubspot_company_id", "9001?archived=true"),
    ("hubspot_company_id", "1" * 21),
    ("hubspot_company_id", True),
    ("hubspot_company_id", -5),
    ("owner_slack_id", "!channel"),
    ("owner_slack_id", "U024BE7LH|everyone"),
    ("owner_slack_id", "u024be7lh"),
    ("owner_slack_id", "U024BE7LH>\n<!here"),
    ("owner_email", "riley@vendor.example>, <!channel"),
    ("owner_email", "riley@vendor.example\r\nBcc: x@y.z"),
    ("owner_email", "not-an-address"),
    ("owner_email", "a" * 250 + "@vendor.example"),
])
def test_an_invalid_trait_is_dropped_with_a_reason_and_the_valid_one_stays(
        key: str, hostile: Any) -> None:
    first = run(None, group(0, **VALID))
    assert first.skipped == []
    result = run(first.account, group(1, **{key: hostile}))
    account = result.account
    known = {"salesforce_account_id": account.external_ids.get("salesforce_account_id"),
             "hubspot_company_id": account.external_ids.get("hubspot_company_id"),
             "owner_slack_id": account.owner_slack_id, "owner_email": account.owner_email}
    assert known == VALID
    (reason,) = result.skipped
    assert reason.startswith(f"g1: group trait {key} dropped: ")
    assert len(reason) < 200  # the hostile value is cut, never copied whole
    for change in result.changes + first.changes:
        assert change.to_dict()["external_ids"] == {
            k: VALID[k] for k in ("hubspot_company_id", "salesforce_account_id")}


def test_valid_values_are_kept_in_canonical_form() -> None:
    result = run(None, group(0, hubspot_company_id=9001, salesforce_account_id="001Aa00000Xyz12",
                             owner_slack_id="W0123ABCD", owner_email="a.b+cs@mail.vendor.example"))
    assert result.skipped == []
    assert result.account.external_ids == {"hubspot_company_id": "9001",
                                           "salesforce_account_id": "001Aa00000Xyz12"}
    assert result.account.owner_slack_id == "W0123ABCD"
    assert result.account.owner_email == "a.b+cs@mail.vendor.example"


def test_a_bad_trait_does_not_stop_the_others_in_the_same_call() -> None:
    result = run(None, group(0, name="Acme", seats=30, owner_slack_id="<!here>",
                             salesforce_account_id="//evil/x", hubspot_company_id="77"))
    assert result.account.name == "Acme" and result.account.seats == 30
    assert result.account.external_ids == {"hubspot_company_id": "77"}
    assert result.account.owner_slack_id is None
    assert [r.split(" dropped")[0] for r in result.skipped] == [
        "g0: group trait owner_slack_id", "g0: group trait salesforce_account_id"]


def test_the_sinks_and_the_intake_share_one_definition() -> None:
    from agents.sinks import crm, slack

    # The sinks import the very checks the core applies; nothing is defined twice.
    assert crm.external_id is identifiers.external_id
    assert slack.is_slack_user_id is identifiers.is_slack_user_id
