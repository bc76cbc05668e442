"""Salesforce access tokens from OAuth 2.0, fetched when needed and renewed when refused.

A fixed session id expires (every few hours by default) and every write after that would
be dead-lettered as permanent. Instead Telltale asks the token endpoint itself, with
either flow a Connected App offers to a server:

- **client credentials**: ``grant_type=client_credentials`` with the app's consumer key
  and secret (the app runs as its configured user);
- **JWT bearer**: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with an
  assertion signed (RS256) by the app's private key, naming the user to act as.

The token is kept until Salesforce answers 401; then one new token is fetched and the
write tried once more (:meth:`SalesforceTokens.renew`). Token requests go only to the
host of ``token_url``, without redirects, with the TLS settings of the CRM session.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from agents.sinks import DeliveryError, PinnedSession

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Lifetime of a JWT bearer assertion, seconds (Salesforce accepts at most 3 minutes).
ASSERTION_SECONDS = 170
TOKEN_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class SalesforceOAuth:
    """How to obtain a token: ``client_secret`` for client credentials, or ``username``
    and ``private_key`` (PEM) for JWT bearer. ``audience`` is the login host the JWT
    names (https://login.salesforce.com, or https://test.salesforce.com for sandboxes)."""

    token_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    username: str | None = None
    private_key: str | None = field(default=None, repr=False)
    audience: str = "https://login.salesforce.com"

    def problems(self) -> list[str]:
        """What is missing or contradictory, in the notifications file's terms."""
        out: list[str] = []
        if not self.token_url.startswith("https://"):
            out.append("salesforce.token_url must be an https URL")
        if not self.client_id:
            out.append("salesforce.client_id is required for OAuth")
        jwt_flow = self.username is not None or self.private_key is not None
        if jwt_flow and not (self.username and self.private_key):
            out.append("salesforce JWT bearer needs both username and private_key_file")
        if jwt_flow == (self.client_secret is not None):
            out.append("salesforce OAuth needs client_secret (client credentials) or "
                       "username and private_key_file (JWT bearer), not both")
        return out

    def token_request(self, now: float) -> dict[str, str]:
        """The form body of a token request at Unix time ``now``."""
        if self.client_secret is not None:
            return {"grant_type": "client_credentials", "client_id": self.client_id,
                    "client_secret": self.client_secret}
        import jwt

        claims = {"iss": self.client_id, "sub": self.username, "aud": self.audience,
                  "exp": int(now) + ASSERTION_SECONDS}
        assertion = jwt.encode(claims, self.private_key or "", algorithm="RS256")
        return {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}


class SalesforceTokens:
    """The current access token, shared by the sync's worker threads."""

    def __init__(self, oauth: SalesforceOAuth, session: requests.Session | None = None,
                 clock: Any = time.time) -> None:
        self.oauth = oauth
        self.session = session
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self.fetched = 0  # tokens obtained so far (a figure for tests and logs)

    def current(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._fetch()
            return self._token

    def renew(self, refused: str) -> str:
        """A new token after ``refused`` got a 401; a thread that comes second reuses the
        token the first one fetched."""
        with self._lock:
            if self._token is None or self._token == refused:
                self._token = self._fetch()
            return self._token

    def _fetch(self) -> str:

        session = PinnedSession(self.oauth.token_url, self.session)
        try:
            answer = session.post(self.oauth.token_url,
                                  data=self.oauth.token_request(self.clock()),
                                  headers={"Accept": "application/json"},
                                  timeout=TOKEN_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise DeliveryError(f"salesforce token endpoint unreachable: {exc!r}") from exc
        finally:
            session.close()
        if answer.status_code != 200:
            # 400 invalid_client / invalid_grant: the credentials are wrong, which no
            # retry mends; 5xx and 429 may pass.
            error = _oauth_error(answer)
            raise DeliveryError(f"salesforce token endpoint answered HTTP "
                                f"{answer.status_code} ({error})",
                                retryable=answer.status_code == 429
                                or answer.status_code >= 500)
        try:
            token = answer.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            raise DeliveryError("salesforce token endpoint answered without an "
                                "access_token", retryable=False) from None
        if not isinstance(token, str) or not token:
            raise DeliveryError("salesforce token endpoint answered an empty access_token",
                                retryable=False)
        self.fetched += 1
        return token


def _oauth_error(answer: requests.Response) -> str:
    """The OAuth ``error`` code of a refusal (RFC 6749 5.2), bounded; never the body."""
    try:
        code = answer.json().get("error")
    except (ValueError, AttributeError):
        return "no error code"
    return str(code)[:64] if isinstance(code, str) and code.isascii() else "no error code"


def oauth_from_spec(spec: Any) -> tuple[SalesforceOAuth | None, list[str]]:
    """The ``[salesforce]`` table's OAuth settings (None when it names no ``token_url``),
    and every problem with them. ``private_key_file`` is read here, at start-up."""
    if not isinstance(spec, dict) or "token_url" not in spec:
        return None, []
    problems: list[str] = []
    private_key = None
    if spec.get("private_key_file"):
        try:
            with open(str(spec["private_key_file"]), encoding="utf-8") as handle:
                private_key = handle.read()
        except OSError as exc:
            problems.append(f"salesforce.private_key_file: {exc.strerror or exc}")
            private_key = ""
    oauth = SalesforceOAuth(
        token_url=str(spec["token_url"]), client_id=str(spec.get("client_id") or ""),
        client_secret=None if spec.get("client_secret") is None else str(spec["client_secret"]),
        username=None if spec.get("username") is None else str(spec["username"]),
        private_key=private_key,
        audience=str(spec.get("audience") or "https://login.salesforce.com"))
    return oauth, problems + oauth.problems()


def salesforce_tokens(oauth: SalesforceOAuth | None, session: requests.Session | None = None
                      ) -> SalesforceTokens | None:
    """The token source of a ``[salesforce]`` target that uses OAuth, else None."""
    return None if oauth is None else SalesforceTokens(oauth, session)
