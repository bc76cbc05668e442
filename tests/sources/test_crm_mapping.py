"""CRM records → group calls: every trait checked as event data, a bad field left out and
reported without losing the record's other traits, a record without an account refused,
and the message id a digest of what the record says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.sources.crm_read import (
    CrmReadConfigError,
    HubSpotRead,
    SalesforceClient,
    SalesforceRead,
    load_readers,
)
from streams.sources.crm import BAD_ACCOUNT, BAD_FIELD, TraitMap, flatten, group_call
from streams.sources_config import load_sources

MAPPING = TraitMap("telltale_account_id", {
    "renewal_date": "renewal_date", "arr": "annualrevenue", "seats": "seats",
    "owner_email": "owner_mail", "name": "name", "owner_slack_id": "slack"})


def _values(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"telltale_account_id": "acme", "renewal_date": "2027-03-01",
                               "annualrevenue": "48000.50", "seats": "25",
                               "owner_mail": "Dana@Example.com", "name": "Acme  Corp",
                               "slack": "U024BE7LH"}
    base.update(changes)
    return base


def test_a_company_becomes_one_group_call_with_its_traits() -> None:
    read = group_call("hubspot", "9876543210", _values(), MAPPING)
    assert read.problems == []
    assert read.message is not None
    assert read.message["type"] == "group"
    assert read.message["groupId"] == "acme"
    assert read.message["traits"] == {
        "hubspot_company_id": "9876543210", "renewal_date": "2027-03-01", "arr": 48000.5,
        "seats": 25, "owner_email": "dana@example.com", "name": "Acme Corp",
        "owner_slack_id": "U024BE7LH"}


@pytest.mark.parametrize("renewal", ["2027-03-01T00:00:00Z", "2027-03-01T09:30:00.000+0000",
                                     "1803859200000", 1803859200000])
def test_renewal_dates_in_every_form_a_crm_sends(renewal: object) -> None:
    read = group_call("hubspot", "1", _values(renewal_date=renewal), MAPPING)
    assert read.message is not None and read.problems == []
    assert read.message["traits"]["renewal_date"] == "2027-03-01"


@pytest.mark.parametrize(("field", "value"), [
    ("renewal_date", "0000-01-01"), ("renewal_date", "2200-01-01"),
    ("renewal_date", "next march"), ("renewal_date", 1e30),
    ("annualrevenue", "NaN"), ("annualrevenue", "1e400"), ("annualrevenue", "-5"),
    ("annualrevenue", True), ("annualrevenue", "9" * 40),
    ("seats", "2.5"), ("seats", "-1"), ("seats", 10**12),
    ("owner_mail", "dana@example.com\r\nBcc: all@example.com"), ("owner_mail", "<script>"),
    ("name", "Acme\x00Corp"), ("name", "A" * 500), ("name", ["list"]),
    ("slack", "!channel"), ("slack", "<!here>")])
def test_a_bad_field_is_left_out_and_reported_and_the_rest_kept(field: str,
                                                                 value: object) -> None:
    read = group_call("hubspot", "42", _values(**{field: value}), MAPPING)
    assert read.message is not None, "the record's other traits must not be lost"
    assert [reason for reason, _ in read.problems] == [BAD_FIELD]
    assert field in read.problems[0][1]
    trait = next(t for t, f in MAPPING.traits.items() if f == field)
    assert trait not in read.message["traits"]
    assert read.message["traits"]["hubspot_company_id"] == "42"
    assert len(read.message["traits"]) == len(MAPPING.traits)  # the others and the id


@pytest.mark.parametrize("account", [None, "", "acme\nother", "../../etc", "a" * 200, 42])
def test_a_record_without_a_valid_account_is_refused(account: object) -> None:
    read = group_call("hubspot", "42", _values(telltale_account_id=account), MAPPING)
    assert read.message is None
    assert [reason for reason, _ in read.problems] == [BAD_ACCOUNT]


@pytest.mark.parametrize(("crm", "record_id"), [("hubspot", "//evil.example/x"),
                                                 ("hubspot", "12a"),
                                                 ("salesforce", "001xx000003DGb2AAG/../x")])
def test_a_record_id_that_would_not_pass_the_write_back_is_refused(crm: str,
                                                                   record_id: str) -> None:
    read = group_call(crm, record_id, _values(), MAPPING)
    assert read.message is None
    assert read.problems and read.problems[0][0] == BAD_FIELD


def test_the_message_id_changes_only_when_the_record_does() -> None:
    first = group_call("hubspot", "42", _values(), MAPPING).message
    again = group_call("hubspot", "42", _values(), MAPPING).message
    changed = group_call("hubspot", "42", _values(seats="26"), MAPPING).message
    assert first and again and changed
    assert first["messageId"] == again["messageId"] != changed["messageId"]
    assert first["messageId"].startswith("hubspot-42-")


def test_unset_fields_say_nothing() -> None:
    read = group_call("hubspot", "42", _values(seats=None, annualrevenue=""), MAPPING)
    assert read.problems == []
    assert read.message is not None
    assert "seats" not in read.message["traits"] and "arr" not in read.message["traits"]


def test_salesforce_relationships_are_flattened() -> None:
    record = {"attributes": {"type": "Account", "url": "/x"}, "Id": "001xx000003DGb2AAG",
              "Owner": {"attributes": {"type": "User"}, "Email": "sam@example.com"}}
    assert flatten(record) == {"Id": "001xx000003DGb2AAG", "Owner.Email": "sam@example.com"}


SOURCES = """
[workspaces.acme.stripe]
secret = "whsec_0123456789abcdef"

