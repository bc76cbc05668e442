"""Generic webhooks: the health change as JSON, signed so receivers can trust it.

Every request carries
- ``X-Telltale-Timestamp``: Unix time in seconds when the request was signed,
- ``X-Telltale-Signature: v1=<hex>``: HMAC-SHA256 with the endpoint's secret over
  ``"{timestamp}.{body}"`` (body as sent, UTF-8 bytes),
- ``X-Telltale-Change-Id``: the change id, the same on every retry, so receivers dedup;
- and, for a destination with a ``standard_webhooks_secret``, the Standard Webhooks
  headers (``agents/sinks/standard_webhooks.py``).

Receivers should recompute the signature, compare in constant time, and refuse a
timestamp older than a few minutes (:func:`verify` does all three).

The change id is the only event-derived value in a header: one that is not a plain token
(``streams/identifiers.py``) is refused before anything is sent. Redirects are not
followed (the signature is for the configured receiver): a 30x is a permanent failure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

import aiohttp

from agents.sinks import DeliveryError, status_error
from agents.sinks.standard_webhooks import standard_headers
from streams.identifiers import is_change_id

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex>`` over ``b"{timestamp}." + body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float,
           tolerance: float = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """Whether a received request was signed with ``secret`` within ``tolerance`` seconds."""
    try:
        timestamp = int(headers["X-Telltale-Timestamp"])
        given = headers["X-Telltale-Signature"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), given)


def signed_headers(secret: str, timestamp: int, body: bytes, change_id: str,
                   standard_key: bytes | None = None) -> dict[str, str]:
    """The request headers, with the Standard Webhooks ones when ``standard_key`` is set;
    a permanent DeliveryError when ``change_id`` is not a token."""
    if not is_change_id(change_id):
        raise DeliveryError("webhook refused: the change id is not a plain token",
                            retryable=False)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Telltale-Webhooks/1",
        "X-Telltale-Timestamp": str(timestamp),
        "X-Telltale-Signature": sign(secret, timestamp, body),
        "X-Telltale-Change-Id": change_id,
    }
    if standard_key is not None:
        headers.update(standard_headers(standard_key, change_id, timestamp, body))
    return headers


async def post(session: aiohttp.ClientSession, url: str, secret: str, body: bytes,
               change_id: str, now: float, timeout: float = 10.0,
               standard_key: bytes | None = None) -> None:
    """POST one signed change; any 2xx is success, else DeliveryError (408/429/5xx and
    network errors retryable; a redirect is not followed and is permanent). ``now`` is the
    signing time in Unix seconds."""
    headers = signed_headers(secret, int(now), body, change_id, standard_key)
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            text = await resp.text()
            if not 200 <= resp.status < 300:
                raise status_error("webhook", resp.status, text,
                                   resp.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"webhook unreachable: {exc!r}") from exc
