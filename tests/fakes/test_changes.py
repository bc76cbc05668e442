"""The test factory must produce exactly what the health-change schema allows, or every
test built on it proves nothing about real changes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.fakes.changes import make_change, signal
from tests.fakes.portfolio import portfolio_changes

SCHEMA = Path(__file__).resolve().parents[2] / "streams" / "schemas" / "health-change.v1.json"


def test_factory_changes_follow_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    samples = [
        make_change(),
        make_change(previous_score=None, forecast=None, days_to_renewal=None, owner=None,
                    owner_slack_id=None, arr=None),
        make_change(started=[signal("power_user_inactive", subject="u1", days=22)],
                    external_ids={"hubspot_company_id": "1", "salesforce_account_id": "001x"}),
        *portfolio_changes(),
    ]
    for change in samples:
        errors = sorted(validator.iter_errors(change), key=str)
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
