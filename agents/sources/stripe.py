"""Stripe: signed with ``Stripe-Signature`` (HMAC-SHA256 over "t.body")."""

from agents.sources.vendor import Vendor
from agents.sources.verify import stripe_signature
from streams.sources.stripe import SOURCE, map_stripe

VENDOR = Vendor(SOURCE, (stripe_signature,), map_stripe)
