"""Billing and support webhooks, and Segment / RudderStack webhook destinations, into
the events topic through the collector.

Route: ``POST /sources/{workspace}/{source}`` (and ``…/{source}/{token}`` for a
secret path token), served by the collector's web app (:func:`mount`). For each
request:

1. the workspace and source must be in the sources file (``TELLTALE_SOURCES_CONFIG``),
   else **404**: an unconfigured source accepts nothing;
2. the body (at most :data:`MAX_BODY_BYTES`) must pass the vendor's check, else **401**;
3. the vendor's mapper (:mod:`streams.sources`) turns it into canonical events, which
   the collector accepts like any SDK's (normalisation and id checks, deduplication by
   message id, group commit, dead letters), answering **200** once Kafka acknowledged;
4. a body Telltale does not read (another event type) is acknowledged with **200**, so
   the vendor does not retry it; a malformed one, or one for no known account, goes to
   the dead-letter topic with its reason and is acknowledged too. **503** when Kafka or
   Redis is unavailable: the vendor retries, and the message id makes the retry one.

Every outcome is counted in ``telltale_source_events_total{source,outcome}``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from agents import metrics
from agents.collector import Collector
from agents.sources import chargebee, freshdesk, intercom, segment, stripe, zendesk
from agents.sources.intake import Intake, IntakeUnavailable
from agents.sources.vendor import Vendor
from agents.sources.verify import Delivery
from streams.dlq import DeadLetter
from streams.normalize import Reason
from streams.sources import Ignored, Refused
from streams.sources_config import SourcesConfig, load_sources

log = logging.getLogger(__name__)

VENDORS: dict[str, Vendor] = {vendor.name: vendor for vendor in (
    stripe.VENDOR, chargebee.VENDOR, zendesk.VENDOR, intercom.VENDOR, freshdesk.VENDOR,
    segment.SEGMENT, segment.RUDDERSTACK)}

MAX_BODY_BYTES = 256 * 1024
"""Largest webhook body: Stripe's invoice events with many lines stay well under it."""

ROUTE = "/sources/{workspace}/{source}"


class SourceRoutes:
    """The webhook handler of every configured source."""

    def __init__(self, intake: Intake, config: SourcesConfig) -> None:
        self.intake = intake
        self.config = config

    def routes(self) -> list[web.RouteDef]:
        return [web.post(ROUTE, self.receive), web.post(ROUTE + "/{token}", self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        status = 500
        try:
            response = await self._receive(request)
            status = response.status
            return response
        finally:
            metrics.HTTP_REQUESTS.labels(route=ROUTE, status=str(status)).inc()

    async def _receive(self, request: web.Request) -> web.Response:
        workspace = request.match_info["workspace"]
        vendor = VENDORS.get(request.match_info["source"])
        source = self.config.source(workspace, vendor.name) if vendor is not None else None
        if vendor is None or source is None:
            return _answer(404, error="no such source")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _answer(413, error=f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body = await request.content.read(MAX_BODY_BYTES + 1)
        except (HttpProcessingError, RequestPayloadError):
            return _answer(400, error="body could not be read")
        if len(body) > MAX_BODY_BYTES:
            return _answer(413, error=f"body is larger than {MAX_BODY_BYTES} bytes")
        now = time.time()
        delivery = Delivery(request.headers, body, request.match_info.get("token"), now)
        if not vendor.verified(delivery, source):
            _count(vendor, "unauthorized")
            return _answer(401, error="signature or credentials do not match")
        try:
            return await self._take(vendor, workspace, source.accounts, body, now)
        except IntakeUnavailable as exc:
            return _answer(exc.status, headers=exc.headers, error="retry later")
        except (KafkaError, RedisError, OSError) as exc:
            log.warning("source %s could not reach Kafka or Redis: %s", vendor.name, exc)
            return _answer(503, headers={"Retry-After": "1"}, error="retry later")
        except Exception:  # one vendor's payload must never take the worker down
            log.exception("source %s failed", vendor.name)
            return _answer(500, error="internal error")

    async def _take(self, vendor: Vendor, workspace: str, accounts: Any, body: bytes,
                    now: float) -> web.Response:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            await self.intake.dead_letter(workspace, DeadLetter(
                Reason.NOT_JSON, "webhook body is not JSON", vendor.name, workspace, now,
                raw=body))
            _count(vendor, "dead_lettered")
            return _answer(200, dead_lettered=1)
        outcome = vendor.map(payload, accounts)
        if isinstance(outcome, Ignored):
            _count(vendor, "ignored")
            return _answer(200, ignored=outcome.why)
        if isinstance(outcome, Refused):
            await self.intake.dead_letter(workspace, DeadLetter(
                outcome.reason, outcome.detail, vendor.name, workspace, now, payload=payload))
            _count(vendor, "dead_lettered")
            return _answer(200, dead_lettered=1)
        taken = await self.intake.accept(workspace, outcome.messages, vendor.stream_source,
                                         now)
        for outcome_name, count in (("accepted", taken.accepted),
                                    ("duplicate", taken.duplicates),
                                    ("dead_lettered", taken.dead_lettered)):
            if count:
                _count(vendor, outcome_name, count)
        return _answer(200, accepted=taken.accepted, duplicates=taken.duplicates,
                       dead_lettered=taken.dead_lettered)


def _count(vendor: Vendor, outcome: str, count: int = 1) -> None:
    metrics.SOURCE_EVENTS.labels(source=vendor.name, outcome=outcome).inc(count)


def _answer(status: int, headers: dict[str, str] | None = None, **fields: Any
            ) -> web.Response:
    return web.json_response({"success": status < 300, **fields}, status=status,
                             headers=headers, dumps=lambda v: orjson.dumps(v).decode())


def mount(router: web.UrlDispatcher, collector: Collector) -> None:
    """Serve the sources of ``collector.settings.sources_config`` next to the collector,
    through it."""
    config = load_sources(collector.settings.sources_config)
    router.add_routes(SourceRoutes(Intake(collector), config).routes())
