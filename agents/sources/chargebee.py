"""Chargebee: it does not sign webhooks, so its URL is protected by basic auth."""

from agents.sources.vendor import Vendor
from agents.sources.verify import basic_auth
from streams.sources.chargebee import SOURCE, map_chargebee

VENDOR = Vendor(SOURCE, (basic_auth,), map_chargebee)
