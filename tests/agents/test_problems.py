"""Every API error is a Problem Details object (RFC 9457), whichever path produced it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.api import create_api_app
from agents.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE, problem_body
from state.readmodel import ReadModel
from streams.settings import Settings

AUTH = {"Authorization": "Bearer demo-token"}
BASE = "/api/v1/workspaces/demo"


def test_problem_has_the_rfc_members_and_the_old_code() -> None:
    assert problem_body(404, "not_found", "no account 'x'") == {
        "type": PROBLEM_TYPE_BASE + "not_found", "title": "Not Found", "status": 404,
        "detail": "no account 'x'", "error": "not_found"}
    assert problem_body(599, "odd_case", "?")["title"] == "Odd case"


@pytest.fixture
async def client(redis_url: str, unique_prefix: str) -> AsyncIterator[TestClient]:
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        api_tokens="demo-token=demo")
    readmodel = ReadModel.from_settings(settings)
    async with TestClient(TestServer(create_api_app(settings, readmodel))) as test_client:
        yield test_client
    await readmodel.close()


@pytest.mark.parametrize(("method", "path", "headers", "body", "status", "code"), [
    ("GET", BASE + "/accounts", {}, None, 401, "unauthorized"),  # the auth guard
    ("GET", "/api/v1/workspaces/other/accounts", AUTH, None, 403, "forbidden"),
    ("GET", BASE + "/accounts?nope=1", AUTH, None, 400, "bad_request"),  # parameters
    ("GET", BASE + "/accounts/missing", AUTH, None, 404, "not_found"),  # a handler
    ("GET", "/api/v1/nothing", AUTH, None, 404, "not_found"),  # the router
    ("DELETE", BASE + "/accounts", AUTH, None, 405, "method_not_allowed"),
    ("POST", BASE + "/accounts/missing/actions", AUTH, b"[]", 400, "bad_request"),
    ("POST", BASE + "/accounts/missing/actions", AUTH, b"x" * 70_000, 413, "too_large"),
])
async def test_every_error_path_answers_problem_json(
        client: TestClient, method: str, path: str, headers: dict[str, str],
        body: bytes | None, status: int, code: str) -> None:
    response = await client.request(method, path, headers=headers, data=body)
    assert response.status == status
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    problem = orjson.loads(await response.read())
    assert problem["status"] == status and problem["error"] == code
    assert problem["type"] == PROBLEM_TYPE_BASE + code and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
