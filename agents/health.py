"""``/healthz`` and ``/readyz``, for Kubernetes probes and load balancers.

``/healthz`` answers 200 while the process serves HTTP at all: it checks nothing else, so
that a worker replaying its changelog for minutes is not killed for being slow.

``/readyz`` answers 200 only when this worker can do its share: its partitions are
assigned (no rebalance in progress), its tables are recovered, and Kafka and Redis
answer. Otherwise 503, with each failing check named. Both go without authentication
and say nothing about accounts or workspaces.

A probe must be fast even when a dependency hangs (a stopped Redis still accepts TCP
connections): each check has a bound of :data:`CHECK_TIMEOUT_SECONDS`, both run at once,
and one answer is reused for :data:`CACHE_SECONDS`, so that many probes cost one check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
from aiohttp import web

from state.readmodel import redis_client
from streams.kafka_security import KafkaAccessError, check_access
from streams.settings import Settings

#: Bound of each dependency check, seconds (a probe's own timeout is a few seconds).
CHECK_TIMEOUT_SECONDS = 1.0
#: How long one readiness answer is reused, seconds.
CACHE_SECONDS = 1.5

Check = Callable[[], Awaitable[str | None]]
"""A dependency check: None when it is fine, else why not, in a few words."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """The answer of ``/readyz``: each check's problem, or None when it passed."""

    checks: Mapping[str, str | None]

    @property
    def ready(self) -> bool:
        return all(problem is None for problem in self.checks.values())

    def response(self) -> web.Response:
        body = {"status": "ready" if self.ready else "not ready",
                "checks": {name: problem or "ok" for name, problem in self.checks.items()}}
        return _no_store(orjson.dumps(body), 200 if self.ready else 503)


def _no_store(body: bytes, status: int) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def _bounded(check: Check, timeout: float) -> str | None:
    try:
        async with asyncio.timeout(timeout):
            return await check()
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # any failure of a dependency is "not ready", never a 500
        return f"{type(exc).__name__}: {exc}"[:200]


class ReadinessProbe:
    """Runs the readiness checks, at most once per ``cache_seconds``.

    ``local`` checks read this worker's own state (no I/O); ``remote`` ones reach a
    dependency and are each bounded by ``timeout`` seconds. Concurrent callers share the
    check in flight.
    """

    def __init__(self, local: Mapping[str, Callable[[], str | None]],
                 remote: Mapping[str, Check], *, timeout: float = CHECK_TIMEOUT_SECONDS,
                 cache_seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.local = dict(local)
        self.remote = dict(remote)
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._last: tuple[float, Readiness] | None = None
        self._running: asyncio.Task[Readiness] | None = None

    async def readiness(self) -> Readiness:
        now = self.clock()
        if self._last is not None and now - self._last[0] < self.cache_seconds:
            return self._last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._running)

    async def _check(self) -> Readiness:
        remote = await asyncio.gather(*(_bounded(check, self.timeout)
                                        for check in self.remote.values()))
        checks = {name: check() for name, check in self.local.items()}
        checks.update(zip(self.remote, remote, strict=True))
        answer = Readiness(checks)
        self._last = (self.clock(), answer)
        return answer


def partitions_assigned(app: Any) -> str | None:
    """None once the worker has its partitions and no rebalance is in progress."""
    if getattr(app, "rebalancing", False):
        return "rebalancing"
    consumer = getattr(app, "_consumer", None)  # app.consumer would create one
    try:
        assigned = bool(consumer is not None and consumer.assignment())
    except Exception:  # the consumer's thread is not started yet
        assigned = False
    return None if assigned else "no partitions assigned yet"


def tables_recovered(app: Any) -> str | None:
    """None once every active table partition of this worker is replayed."""
    recovery = cast(Any, app.tables).recovery
    if recovery.completed.is_set():
        return None
    try:
        remaining = int(recovery.active_remaining_total())
    except Exception:  # before the first assignment there is nothing to count
        return "recovering"
    return f"recovering ({remaining:,} changelog records to go)"


def kafka_check(settings: Settings, timeout: float = CHECK_TIMEOUT_SECONDS) -> Check:
    async def check() -> str | None:
        try:
            await check_access(settings.kafka_bootstrap, settings.kafka_security,
                               timeout=timeout)
        except KafkaAccessError as exc:
            return str(exc)
        return None

    return check


def redis_check(settings: Settings, timeout: float = CHECK_TIMEOUT_SECONDS
                ) -> tuple[Check, Callable[[], Awaitable[None]]]:
    """A check that PINGs Redis, and how to close its client."""
    client = redis_client(settings.redis_url, timeout)

    async def check() -> str | None:
        await client.ping()
        return None

    async def close() -> None:
        await client.aclose()

    return check, close


async def healthz(_request: web.Request) -> web.Response:
    return _no_store(b'{"status":"alive"}', 200)


def routes(probe: ReadinessProbe) -> list[web.RouteDef]:
    async def readyz(_request: web.Request) -> web.Response:
        return (await probe.readiness()).response()

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


def register(app: Any, settings: Settings) -> ReadinessProbe:
    """Serve ``/healthz`` and ``/readyz`` from the Faust worker's web server."""
    redis, close_redis = redis_check(settings)
    probe = ReadinessProbe(
        local={"partitions": lambda: partitions_assigned(app),
               "recovery": lambda: tables_recovered(app)},
        remote={"kafka": kafka_check(settings), "redis": redis})
    web_app: web.Application = app.web.web_app
    web_app.router.add_routes(routes(probe))

    async def close(_web_app: web.Application) -> None:
        await close_redis()

    web_app.on_cleanup.append(close)
    return probe
