"""CloudEvents 1.0 attributes of a health change, in the Kafka binary content mode.

The Kafka protocol binding of CloudEvents puts each attribute in a header named
``ce_<attribute>`` and the event data, unchanged, in the message value; ``content-type``
names the data's media type. A consumer that knows CloudEvents routes and dedups on the
headers alone (``ce_source`` + ``ce_id`` is unique); one that does not reads the same
JSON as before. Pure: no Kafka client is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

SPEC_VERSION = "1.0"
#: Reverse-DNS event type, versioned like the record's ``schema``.
HEALTH_CHANGE_TYPE = "io.telltale.health-change.v1"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]


def health_change_source(workspace: str) -> str:
    """The ``source`` URI-reference of a workspace's changes: ``/telltale/<workspace>``
    (percent-encoded, so no workspace name can add a path segment)."""
    return "/telltale/" + quote(workspace, safe="")


def health_change_headers(change: Mapping[str, Any]) -> Headers:
    """The CloudEvents headers of one health-change record (its wire dict): the id is the
    change's deterministic id, the time its event-time clock."""
    return [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", str(change["id"]).encode()),
        ("ce_source", health_change_source(str(change["workspace"])).encode()),
        ("ce_type", HEALTH_CHANGE_TYPE.encode()),
        ("ce_time", str(change["event_time"]).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]


def headers_of_encoded_change(raw: bytes) -> Headers:
    """:func:`health_change_headers` of a record already serialised (the outbox's bytes)."""
    return health_change_headers(orjson.loads(raw))
