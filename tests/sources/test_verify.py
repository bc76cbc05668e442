"""Each vendor's proof that a webhook is its own: the signature built the vendor's way
(Stripe's with Stripe's own library) passes, and a changed byte, a wrong secret, an old
timestamp or a missing header fails."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
import stripe
from multidict import CIMultiDict

from agents.sources import VENDORS
from agents.sources.verify import (
    Delivery,
    basic_auth,
    hub_signature_sha1,
    segment_signature,
    stripe_signature,
    token,
    zendesk_signature,
)
from streams.sources_config import SourceConfig
from tests.sources.fixtures import body

SECRET = "whsec_test_0123456789abcdef"
NOW = 1_764_061_260.0


def _delivery(payload: bytes, headers: dict[str, str], path_token: str | None = None,
              now: float = NOW) -> Delivery:
    return Delivery(CIMultiDict(headers), payload, path_token, now)


def _flip(payload: bytes) -> bytes:
    """The body with one byte changed."""
    middle = len(payload) // 2
    return payload[:middle] + bytes([payload[middle] ^ 0x01]) + payload[middle + 1:]


def test_stripe_signatures_from_stripes_library_pass_and_fail_on_one_byte() -> None:
    source = SourceConfig("stripe", secret=SECRET)
    payload = body("stripe_invoice_payment_failed")
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), SECRET, timestamp=int(NOW))
    assert stripe_signature(_delivery(payload, {"Stripe-Signature": header}), source)
    # Stripe's own check agrees with ours on the same header.
    stripe.WebhookSignature.verify_header(payload.decode(), header, SECRET, tolerance=None)
    assert not stripe_signature(_delivery(_flip(payload), {"Stripe-Signature": header}), source)
    other = SourceConfig("stripe", secret=SECRET + "x")
    assert not stripe_signature(_delivery(payload, {"Stripe-Signature": header}), other)
    assert not stripe_signature(_delivery(payload, {}), source)


def test_stripe_signatures_outside_the_tolerance_fail() -> None:
    source = SourceConfig("stripe", secret=SECRET, tolerance_seconds=300)
    payload = body("stripe_invoice_paid")
    old = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), SECRET, timestamp=int(NOW) - 301)
    assert not stripe_signature(_delivery(payload, {"Stripe-Signature": old}), source)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload.decode(), old, SECRET, tolerance=1)


def test_stripe_header_with_a_rolled_secret_passes_on_any_v1() -> None:
    source = SourceConfig("stripe", secret=SECRET)
    payload = body("stripe_invoice_paid")
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), SECRET, timestamp=int(NOW))
    timestamp, signature = header.split(",")
    rolled = f"{timestamp},v1={'0' * 64},{signature},v0=ignored"
    assert stripe_signature(_delivery(payload, {"Stripe-Signature": rolled}), source)


def _zendesk(payload: bytes, secret: str, timestamp: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), timestamp.encode() + payload, hashlib.sha256).digest()
    return {"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp}


def test_zendesk_signature() -> None:
    source = SourceConfig("zendesk", secret=SECRET)
    payload = body("zendesk_ticket_created")
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))
    headers = _zendesk(payload, SECRET, at)
    assert zendesk_signature(_delivery(payload, headers), source)
    assert not zendesk_signature(_delivery(_flip(payload), headers), source)
    assert not zendesk_signature(_delivery(payload, headers, now=NOW + 3600), source)
    forged = {**headers, "X-Zendesk-Webhook-Signature-Timestamp": "2025-11-25T09:01:01Z"}
    assert not zendesk_signature(_delivery(payload, forged), source)


def test_intercom_hub_signature() -> None:
    source = SourceConfig("intercom", secret=SECRET)
    payload = body("intercom_conversation_created")
    signed = "sha1=" + hmac.new(SECRET.encode(), payload, hashlib.sha1).hexdigest()
    assert hub_signature_sha1(_delivery(payload, {"X-Hub-Signature": signed}), source)
    assert not hub_signature_sha1(_delivery(_flip(payload), {"X-Hub-Signature": signed}),
                                  source)
    assert not hub_signature_sha1(_delivery(payload, {"X-Hub-Signature": signed[5:]}), source)


def test_segment_x_signature() -> None:
    source = SourceConfig("segment", secret=SECRET)
    payload = body("segment_track")
    signed = hmac.new(SECRET.encode(), payload, hashlib.sha1).hexdigest()
    assert segment_signature(_delivery(payload, {"X-Signature": signed}), source)
    assert not segment_signature(_delivery(_flip(payload), {"X-Signature": signed}), source)


def test_basic_auth_and_tokens() -> None:
    source = SourceConfig("chargebee", username="telltale", password="p" * 20)
    good = "Basic " + base64.b64encode(f"telltale:{'p' * 20}".encode()).decode()
    bad = "Basic " + base64.b64encode(f"telltale:{'p' * 19}q".encode()).decode()
    assert basic_auth(_delivery(b"{}", {"Authorization": good}), source)
    assert not basic_auth(_delivery(b"{}", {"Authorization": bad}), source)
    assert not basic_auth(_delivery(b"{}", {"Authorization": "Basic !!"}), source)
    assert not basic_auth(_delivery(b"{}", {}), source)
    tokened = SourceConfig("rudderstack", token="t0ken0123456789abcdef")
    assert token(_delivery(b"{}", {}, "t0ken0123456789abcdef"), tokened)
    assert token(_delivery(b"{}", {"Authorization": "Bearer t0ken0123456789abcdef"}), tokened)
    assert not token(_delivery(b"{}", {}, "t0ken0123456789abcdeF"), tokened)
    assert not token(_delivery(b"{}", {}), tokened)


def test_credentials_that_are_not_utf8_are_refused_not_an_error() -> None:
    """The server keeps header bytes that are not UTF-8 as lone surrogates: such a
    signature or token is wrong, never a failed request."""
    hostile = "\udca4\udcff"
    payload = body("segment_track")
    assert not segment_signature(_delivery(payload, {"X-Signature": hostile}),
                                 SourceConfig("segment", secret=SECRET))
    assert not hub_signature_sha1(_delivery(payload, {"X-Hub-Signature": "sha1=" + hostile}),
                                  SourceConfig("intercom", secret=SECRET))
    tokened = SourceConfig("rudderstack", token="t0ken0123456789abcdef")
    assert not token(_delivery(b"{}", {"Authorization": "Bearer " + hostile}), tokened)
    assert not token(_delivery(b"{}", {}, "\ud800"), tokened)


def test_a_vendor_without_its_credential_configured_accepts_nothing() -> None:
    # Segment takes a signature or a token; configured with a token only, a valid-looking
    # signature made with no secret at all must not pass.
    segment = VENDORS["segment"]
    only_token = SourceConfig("segment", token="t0ken0123456789abcdef")
    unsigned = hmac.new(b"", b"{}", hashlib.sha1).hexdigest()
    assert not segment.verified(_delivery(b"{}", {"X-Signature": unsigned}), only_token)
    assert segment.verified(_delivery(b"{}", {}, "t0ken0123456789abcdef"), only_token)
