"""The sources file: every problem listed at once, no source without a credential, only
strict account ids, mappings from TOML and CSV; and the setting that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings, SettingsError
from streams.sources_config import SourcesConfigError, load_sources

GOOD = """
[workspaces.acme.stripe]
secret = "whsec_0123456789abcdef"
tolerance_seconds = 120
accounts_file = "stripe.csv"
[workspaces.acme.stripe.accounts]
cus_A = "acme"

[workspaces.acme.freshdesk]
token = "abcdef0123456789abcd"
"""


def test_a_valid_file_loads_with_its_mappings(tmp_path: Path) -> None:
    (tmp_path / "stripe.csv").write_text("customer_id,account_id\ncus_B,globex\n")
    path = tmp_path / "sources.toml"
    path.write_text(GOOD)
    config = load_sources(path)
    stripe = config.source("acme", "stripe")
    assert stripe is not None and dict(stripe.accounts) == {"cus_A": "acme", "cus_B": "globex"}
    assert stripe.tolerance_seconds == 120
    assert "whsec" not in repr(stripe)
    assert config.source("acme", "zendesk") is None
    assert config.source("other", "stripe") is None
    Settings(sources_config=path).validate()


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text("""
[workspaces.acme.stripe]
token = "abcdef0123456789abcd"
[workspaces.acme.chargebee]
username = "cb"
[workspaces.acme.zendesk]
secret = "short"
[workspaces.acme.intercom]
secret = "0123456789abcdef0123"
accounts = { "x" = "not an id" }
[workspaces.acme.paypal]
secret = "0123456789abcdef0123"
[workspaces."bad name".stripe]
secret = "0123456789abcdef0123"
""")
    with pytest.raises(SourcesConfigError) as caught:
        load_sources(path)
    text = str(caught.value)
    for problem in ("workspaces.acme.stripe: needs one of secret",
                    "basic auth needs both username and password",
                    "zendesk.secret must be at least 16",
                    "'not an id' (for 'x') is not an account id",
                    "paypal: unknown source",
                    "'bad name' is not a valid workspace name"):
        assert problem in text
    with pytest.raises(SettingsError, match="sources_config"):
        Settings(sources_config=path).validate()


def test_a_missing_or_broken_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourcesConfigError):
        load_sources(tmp_path / "absent.toml")
    (tmp_path / "broken.toml").write_text("[workspaces.acme")
    with pytest.raises(SourcesConfigError):
        load_sources(tmp_path / "broken.toml")
    assert load_sources(None).workspaces == {}