[workspaces.acme.hubspot]
token = "pat-eu1-0123456789abcdef"
account_property = "telltale_account_id"
interval_seconds = 900
[workspaces.acme.hubspot.traits]
renewal_date = "renewal_date"
owner_email = "hubspot_owner_id"

[workspaces.globex.salesforce]
instance_url = "https://globex.my.salesforce.com"
token_url = "https://login.salesforce.com/services/oauth2/token"
client_id = "3MVG9client"
client_secret = "secret-0123456789"
account_field = "Telltale_Account_Id__c"
[workspaces.globex.salesforce.traits]
arr = "AnnualRevenue"
owner_email = "Owner.Email"
"""


def test_readers_load_beside_the_webhook_sources(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES)
    assert set(load_sources(path).workspaces["acme"]) == {"stripe"}
    hubspot, salesforce = load_readers(path)
    assert isinstance(hubspot, HubSpotRead) and isinstance(salesforce, SalesforceRead)
    assert (hubspot.workspace, hubspot.interval) == ("acme", 900.0)
    assert "0123456789abcdef" not in repr(hubspot), "a token must never reach a log"
    query = SalesforceClient(salesforce).query("2026-11-30T10:00:00Z")
    assert query == ("SELECT Id, SystemModstamp, Telltale_Account_Id__c, AnnualRevenue, "
                     "Owner.Email FROM Account WHERE Telltale_Account_Id__c != null AND "
                     "SystemModstamp >= 2026-11-30T10:00:00Z ORDER BY SystemModstamp ASC")


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text("""
[workspaces.acme.hubspot]
token = "short"
api_url = "http://api.hubapi.com"
account_property = "id FROM User --"
interval_seconds = 5
colour = "blue"
[workspaces.acme.hubspot.traits]
health = "x"
arr = "AnnualRevenue; DELETE"

[workspaces.globex.salesforce]
instance_url = "https://globex.my.salesforce.com/services"
account_field = "Telltale_Account_Id__c"
""")
    with pytest.raises(CrmReadConfigError) as caught:
        load_readers(path)
    message = str(caught.value)
    for problem in ("hubspot.token", "hubspot.api_url", "hubspot.account_property",
                    "hubspot.interval_seconds", "unknown keys ['colour']",
                    "traits.health", "traits.arr", "salesforce.instance_url",
                    "salesforce: needs OAuth"):
        assert problem in message, problem


def test_settings_check_lists_crm_problems_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text('[workspaces.acme.hubspot]\ntoken = "short"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agents.cli", "settings", "--check"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60,
        check=False, env={**os.environ, "TELLTALE_SOURCES_CONFIG": str(path)})
    assert result.returncode == 2
    assert "hubspot.token" in result.stderr and "hubspot.account_property" in result.stderr
