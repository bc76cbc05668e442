"""A workspace, ``acme``, that takes every vendor's webhooks: its sources file, each
vendor's credentials in it, and how each vendor signs what it sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import stripe

STRIPE_SECRET = "whsec_routes_0123456789abcdef"
SEGMENT_SECRET = "segment-shared-0123456789"
CHARGEBEE_PASSWORD = "chargebee-0123456789abcd"
ZENDESK_SECRET = "zendesk-0123456789abcdef"
INTERCOM_SECRET = "intercom-0123456789abcdef"
FRESHDESK_TOKEN = "freshdesk0123456789abcdef"
RUDDERSTACK_TOKEN = "rudderstack0123456789abcd"
SOURCES = f"""
[workspaces.acme.stripe]
secret = "{STRIPE_SECRET}"
[workspaces.acme.stripe.accounts]
cus_NffrFeUfNV2Hib = "acme"

[workspaces.acme.chargebee]
username = "telltale"
password = "{CHARGEBEE_PASSWORD}"
accounts = {{ "16BPgETyVrQbiGh8" = "globex" }}

[workspaces.acme.segment]
secret = "{SEGMENT_SECRET}"

[workspaces.acme.zendesk]
secret = "{ZENDESK_SECRET}"
accounts = {{ "509974" = "initech" }}

[workspaces.acme.intercom]
secret = "{INTERCOM_SECRET}"
accounts = {{ "u-dana" = "initech" }}

[workspaces.acme.freshdesk]
token = "{FRESHDESK_TOKEN}"
accounts = {{ "Umbrella Corp" = "umbrella" }}

[workspaces.acme.rudderstack]
token = "{RUDDERSTACK_TOKEN}"
"""


def stripe_headers(payload: bytes, secret: str = STRIPE_SECRET) -> dict[str, str]:
    """Signed by Stripe's own library, as Stripe signs each delivery (a retry afresh)."""
    return {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=int(time.time()))}


def segment_headers(payload: bytes) -> dict[str, str]:
    return {"X-Signature": hmac.new(SEGMENT_SECRET.encode(), payload,
                                    hashlib.sha1).hexdigest()}


def signed(source: str, payload: bytes) -> tuple[str, dict[str, str]]:
    """The path and headers each vendor sends ``payload`` with, signed its way."""
    path = f"/sources/acme/{source}"
    if source == "stripe":
        return path, stripe_headers(payload)
    if source == "chargebee":
        return path, {"Authorization": "Basic " + base64.b64encode(
            f"telltale:{CHARGEBEE_PASSWORD}".encode()).decode()}
    if source == "zendesk":
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        digest = hmac.new(ZENDESK_SECRET.encode(), at.encode() + payload,
                          hashlib.sha256).digest()
        return path, {"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
                      "X-Zendesk-Webhook-Signature-Timestamp": at}
    if source == "intercom":
        return path, {"X-Hub-Signature": "sha1=" + hmac.new(
            INTERCOM_SECRET.encode(), payload, hashlib.sha1).hexdigest()}
    if source == "freshdesk":
        return f"{path}/{FRESHDESK_TOKEN}", {}
    if source == "rudderstack":
        return path, {"Authorization": f"Bearer {RUDDERSTACK_TOKEN}"}
    return path, segment_headers(payload)
