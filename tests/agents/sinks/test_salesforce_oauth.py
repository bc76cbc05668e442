"""Salesforce through OAuth: tokens from the token endpoint, renewed once on a 401.

A local HTTPS server plays a Salesforce org: its ``/services/oauth2/token`` endpoint
speaks the client-credentials and JWT-bearer grants (checking the JWT with the Connected
App's public key), and its REST endpoint accepts only tokens it issued and has not
expired, answering 401 ``INVALID_SESSION_ID`` otherwise, as Salesforce does.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import orjson
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agents.sinks import DeliveryError
from agents.sinks.crm import SalesforceSync
from agents.sinks.routing import NotificationConfig, NotificationConfigError
from agents.sinks.salesforce_oauth import JWT_BEARER_GRANT, salesforce_tokens
from tests.agents.sinks.test_crm import CHANGE, salesforce_api
from tests.fakes.http import Answer, Recorded, RecordingServer
from tests.fakes.tls import self_signed, server_context

TOKEN_PATH = "/services/oauth2/token"
CLIENT_ID = "3MVGtelltale"
CLIENT_SECRET = "consumer-secret"
USERNAME = "integration@acme.example"
AUDIENCE = "https://login.salesforce.com"


class SalesforceOrg:
    """The token endpoint and the Account endpoint of one org."""

    def __init__(self, public_key: str | None = None) -> None:
        self.public_key = public_key
        self.valid: set[str] = set()
        self.issued = 0
        self.accepting = True  # False: no token is good enough (the user lost access)

    def expire_sessions(self) -> None:
        self.valid.clear()

    def __call__(self, request: Recorded) -> Answer:
        if request.path == TOKEN_PATH:
            return self._token(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.valid or not self.accepting:
            return 401, {"Content-Type": "application/json"}, orjson.dumps(
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        # The shape checks of the Account endpoint, with the token it expects.
        return salesforce_api(replace(request, headers={
            **request.headers, "Authorization": "Bearer 00Dsession"}))

    def _token(self, request: Recorded) -> Answer:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        granted = request.method == "POST" and request.headers.get(
            "Content-Type") == "application/x-www-form-urlencoded" and self._grant(form)
        if not granted:
            return 400, {"Content-Type": "application/json"}, orjson.dumps(
                {"error": "invalid_grant", "error_description": "authentication failure"})
        self.issued += 1
        token = f"00Dtoken{self.issued}"
        self.valid.add(token)
        return 200, {"Content-Type": "application/json"}, orjson.dumps({
            "access_token": token, "instance_url": "https://acme.my.salesforce.com",
            "id": "https://login.salesforce.com/id/00D/005", "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)), "signature": "x"})

    def _grant(self, form: dict[str, str]) -> bool:
        if form.get("grant_type") == "client_credentials":
            return form.get("client_id") == CLIENT_ID and \
                form.get("client_secret") == CLIENT_SECRET
        if form.get("grant_type") == JWT_BEARER_GRANT and self.public_key:
            try:
                claims = jwt.decode(form.get("assertion", ""), self.public_key,
                                    algorithms=["RS256"], audience=AUDIENCE,
                                    options={"require": ["exp", "iss", "sub", "aud"]})
            except jwt.InvalidTokenError:
                return False
            return claims["iss"] == CLIENT_ID and claims["sub"] == USERNAME and \
                claims["exp"] - time.time() <= 180
        return False


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def session(tls: tuple[Path, Path]) -> requests.Session:
    session = requests.Session()
    session.verify = str(tls[0])
    session.trust_env = False
    return session


async def _org(tls: tuple[Path, Path], org: SalesforceOrg) -> RecordingServer:
    return await RecordingServer(org, ssl_context=server_context(*tls)).start()


@pytest.fixture
async def client_credentials(tls: tuple[Path, Path], session: requests.Session
                             ) -> AsyncIterator[tuple[SalesforceOrg, RecordingServer,
                                                      SalesforceSync]]:
    org = SalesforceOrg()
    server = await _org(tls, org)
    config = NotificationConfig.from_dict({"salesforce": {
        "instance_url": server.url, "token_url": server.url + TOKEN_PATH,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}})
    assert config.salesforce is not None
    sync = SalesforceSync(server.url, config.salesforce.session_id, session=session,
                          tokens=salesforce_tokens(config.salesforce.oauth, session))
    yield org, server, sync
    await server.stop()


def _paths(server: RecordingServer) -> list[tuple[str, int]]:
    return [("token" if r.path == TOKEN_PATH else "account", r.status)
            for r in server.requests]


async def test_a_token_is_fetched_once_and_renewed_once_after_a_401(
        client_credentials: tuple[SalesforceOrg, RecordingServer, SalesforceSync]) -> None:
    org, server, sync = client_credentials
    assert await sync.send(CHANGE)
    assert await sync.send(CHANGE)  # the same token, no new request for one
    assert _paths(server) == [("token", 200), ("account", 204), ("account", 204)]
    org.expire_sessions()
    assert await sync.send(CHANGE)
    assert _paths(server)[3:] == [("account", 401), ("token", 200), ("account", 204)]
    assert sync.tokens is not None and sync.tokens.fetched == 2


async def test_a_second_401_is_final_after_one_renewal(
        client_credentials: tuple[SalesforceOrg, RecordingServer, SalesforceSync]) -> None:
    org, server, sync = client_credentials
    org.accepting = False
    with pytest.raises(DeliveryError) as info:
        await sync.send(CHANGE)
    assert not info.value.retryable and "401" in str(info.value)
    assert _paths(server) == [("token", 200), ("account", 401), ("token", 200),
                              ("account", 401)]


async def test_refused_credentials_are_a_permanent_failure(
        tls: tuple[Path, Path], session: requests.Session) -> None:
    server = await _org(tls, SalesforceOrg())
    try:
        config = NotificationConfig.from_dict({"salesforce": {
            "instance_url": server.url, "token_url": server.url + TOKEN_PATH,
            "client_id": CLIENT_ID, "client_secret": "wrong"}})
        assert config.salesforce is not None
        sync = SalesforceSync(server.url, "", session=session,
                              tokens=salesforce_tokens(config.salesforce.oauth, session))
        with pytest.raises(DeliveryError) as info:
            await sync.send(CHANGE)
        assert not info.value.retryable and "invalid_grant" in str(info.value)
        assert "authentication failure" not in str(info.value)  # no body in the logs
    finally:
        await server.stop()


async def test_jwt_bearer_signs_an_assertion_the_org_verifies(
        tls: tuple[Path, Path], session: requests.Session, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "salesforce.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    org = SalesforceOrg(public_key=public.decode())
    server = await _org(tls, org)
    try:
        config = NotificationConfig.from_dict({"salesforce": {
            "instance_url": server.url, "token_url": server.url + TOKEN_PATH,
            "client_id": CLIENT_ID, "username": USERNAME,
            "private_key_file": str(key_file)}})
        assert config.salesforce is not None
        sync = SalesforceSync(server.url, "", session=session,
                              tokens=salesforce_tokens(config.salesforce.oauth, session))
        assert await sync.send(CHANGE)
        org.expire_sessions()
        assert await sync.send(CHANGE)
        assert _paths(server) == [("token", 200), ("account", 204), ("account", 401),
                                  ("token", 200), ("account", 204)]
    finally:
        await server.stop()


@pytest.mark.parametrize(("spec", "problem"), [
    ({"client_id": CLIENT_ID}, "needs client_secret (client credentials) or username"),
    ({"client_id": CLIENT_ID, "client_secret": "s", "username": USERNAME,
      "private_key_file": "/dev/null"}, "not both"),
    ({"client_id": CLIENT_ID, "username": USERNAME}, "needs both username and private_key"),
    ({"client_secret": "s"}, "salesforce.client_id is required"),
    ({"client_id": CLIENT_ID, "username": USERNAME, "private_key_file": "/no/such.key"},
     "salesforce.private_key_file: No such file"),
])
def test_oauth_settings_are_checked_at_load(spec: dict[str, str], problem: str) -> None:
    with pytest.raises(NotificationConfigError, match=re.escape(problem)):
        NotificationConfig.from_dict({"salesforce": {
            "instance_url": "https://acme.my.salesforce.com",
            "token_url": "https://acme.my.salesforce.com" + TOKEN_PATH, **spec}})
