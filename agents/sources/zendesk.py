"""Zendesk: signed with ``X-Zendesk-Webhook-Signature`` over timestamp + body."""

from agents.sources.vendor import Vendor
from agents.sources.verify import zendesk_signature
from streams.sources.zendesk import SOURCE, map_zendesk

VENDOR = Vendor(SOURCE, (zendesk_signature,), map_zendesk)
