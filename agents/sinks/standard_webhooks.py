"""Standard Webhooks signatures (https://www.standardwebhooks.com), beside Telltale's own.

A webhook destination with a ``standard_webhooks_secret`` also gets
- ``webhook-id``: the change id (the same on every retry, so receivers dedup),
- ``webhook-timestamp``: Unix seconds when it was signed,
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``,
where the key is the secret's base64 part after ``whsec_``. Any Standard Webhooks library
verifies these; the ``X-Telltale-*`` headers stay for receivers written against them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
#: The spec asks for keys of 24 to 64 bytes.
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


def parse_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError saying what is wrong."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX} followed by base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not "
                         f"{len(key)}")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def standard_headers(key: bytes, message_id: str, timestamp: int, body: bytes
                     ) -> dict[str, str]:
    """The three Standard Webhooks headers; ``message_id`` must already be a plain token."""
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(key, message_id, timestamp, body)}
