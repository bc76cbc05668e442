"""schemathesis against the served OpenAPI document: no 5xx, every response conforms."""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode

from agents import api as api_module
from agents.api import create_api_app
from devstack.process import free_port
from state.readmodel import ReadModel
from streams.kafka_admin import create_topics
from streams.settings import Settings
from tests.fakes.changes import record
from tests.fakes.portfolio import ACCOUNTS, business_metrics, populate, replayed_changes

pytestmark = pytest.mark.integration

TOKEN = "schema-token"
#: A schema-violating request must be refused with one of these: schemathesis's own list,
#: and 413, since a body over the API's 16 KiB limit is refused before it is read,
#: whatever else is wrong with it (the document says so for each operation with a body).
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
            "429", "5xx"]
schema = schemathesis.openapi.from_dict(
    json.loads(resources.files("agents").joinpath("openapi.json").read_text()),
    config=SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}))


@functools.cache
def known() -> tuple[list[str], list[str]]:
    """Account and user ids in the served read model: the hand-made portfolio plus what
    the real scoring core emits for a simulated one."""
    replayed = replayed_changes()
    accounts = [a[0] for a in ACCOUNTS] + sorted({c["account_id"] for c in replayed})
    users = ["acme-u1", *sorted({u["user_id"] for c in replayed for u in c["users"]})[:20]]
    return accounts, users


class LiveApi:
    """The API on its own port, served from a thread with its own event loop (schemathesis
    makes blocking requests), reading a populated read model in the session's Redis."""

    def __init__(self, kafka_bootstrap: str, redis_url: str) -> None:
        self.settings = Settings(broker=f"kafka://{kafka_bootstrap}", redis_url=redis_url,
                                 topic_prefix=f"t{uuid.uuid4().hex[:10]}",
                                 api_tokens=f"{TOKEN}=demo:csm@vendor.example,"
                                            f"other-token=other")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)

    async def _start(self) -> None:
        # Actions posted by the cases go to a real actions topic.
        await create_topics(self.settings.kafka_bootstrap, [self.settings.topics.actions])
        self.readmodel = ReadModel.from_settings(self.settings)
        await populate(self.readmodel)
        for change in replayed_changes():
            await self.readmodel.apply(record(change))
        await self.readmodel.publish_business("demo", business_metrics(), "history.jsonl",
                                              datetime.now(tz=UTC))
        self.runner = web.AppRunner(create_api_app(self.settings, self.readmodel))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.readmodel.clear()
        await self.readmodel.close()

    def __enter__(self) -> LiveApi:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def live_api(kafka_bootstrap: str, redis_url: str) -> Iterator[LiveApi]:
    with LiveApi(kafka_bootstrap, redis_url) as api:
        yield api


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@schema.parametrize()
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_api_conforms_to_its_openapi_document(case: Any, live_api: LiveApi,
                                              http: requests.Session) -> None:
    # Aim most cases at the token's own workspace and at accounts that exist, so that
    # success responses are checked too, not only 403 and 404.
    known_accounts, known_users = known()
    params = case.path_parameters or {}
    if "workspace" in params and len(str(params["workspace"])) % 4 != 3:
        params["workspace"] = "demo"
    if "account_id" in params and len(str(params["account_id"])) % 3 != 2:
        params["account_id"] = known_accounts[len(str(params["account_id"])) % len(
            known_accounts)]
    if "user_id" in params and len(str(params["user_id"])) % 3 != 2:
        params["user_id"] = known_users[len(str(params["user_id"])) % len(known_users)]
    # Send the token unless this case deliberately breaks the headers (a missing token
    # must then be refused, which the check verifies).
    header_info = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    broken_headers = header_info is not None and header_info.mode == GenerationMode.NEGATIVE
    headers = {} if broken_headers else {"Authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(base_url=live_api.url, session=http, headers=headers)


def _negotiating_operations() -> set[tuple[str, str]]:
    """(method, path) of every route whose handler answers in the reader's language: it
    calls ``Api._reader`` (which reads ``Accept-Language``), itself or through another
    method of the API. Read from the code, so a new route that negotiates is found."""
    tree = ast.parse(inspect.getsource(api_module.Api))
    methods = {node.name: node for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}

    def calls(node: ast.AST) -> set[str]:
        return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name) and n.value.id == "self"}

    negotiating = {"_reader"}
    while True:
        more = {name for name, node in methods.items() if calls(node) & negotiating}
        if more <= negotiating:
            break
        negotiating |= more
    found = set()
    for call in ast.walk(methods["routes"]):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "web"):
            continue
        path = _text(call.args[0])
        if calls(call.args[1]) & (negotiating - {"_reader"}):
            found.add((call.func.attr, path))
    return found


def _text(node: ast.expr) -> str:
    """A route's path as written: literals and the module's constants, joined by ``+``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return str(getattr(api_module, node.id))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    raise AssertionError(f"a route path this test cannot read: {ast.unparse(node)}")


def _parameters(operation: dict[str, Any], document: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for parameter in operation.get("parameters", []):
        ref = parameter.get("$ref")
        if ref:
            parameter = document
            for part in ref.removeprefix("#/").split("/"):
                parameter = parameter[part]
        out.append(parameter)
    return out


def test_every_operation_that_answers_in_the_readers_language_documents_accept_language(
) -> None:
    document = json.loads(resources.files("agents").joinpath("openapi.json").read_text())
    negotiating = _negotiating_operations()
    assert ("get", "/api/v1/workspaces/{workspace}/worklist") in negotiating
    for method, path in sorted(negotiating):
        operation = document["paths"][path][method]
        headers = {p["name"].lower() for p in _parameters(operation, document)
                   if p["in"] == "header"}
        assert "accept-language" in headers, f"{method.upper()} {path}: Accept-Language"
    # and nothing claims to negotiate that does not
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if any(p["in"] == "header" and p["name"].lower() == "accept-language"
                   for p in _parameters(operation, document)):
                assert (method, path) in negotiating, f"{method.upper()} {path}"
