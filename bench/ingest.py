"""Ingestion throughput: the HTTP collector and the resolve agent, each printed beside the
raw aiokafka rate measured in the same run on the same broker and the same data.

    .venv/bin/python bench/ingest.py [--events 200000] [--clients 8] [--batch 100]
                                     [--users 2000] [--users-per-batch 5] [--sasl]

Starts its own Kafka and Redis (devstack); with ``--sasl`` every client, the workers'
included, connects through a SASL_PLAINTEXT listener and logs in with SCRAM-SHA-512.
Then:

1. raw produce: aiokafka (acks=all, idempotent) writes the same batches as one envelope
   per person and batch (what a collector without group commit would write);
2. collector: ``--clients`` concurrent HTTP clients post Segment batches of ``--batch``
   events to a ``telltale worker --module agents.intake`` (Redis dedup, acks=all);
3. raw consume: aiokafka reads back what the collector wrote (its group commit joins the
   events of requests accepted together into one envelope per partition; the mean
   envelope size is printed), decoding every envelope into events (``ENVELOPES.decode``)
   — the least any consumer of envelopes must do; the rate with only ``orjson.loads``
   is printed too;
4. Faust pass-through: a worker whose only agent forwards each message unchanged (the
   least any Faust stage does per message: Faust's own ceiling on this machine);
5. resolve: a ``telltale worker --module agents.resolve`` starts on that topic.
   Worker rates are events over the span between the first and the last output message
   timestamps, so start-up time is not counted. While a worker runs, the benchmark only
   polls its committed offsets, and reads the outputs once it is done, so as not to take
   CPU from it.

Figures are events per second; the CPU is shared with the clients, the broker and Redis,
so the ratios say more than the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.kafka import start_kafka, start_kafka_with_login
from devstack.process import free_port
from devstack.redis import start_redis
from devstack.workers import start_worker
from streams.envelope import ENVELOPES, Envelope, kafka_key
from streams.events import Event, EventType, Source
from streams.kafka_admin import create_topics
from streams.kafka_security import PLAINTEXT, KafkaSecurity
from streams.settings import Settings

WRITE_KEY = "bench-key"
WORKSPACE = "bench"
PASS_THROUGH_SUFFIX = ".pass-through"


def register(app: Any, settings: Settings) -> None:
    """A Faust agent that only forwards each events-topic message to another topic: the
    least work any Faust stage does per message, measured beside the resolve agent."""
    events = app.topic(settings.topics.events, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    out = app.topic(settings.topics.by_account + PASS_THROUGH_SUFFIX, key_type=bytes,
                    value_type=bytes, key_serializer="raw", value_serializer="raw")

    @app.agent(events, name="bench-pass-through")
    async def forward(stream: Any) -> None:
        async for event in stream.events():
            await out.send(key=event.key, value=event.value)


def make_batches(events: int, batch: int, users: int, users_per_batch: int,
                 seed: int = 7) -> list[list[dict[str, Any]]]:
    """Segment batches; every user's first event is a group call so all are attributable."""
    rng = random.Random(seed)
    names = ["Logged In", "Dashboard Viewed", "Report Published", "Workflow Completed",
             "Export Created", "Teammate Invited"]
    seen: set[str] = set()
    batches = []
    now = time.time()
    for _ in range(events // batch):
        people = [f"user-{rng.randrange(users)}" for _ in range(users_per_batch)]
        messages = []
        for i in range(batch):
            user = people[i % users_per_batch]
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - rng.random() * 3600))
            base = {"messageId": uuid.uuid4().hex, "userId": user, "timestamp": stamp + "Z",
                    "context": {"library": {"name": "analytics-python", "version": "2.4"}}}
            if user not in seen:
                seen.add(user)
                messages.append({**base, "type": "group",
                                 "groupId": f"acct-{hash(user) % (users // 10 or 1)}",
                                 "traits": {"name": "Bench Co", "seats": 20}})
            else:
                messages.append({**base, "type": "track", "event": rng.choice(names),
                                 "properties": {"feature": "x", "n": i}})
        batches.append(messages)
    return batches


