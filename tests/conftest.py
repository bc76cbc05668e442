"""Test harness: a real Kafka broker and a real Redis, started once per test session.

Both start lazily - only when a test asks for ``kafka_bootstrap`` / ``redis_url`` (or
something built on them, like ``settings``) - so a run of unit tests starts nothing. Set
``TELLTALE_TEST_KAFKA=host:port`` / ``TELLTALE_TEST_REDIS=redis://...`` to use servers
that are already running instead.

Fixtures:
    kafka_bootstrap   session  "127.0.0.1:PORT" of a live Kafka 3.9 KRaft broker
    redis_url         session  "redis://127.0.0.1:PORT/0" of a live redis-server
    unique_prefix     function short unique string (topic prefix, app id, Redis keys)
    settings          function Settings wired to both, unique prefix/app id, tmp data dir,
                               free web and metrics ports, TEST_PARTITIONS partitions, 0.5 s ticks
    create_topics     function await create_topics(*names, partitions=1, config=None)
    produce           function await produce(topic, [(key, value), ...]) -> count
    consume_until     function await consume_until(topic, predicate, timeout=30.0)
                               -> list[ConsumerRecord]; predicate sees all records so far
    start_worker      function start_worker(settings, *worker_args, env=None, wait=True)
                               -> WorkerProcess: `telltale worker` in a child process,
                               ready when it returns, stopped at the end of the test
    start_pipeline    function await start_pipeline(settings, modules) -> WorkerProcess: the
                               pipeline's topics created, then a worker of those modules
    promtool_bin      session  Path of Prometheus's promtool (fetched once when missing)
    quiet_sdk_loggers function the Segment, RudderStack and PostHog SDKs' loggers (and the
                               retry libraries under them) at CRITICAL for the test
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from devstack import topics as kafka_topics
from devstack.process import free_port
from devstack.workers import WorkerProcess
from streams import kafka_admin
from streams.settings import Settings

# Brokers started here create topics with this many partitions when a producer writes to
# a topic nobody created; `settings` uses the same number so Faust tables and their
# source topics always agree.
TEST_PARTITIONS = 2


_LIVE_SERVER_FIXTURES = frozenset({"kafka_bootstrap", "redis_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reaches a live server through any fixture is an integration test, marked
    or not, so ``-m "not integration"`` never starts Kafka or Redis."""
    for item in items:
        if _LIVE_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("TELLTALE_TEST_KAFKA")
    if external:
        yield external.removeprefix("kafka://")
        return
    from devstack.kafka import start_kafka

    broker = start_kafka(partitions=TEST_PARTITIONS, ready_timeout=180)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    external = os.environ.get("TELLTALE_TEST_REDIS")
    if external:
        yield external
        return
    from devstack.redis import start_redis

    server = start_redis(install=True)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def unique_prefix() -> str:
    """``t<10 hex>``: valid in topic names, Faust app ids and Redis keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, unique_prefix: str,
             tmp_path: Path) -> Settings:
    port = free_port()
    return Settings(
        broker=f"kafka://{kafka_bootstrap}",
        redis_url=redis_url,
        topic_prefix=unique_prefix,
        app_id=unique_prefix,
        partitions=TEST_PARTITIONS,
        data_dir=tmp_path / "data",
        web_port=port,
        metrics_port=free_port(),
        public_url=f"http://127.0.0.1:{port}",
        tick_interval=0.5,
        standby_replicas=0,
        rocksdb_block_cache_mb=8,
        rocksdb_write_buffer_mb=4,
        # Every rebuild in the suite goes through the bulk restore, however small.
        restore_bulk_records=1,
    )


CreateTopics = Callable[..., Awaitable[None]]
Produce = Callable[..., Awaitable[int]]
ConsumeUntil = Callable[..., Awaitable[list[kafka_topics.Record]]]


@pytest.fixture
def create_topics(kafka_bootstrap: str) -> CreateTopics:
    async def create(*names: str, partitions: int = 1,
                     config: Mapping[str, str] | None = None) -> None:
        await kafka_admin.create_topics(kafka_bootstrap, names, partitions=partitions,
                                         config=config)

    return create


@pytest.fixture
def produce(kafka_bootstrap: str) -> Produce:
    async def send(topic: str, messages: Iterable[tuple[Any, Any]],
                   partition: int | None = None) -> int:
        return await kafka_topics.produce(kafka_bootstrap, topic, messages,
                                          partition=partition)

    return send


@pytest.fixture
def consume_until(kafka_bootstrap: str) -> ConsumeUntil:
    async def consume(topic: str,
                      predicate: Callable[[list[kafka_topics.Record]], bool],
                      timeout: float = 30.0) -> list[kafka_topics.Record]:
        return await kafka_topics.consume_until(kafka_bootstrap, topic, predicate,
                                                timeout=timeout)

    return consume


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    from devstack.workers import start_worker as spawn_worker

    started: list[WorkerProcess] = []

    def start(settings: Settings, *worker_args: str, env: Mapping[str, str] | None = None,
              wait: bool = True, ready_timeout: float = 90.0) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started)}.log"
        worker = spawn_worker(settings, worker_args, log_path=log_path, env=env, wait=wait,
                              ready_timeout=ready_timeout)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def start_pipeline(create_topics: CreateTopics, start_worker: Callable[..., WorkerProcess]
                   ) -> Callable[..., Awaitable[WorkerProcess]]:
    async def start(settings: Settings, modules: Iterable[str]) -> WorkerProcess:
        from agents import app as app_modules

        topics = settings.topics
        await create_topics(topics.events, topics.by_account, topics.health_changes,
                            partitions=settings.partitions)
        await create_topics(topics.events_dlq, topics.deliveries_dlq)
        # The production worker once it holds every module needed; else exactly those.
        args = ([] if set(modules) <= set(app_modules.MODULES)
                else [arg for module in modules for arg in ("--module", module)])
        return await asyncio.to_thread(start_worker, settings, *args, ready_timeout=180)

    return start


#: Loggers of the SDKs the end-to-end tests send with, and of the retry libraries under them.
SDK_LOGGERS = ("segment", "rudder", "posthog", "backoff", "urllib3")


@pytest.fixture
def quiet_sdk_loggers() -> Iterator[None]:
    """The SDKs log every retried request; keep the test output to what matters."""
    previous = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    yield
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="session")
def promtool_bin() -> Path:
    from tests.deploy.promtool import PromtoolUnavailable, ensure_promtool

    try:
        return ensure_promtool()
    except PromtoolUnavailable as exc:
        pytest.fail(str(exc))
