"""Small Kafka chores for the demo and the tests: produce, read a topic until a condition
holds. All async, all on aiokafka; each takes the ``security`` (TLS and SASL) of its
clients, plaintext unless told. Topic creation is ``streams/kafka_admin.py``: the worker
needs it too, and the worker never imports the development stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams.kafka_admin import topic_partitions
from streams.kafka_security import PLAINTEXT, KafkaSecurity

Record: TypeAlias = ConsumerRecord[bytes, bytes]


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
