"""Freshdesk: it does not sign webhooks; basic auth or a secret path token instead."""

from agents.sources.vendor import Vendor
from agents.sources.verify import basic_auth, token
from streams.sources.freshdesk import SOURCE, map_freshdesk

VENDOR = Vendor(SOURCE, (basic_auth, token), map_freshdesk)
