"""Intercom: signed with ``X-Hub-Signature`` (HMAC-SHA1 with the app's client secret)."""

from agents.sources.vendor import Vendor
from agents.sources.verify import hub_signature_sha1
from streams.sources.intercom import SOURCE, map_intercom

VENDOR = Vendor(SOURCE, (hub_signature_sha1,), map_intercom)
