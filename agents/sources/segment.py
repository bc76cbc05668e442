"""Segment's and RudderStack's webhook destinations: one Segment-spec message a POST.

Segment signs with ``X-Signature`` when a shared secret is set; RudderStack's webhook
destination does not sign, and sends a token in a custom header or basic auth instead.
"""

from agents.sources.vendor import Vendor
from agents.sources.verify import basic_auth, segment_signature, token
from streams.events import Source
from streams.sources.destination import map_destination

SEGMENT = Vendor("segment", (segment_signature, token), map_destination, Source.SEGMENT)
RUDDERSTACK = Vendor("rudderstack", (token, basic_auth), map_destination,
                     Source.RUDDERSTACK)