def collector_envelopes(batches: list[list[dict[str, Any]]]) -> list[tuple[bytes, bytes]]:
    """What the collector writes for these batches (one envelope per user per batch)."""
    out = []
    now = time.time()
    for messages in batches:
        by_user: dict[str, list[Event]] = {}
        for m in messages:
            event = Event(WORKSPACE, m["messageId"], EventType(m["type"]), now, now,
                          Source.SEGMENT, name=m.get("event"), user_id=m["userId"],
                          account_id=m.get("groupId"), properties=m.get("properties") or {},
                          traits=m.get("traits") or {})
            by_user.setdefault(m["userId"], []).append(event)
        out += [(kafka_key(WORKSPACE, user), ENVELOPES.encode(Envelope(WORKSPACE, user, group)))
                for user, group in by_user.items()]
    return out


async def raw_produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]],
                      events: int, security: KafkaSecurity) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=2,
                                max_batch_size=1024 * 1024, **security.aiokafka_options())
    await producer.start()
    try:
        start = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
        return events / (time.perf_counter() - start)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str, decode: bool,
                      security: KafkaSecurity) -> tuple[float, int, int]:
    """(events/s, events, messages) reading ``topic`` from the start to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20,
                                fetch_max_bytes=64 << 20, **security.aiokafka_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or
                                      await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_end()
        ends = {tp: await consumer.position(tp) for tp in partitions}
        await consumer.seek_to_beginning()
        total = sum(ends.values())
        seen = events = 0
        start = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    seen += 1
                    if decode:
                        decoded = ENVELOPES.decode(record.value)
                        events += len(decoded.events)  # type: ignore[union-attr]
                    else:
                        events += len(orjson.loads(record.value)["events"])
        return events / (time.perf_counter() - start), events, seen
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def http_load(url: str, batches: list[list[dict[str, Any]]], clients: int) -> float:
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    bodies = [orjson.dumps({"batch": b, "sentAt": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime())})
              for b in batches]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    accepted = 0

    async def client() -> None:
        nonlocal accepted
        async with aiohttp.ClientSession(headers={"Authorization": auth,
                                                  "Content-Type": "application/json"}) as s:
            while not queue.empty():
                body = queue.get_nowait()
                while True:
                    async with s.post(url + "/v1/batch", data=body) as response:
                        answer = await response.json(content_type=None)
                        if response.status == 200:
                            accepted += answer["accepted"]
                            break
                        if response.status != 429:
                            raise RuntimeError(f"collector answered {response.status}")
                        await asyncio.sleep(0.05)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    return accepted / elapsed


async def resolve_rate(bootstrap: str, group: str, source: str, topic: str, events: int,
                       timeout: float, security: KafkaSecurity) -> float:
    """Events/s of a worker (consumer group ``group``) reading ``source`` and writing
    ``topic``: ``events`` over the span of the output messages' timestamps.

    While the worker runs, this only polls the group's committed offsets (cheap), so that
    it does not take CPU from the worker it measures; the outputs are read and their
    events counted once the group has committed the whole input."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.aiokafka_options())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
                                **security.aiokafka_options())
    await admin.start()
    await consumer.start()
    try:
        inputs = [TopicPartition(source, p) for p in await _partitions(consumer, source)]
        ends = await consumer.end_offsets(inputs)
        deadline = time.monotonic() + timeout
        while True:
            committed = await admin.list_consumer_group_offsets(group)
            if all(committed.get(tp) is not None and committed[tp].offset >= ends[tp]
                   for tp in inputs):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} did not get through {source} in {timeout:.0f} s")
            await asyncio.sleep(0.5)
        outputs = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        consumer.assign(outputs)
        await consumer.seek_to_beginning(*outputs)
        out_ends = await consumer.end_offsets(outputs)
        seen = 0
        first = last = None
        async def behind() -> bool:
            for tp in outputs:
                if await consumer.position(tp) < out_ends[tp]:
                    return True
            return False

        while await behind():
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    seen += len(orjson.loads(record.value)["events"])
                    first = record.timestamp if first is None else min(first, record.timestamp)
                    last = record.timestamp if last is None else max(last, record.timestamp)
        if seen != events or first is None or last is None:
            raise AssertionError(f"{group} wrote {seen} events to {topic}, expected {events}")
        return events / max((last - first) / 1000.0, 1e-3)
    finally:
        await consumer.stop()
        await admin.close()


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="telltale-bench-"))
    print(f"starting Kafka ({args.partitions} partitions) and Redis ...", flush=True)
    security: KafkaSecurity = PLAINTEXT
    if args.sasl:
        broker, bootstrap, security = start_kafka_with_login(partitions=args.partitions,
                                                             ready_timeout=180)
    else:
        broker = start_kafka(partitions=args.partitions, ready_timeout=180)
        bootstrap = broker.bootstrap
    redis = start_redis(install=True)
    try:
        batches = make_batches(args.events, args.batch, args.users, args.users_per_batch)
        total = sum(len(b) for b in batches)
        envelopes = collector_envelopes(batches)
        port = free_port()
        settings = Settings(redis_url=redis.url,
                            topic_prefix="bench", app_id="bench-collector",
                            partitions=args.partitions, data_dir=work / "collector",
                            web_port=port, public_url=f"http://127.0.0.1:{port}",
                            write_keys=f"{WRITE_KEY}={WORKSPACE}", standby_replicas=0,
                            log_level="info", collector_linger_ms=args.linger_ms,
                            ).with_kafka(bootstrap, security)
        topics = settings.topics
        await create_topics(bootstrap, [topics.events, topics.by_account, "bench.raw"],
                            partitions=args.partitions, security=security)
        await create_topics(bootstrap, [topics.events_dlq], security=security)
        print(f"{total} events in {len(batches)} batches of {args.batch}, "
              f"{len(envelopes)} envelopes ({total / len(envelopes):.1f} events each)")

        produce = await raw_produce(bootstrap, "bench.raw", envelopes, total, security)

        worker = start_worker(settings, ["--module", "agents.intake"],
                              log_path=work / "collector.log", ready_timeout=180)
        try:
            collect = await http_load(worker.url, batches, args.clients)
        finally:
            worker.stop()

        consume, consumed, messages = await raw_consume(bootstrap, topics.events,
                                                        decode=True, security=security)
        consume_loads, _, _ = await raw_consume(bootstrap, topics.events, decode=False,
                                                security=security)
        assert consumed == total, (consumed, total)

        null_settings = settings.replace(app_id="bench-pass", data_dir=work / "pass",
                                         web_port=free_port())
        worker = start_worker(null_settings, ["--module", "bench.ingest"],
                              log_path=work / "pass.log", ready_timeout=180)
        try:
            passing = await resolve_rate(bootstrap, "bench-pass", topics.events,
                                         topics.by_account + PASS_THROUGH_SUFFIX, total,
                                         timeout=args.timeout, security=security)
        finally:
            worker.stop()

        resolve_settings = settings.replace(app_id="bench-resolve", data_dir=work / "resolve",
                                            web_port=free_port(), tick_interval=60.0)
        worker = start_worker(resolve_settings, ["--module", "agents.resolve"],
                              log_path=work / "resolve.log", ready_timeout=180)
        try:
            resolve = await resolve_rate(bootstrap, "bench-resolve", topics.events,
                                         topics.by_account, total, timeout=args.timeout,
                                         security=security)
        finally:
            worker.stop()

        print()
        print(f"raw aiokafka produce (acks=all, idempotent) {produce:>10,.0f} events/s")
        print(f"collector over HTTP, {args.clients} clients       {collect:>10,.0f} events/s"
              f"   = {collect / produce:.0%} of raw produce")
        print(f"raw aiokafka consume + envelope decode      {consume:>10,.0f} events/s"
              f"   (orjson.loads only: {consume_loads:,.0f}; the collector wrote "
              f"{messages:,} messages, {consumed / messages:.0f} events each)")
        print(f"Faust pass-through agent (iterate + send)   {passing:>10,.0f} events/s"
              f"   = {passing / consume:.0%} of raw consume + decode")
        print(f"resolve agent (Faust, RocksDB table)        {resolve:>10,.0f} events/s"
              f"   = {resolve / consume:.0%} of raw consume + decode, "
              f"{resolve / passing:.0%} of pass-through")
    finally:
        redis.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--linger-ms", type=float, default=Settings().collector_linger_ms,
                        help="the collector's group-commit linger (TELLTALE_COLLECTOR_LINGER_MS)")
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--users-per-batch", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--sasl", action="store_true",
                        help="connect every client through SASL_PLAINTEXT with SCRAM-SHA-512")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
