"""docs/asyncapi.yaml describes every topic Telltale creates, and what the code writes.

No AsyncAPI validator runs offline here, so the document is checked on what matters to
its readers: it is AsyncAPI 3, every topic the worker creates has a channel, every
``$ref`` resolves (the payloads of health changes and events to the shipped JSON
Schemas), and each inline payload schema accepts a record the code itself builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from agents.sinks.dispatch import Job, dead_letter_record
from agents.worker import shared_topics
from streams import health_change
from streams.actions import ACTIONS, Action, ActionType
from streams.cloudevents import health_change_headers
from streams.dlq import DEAD_LETTERS, DeadLetter
from streams.envelope import (
    ENVELOPES,
    Header,
    Link,
    Moved,
    Tick,
)
from streams.settings import Settings

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_is_asyncapi_3_over_kafka(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"].startswith("3.")
    assert {server["protocol"] for server in doc["servers"].values()} == {"kafka"}
    for operation in doc["operations"].values():
        assert operation["action"] in {"send", "receive"}


def test_every_topic_the_worker_creates_has_a_channel(doc: dict[str, Any]) -> None:
    settings = Settings(topic_prefix="acme-prod")
    created = {*shared_topics(settings), settings.topics.actions}
    documented = {channel["address"].replace("{prefix}", settings.topic_prefix)
                  for channel in doc["channels"].values()}
    assert documented == created


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    files = set()
    for ref in _refs(doc):
        if ref.startswith("#/"):
            _pointer(doc, ref)
        else:
            path = (DOC_PATH.parent / ref).resolve()
            schema = orjson.loads(path.read_bytes())
            jsonschema.Draft202012Validator.check_schema(schema)
            files.add(path.name)
    assert files == {"health-change.v1.json", "events.v1.json"}


def test_health_changes_reference_the_shipped_schema_and_headers(doc: dict[str, Any]) -> None:
    message = doc["components"]["messages"]["healthChange"]
    assert (DOC_PATH.parent / message["payload"]["schema"]["$ref"]).resolve() == \
        health_change.SCHEMA_PATH.resolve()
    headers = dict(health_change_headers({"id": "hc-1", "workspace": "acme",
                                          "event_time": "2026-11-30T08:00:00Z"}))
    jsonschema.validate({name: value.decode() for name, value in headers.items()},
                        _pointer(doc, message["headers"]["$ref"]))


def _payload_schema(doc: dict[str, Any], message: str) -> dict[str, Any]:
    ref = doc["components"]["messages"][message]["payload"]["$ref"]
    schema: dict[str, Any] = _pointer(doc, ref)
    return schema


WIRE_EVENT = {"ws": "acme", "id": "m-1", "t": "track", "ts": 1.7e9, "rx": 1.7e9,
              "src": "segment", "n": "Report Published", "u": "dana"}


@pytest.mark.parametrize(("message", "record"), [
    ("envelope", ENVELOPES.encode(Header("acme", "acc-1", [WIRE_EVENT], (0, 5)))),
    ("envelope", ENVELOPES.encode(Moved("acme", "dana", [WIRE_EVENT], 1, ["acc-1"]))),
    ("link", ENVELOPES.encode(Link("acme", "anon-1", "dana", 1.7e9))),
    ("tick", ENVELOPES.encode(Tick(1.7e9, 3))),
    ("deadLetter", DEAD_LETTERS.encode(DeadLetter(
        "missing_identity", "no userId", "segment", "acme", 1.7e9, payload={"event": "x"},
        message_id="m-1"))),
    ("deadLetter", DEAD_LETTERS.encode(DeadLetter("not_json", "bad", "segment", None, 1.7e9,
                              raw=b"\xff" * 10_000))),
    ("failedDelivery", orjson.dumps(dead_letter_record(
        Job("slack", "change", {"workspace": "acme", "account_id": "acc-1"}, "hc-1", 8),
        "HTTP 404"))),
    ("action", ACTIONS.encode(Action("a-1", "acme", "acc-1", ActionType.NOTE,
                                    "riley@vendor.example", 1.7e9, text="Called Dana"))),
])
def test_inline_payloads_accept_what_the_code_writes(doc: dict[str, Any], message: str,
                                                     record: bytes) -> None:
    schema = _payload_schema(doc, message)
    jsonschema.validate(orjson.loads(record), schema,
                        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert set(orjson.loads(record)) <= set(schema["properties"]), "undocumented fields"
