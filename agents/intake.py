"""The worker's HTTP intake: the collector and the billing and support sources built on it,
served from the Faust worker's own web server.

The sources reach into the collector (its producer, dedup and answers), so the two are
wired together here rather than the collector knowing of its sources.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from agents.collector import Collector
from agents.sources import mount as mount_sources
from agents.sources.crm_read import CrmPoller, load_readers
from agents.sources.intake import Intake
from streams.settings import Settings

log = logging.getLogger(__name__)


def register(app: Any, settings: Settings) -> None:
    """Serve the collector from the Faust worker's own web server (same port as the API,
    page and ``/metrics``). Its producer starts with the app and stops before it."""
    collector = Collector(settings)
    web_app: web.Application = app.web.web_app
    web_app.router.add_routes(collector.routes())
    mount_sources(web_app.router, collector)
    readers = load_readers(settings.sources_config)  # refuses to start on any problem
    if readers:
        async def claim(name: str, seconds: float) -> bool:
            if collector.redis is None:  # not started yet: the poller tries again soon
                raise RuntimeError("the collector has not reached Redis yet")
            key = f"{settings.topic_prefix}:crm-read:{name}"
            return bool(await collector.redis.set(key, "1", nx=True,
                                                  px=max(1, int(seconds * 1000))))

        poller = CrmPoller(readers, Intake(collector), claim=claim)

        @app.task
        async def read_crms() -> None:
            await poller.run()

    @app.task
    async def start_collector() -> None:
        try:
            await collector.start()
        except (KafkaError, RedisError, OSError) as exc:  # the first request retries
            log.warning("collector not started yet: %s", exc)

    async def stop_collector(*_args: Any, **_kwargs: Any) -> None:
        await collector.stop()

    app.on_before_shutdown.connect(stop_collector)
