"""CloudEvents headers of a health change: the attributes the spec requires, well formed."""

from __future__ import annotations

from datetime import datetime

import orjson

from streams.cloudevents import (
    HEALTH_CHANGE_TYPE,
    headers_of_encoded_change,
    health_change_headers,
    health_change_source,
)

CHANGE = {"schema": "telltale.health-change/1", "id": "hc-5f1e", "workspace": "acme",
          "account_id": "acc-1", "event_time": "2026-11-30T08:15:00Z"}


def test_binary_mode_headers_carry_the_change_id_source_type_and_time() -> None:
    headers = dict(health_change_headers(CHANGE))
    assert headers == {"ce_specversion": b"1.0", "ce_id": b"hc-5f1e",
                       "ce_source": b"/telltale/acme",
                       "ce_type": HEALTH_CHANGE_TYPE.encode(),
                       "ce_time": b"2026-11-30T08:15:00Z",
                       "content-type": b"application/json"}
    # RFC 3339, as the spec requires of ``time``.
    assert datetime.fromisoformat(headers["ce_time"].decode()).tzinfo is not None


def test_a_workspace_name_cannot_add_a_path_to_the_source() -> None:
    assert health_change_source("a/../b c") == "/telltale/a%2F..%2Fb%20c"


def test_encoded_changes_get_the_same_headers() -> None:
    assert headers_of_encoded_change(orjson.dumps(CHANGE)) == health_change_headers(CHANGE)
