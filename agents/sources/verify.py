"""How each vendor proves a webhook is its own, checked in constant time.

Every check takes the raw body exactly as received (a re-encoded body would not match)
and answers only yes or no: why a signature failed is not told to the sender.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from agents.basic_auth import basic_credentials, same_secret
from streams.sources_config import SourceConfig


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook request as the checks see it."""

    headers: Mapping[str, str]
    """Request headers (case-insensitive mapping)."""
    body: bytes
    path_token: str | None
    """The secret path segment after the source's name, when the URL has one."""
    now: float
    """Epoch seconds the request was received."""


def _digest(secret: str, message: bytes, algorithm: str) -> bytes:
    return hmac.new(secret.encode(), message, algorithm).digest()


def stripe_signature(delivery: Delivery, source: SourceConfig) -> bool:
    """``Stripe-Signature: t=<epoch s>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]``, with
    ``t`` within the source's tolerance of now."""
    header = delivery.headers.get("Stripe-Signature")
    if source.secret is None or not header or len(header) > 2048:
        return False
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        return False
    if abs(delivery.now - int(timestamp)) > source.tolerance_seconds:
        return False
    expected = _digest(source.secret, timestamp.encode() + b"." + delivery.body,
                       "sha256").hex()
    return any(same_secret(expected, given) for given in signatures)


def zendesk_signature(delivery: Delivery, source: SourceConfig) -> bool:
    """``X-Zendesk-Webhook-Signature`` = base64 HMAC-SHA256 of timestamp + body, the
    timestamp being ``X-Zendesk-Webhook-Signature-Timestamp`` (ISO 8601, within the
    tolerance)."""
    timestamp = delivery.headers.get("X-Zendesk-Webhook-Signature-Timestamp")
    given = delivery.headers.get("X-Zendesk-Webhook-Signature")
    if source.secret is None or not timestamp or not given or len(timestamp) > 64:
        return False
    try:
        signed_at = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    if abs(delivery.now - signed_at) > source.tolerance_seconds:
        return False
    expected = base64.b64encode(
        _digest(source.secret, timestamp.encode() + delivery.body, "sha256")).decode()
    return same_secret(expected, given)


def hub_signature_sha1(delivery: Delivery, source: SourceConfig) -> bool:
    """Intercom's ``X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body>`` (client secret)."""
    given = delivery.headers.get("X-Hub-Signature")
    if source.secret is None or not given:
        return False
    expected = "sha1=" + _digest(source.secret, delivery.body, "sha1").hex()
    return same_secret(expected, given.strip().lower())


def segment_signature(delivery: Delivery, source: SourceConfig) -> bool:
    """Segment's ``X-Signature``: hex HMAC-SHA1 of the body with the shared secret."""
    given = delivery.headers.get("X-Signature")
    if source.secret is None or not given:
        return False
    return same_secret(_digest(source.secret, delivery.body, "sha1").hex(), given.strip().lower())


def basic_auth(delivery: Delivery, source: SourceConfig) -> bool:
    """HTTP basic auth with the source's username and password."""
    credentials = basic_credentials(delivery.headers.get("Authorization", ""))
    if source.username is None or source.password is None or credentials is None:
        return False
    user, password = credentials
    # Both compared whatever the first gives, so timing says nothing about which failed.
    user_ok = same_secret(hashlib.sha256(source.username.encode()).hexdigest(),
                          hashlib.sha256(user.encode()).hexdigest())
    password_ok = same_secret(hashlib.sha256(source.password.encode()).hexdigest(),
                              hashlib.sha256((password or "").encode()).hexdigest())
    return password is not None and user_ok and password_ok


def token(delivery: Delivery, source: SourceConfig) -> bool:
    """The source's token as the URL's last path segment or as a bearer token (what
    RudderStack's custom headers can send)."""
    if source.token is None:
        return False
    header = delivery.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else delivery.path_token
    return same_secret(source.token, given)
