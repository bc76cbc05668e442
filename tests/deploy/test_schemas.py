"""The vendored schema copies are the ones the shared folder holds."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import SHARED_SCHEMAS, VENDORED_SCHEMAS

NAMES = ["grafana-dashboard.schema.json", "compose-spec.schema.json"]


@pytest.mark.parametrize("name", NAMES)
def test_vendored_schema_is_present(name: str) -> None:
    assert (VENDORED_SCHEMAS / name).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_vendored_schema_matches_shared_copy(name: str) -> None:
    shared = SHARED_SCHEMAS / name
    if not shared.is_file():
        pytest.skip(f"no {shared} beside the repository to compare with")
    assert (VENDORED_SCHEMAS / name).read_bytes() == shared.read_bytes()
