"""Small Kafka chores for the demo and the tests: create topics, produce, read a topic
until a condition holds. All async, all on aiokafka; each takes the ``security`` (TLS and
SASL) of its clients, plaintext unless told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

from streams.kafka_security import PLAINTEXT, KafkaAccessError, KafkaSecurity

_TOPIC_ALREADY_EXISTS = 36
_TOPIC_AUTHORIZATION_FAILED = 29

Record: TypeAlias = ConsumerRecord[bytes, bytes]


async def create_topics(bootstrap: str, names: Iterable[str], *, partitions: int = 1,
                        replication_factor: int = 1,
                        config: Mapping[str, str] | None = None,
                        timeout: float = 30.0, security: KafkaSecurity = PLAINTEXT) -> None:
    """Create ``names`` with ``partitions`` partitions each; existing topics are left alone.

    Returns once every topic shows up in the cluster metadata. Topics that exist already
    are not asked for at all: a broker answers a create request for them with an
    authorization error unless the client may create topics, and where topics are
    created by an administrator beforehand, Telltale's login need not be allowed to.
    """
    wanted = list(names)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                request_timeout_ms=int(timeout * 1000),
                                **security.aiokafka_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor, topic_configs=dict(config or {}))
             for name in missing]
        ) if missing else None
        errors = _topic_errors(response)
        refused = [name for name, code, *_ in errors if code == _TOPIC_AUTHORIZATION_FAILED]
        if refused:
            raise KafkaAccessError(
                f"not allowed to create the topics {', '.join(refused)} "
                f"({security.describe()}): grant Create on them (docs/security-kafka.md) "
                "or create them beforehand")
        problems = [f"{name}: error {code} {message or ''}".strip()
                    for name, code, message, *_ in errors
                    if code not in (0, _TOPIC_ALREADY_EXISTS)]
        if problems:
            raise RuntimeError("could not create topics: " + "; ".join(problems))
        await _wait_for_topics(admin, wanted, timeout)
    finally:
        await admin.close()


def _topic_errors(response: Any) -> list[tuple[Any, ...]]:
    return [] if response is None else [tuple(entry) for entry in response.topic_errors]


async def _wait_for_topics(admin: AIOKafkaAdminClient, names: Sequence[str],
                           timeout: float) -> dict[str, int]:
    """Wait until ``names`` exist (never auto-creating them); returns partition counts."""
    deadline = time.monotonic() + timeout
    while True:
        existing = set(await admin.list_topics())
        if all(name in existing for name in names):
            described = await admin.describe_topics(list(names))
            counts = {t["topic"]: len(t["partitions"]) for t in described
                      if t["error_code"] == 0}
            if len(counts) == len(names) and all(counts.values()):
                return counts
        if time.monotonic() >= deadline:
            missing = sorted(set(names) - existing)
            raise TimeoutError(f"topics not there after {timeout:.0f} s: {missing}")
        await asyncio.sleep(0.2)


async def topic_partitions(bootstrap: str, topic: str, timeout: float = 30.0, *,
                           security: KafkaSecurity = PLAINTEXT) -> int:
    """Partition count of ``topic``, waiting (up to ``timeout`` s) for it to exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.aiokafka_options())
    await admin.start()
    try:
        return (await _wait_for_topics(admin, [topic], timeout))[topic]
    finally:
        await admin.close()


def _encode(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


async def produce(bootstrap: str, topic: str,
                  messages: Iterable[tuple[Any, Any]], *, partition: int | None = None,
                  security: KafkaSecurity = PLAINTEXT) -> int:
    """Send ``(key, value)`` pairs; bytes go as they are, str as UTF-8, else as JSON.

    Returns the number sent, after every send is acknowledged.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                **security.aiokafka_options())
    await producer.start()
    count = 0
    try:
        batch = []
        for key, value in messages:
            batch.append(await producer.send(topic, _encode(value), key=_encode(key),
                                             partition=partition))
            count += 1
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    return count


async def consume_until(bootstrap: str, topic: str,
                        predicate: Callable[[list[Record]], bool], *,
                        timeout: float = 30.0, from_beginning: bool = True,
                        security: KafkaSecurity = PLAINTEXT) -> list[Record]:
    """Read ``topic`` (every partition, no consumer group) until ``predicate(records)``.

    ``records`` holds everything read so far, in arrival order. Returns it once the
    predicate holds; raises ``TimeoutError`` (with what was seen) after ``timeout`` s.
    Waits for the topic to exist rather than auto-creating it.
    """
    deadline = time.monotonic() + timeout
    partitions = await topic_partitions(bootstrap, topic, timeout, security=security)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                **security.aiokafka_options())
    await consumer.start()
    records: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        if predicate(records):
            return records
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [r.value[:200] if r.value else r.value for r in records[-5:]]
                raise TimeoutError(
                    f"condition on {topic} not met within {timeout:.0f} s; read "
                    f"{len(records)} records, last ones: {seen!r}"
                )
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            fresh = [record for part in batches.values() for record in part]
            if fresh:
                records.extend(fresh)
                if predicate(records):
                    return records
    finally:
        await consumer.stop()


def json_values(records: Sequence[Record]) -> list[Any]:
    """The JSON-decoded values of ``records`` (records without a value are skipped)."""
    return [orjson.loads(r.value) for r in records if r.value is not None]
