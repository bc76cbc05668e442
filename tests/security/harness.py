"""The collector as the internet sees it: a live collector app (real Kafka, real Redis)
behind a real socket, and a raw HTTP/1.1 client that controls how a body is cut into
TCP segments and how fast they arrive. Fixtures are in ``conftest.py``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.collector import Collector
from devstack.topics import Record
from streams.envelope import ENVELOPES, Envelope
from streams.kafka_admin import topic_partitions
from streams.settings import Settings

KEY = "wk-hostile"
AUTH = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float
    """From the end of the request headers to the end of the answer."""


async def http_request(port: int, path: str, pieces: Iterable[bytes], *,
                       headers: dict[str, str] | None = None, pause: float = 0.0,
                       chunked: bool = False, content_length: int | None = None,
                       wait_answer_before_body: float = 0.0) -> Answer:
    """POST ``pieces`` to 127.0.0.1:``port`` over one raw connection: each piece is
    written and flushed on its own, ``pause`` seconds apart (as chunks when ``chunked``).
    ``Content-Length`` is the pieces' total unless given. With
    ``wait_answer_before_body`` the answer is awaited that long before any body is sent
    (a server that refuses on the headers alone answers in that time). Writing stops
    quietly once the server has answered and closed."""
    parts = list(pieces)
    head = {"Host": "127.0.0.1", "Content-Type": "application/json", "Authorization": AUTH,
            "Connection": "close", **(headers or {})}
    if chunked:
        head["Transfer-Encoding"] = "chunked"
    else:
        head["Content-Length"] = str(sum(map(len, parts)) if content_length is None
                                     else content_length)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\n".encode()
                     + b"".join(f"{k}: {v}\r\n".encode() for k, v in head.items()) + b"\r\n")
        await writer.drain()
        started = time.monotonic()
        answer: asyncio.Task[tuple[int, dict[str, str], bytes]] = asyncio.ensure_future(
            _read_answer(reader))
        if wait_answer_before_body:
            await asyncio.wait([answer], timeout=wait_answer_before_body)
        try:
            for piece in parts:
                if answer.done():
                    break
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
            if chunked and not answer.done():
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server answered early and closed: the answer is what counts
        status, answer_headers, raw = await asyncio.wait_for(answer, 60)
        seconds = time.monotonic() - started
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.wait_closed()
    return Answer(status, answer_headers, orjson.loads(raw) if raw else None, seconds)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().title()] = value.strip()
    length = int(headers.get("Content-Length", "0"))
    return status, headers, await reader.readexactly(length)


@dataclass
class Live:
    port: int
    collector: Collector
    settings: Settings
    bootstrap: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def send(self, path: str, body: bytes | Any, **options: Any) -> Answer:
        """One request, body written at once (JSON-encoded unless bytes)."""
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        return await http_request(self.port, path, [raw], **options)

    async def events(self) -> list[Any]:
        """Every event on the events topic, as collected."""
        return [event for record in await read_all(self.bootstrap, self.settings.topics.events)
                for event in _events_of(record)]

    async def dead_letters(self) -> list[Record]:
        return await read_all(self.bootstrap, self.settings.topics.events_dlq)


def _events_of(record: Record) -> list[Any]:
    envelope = ENVELOPES.decode(record.value)
    assert isinstance(envelope, Envelope)
    return list(envelope.events)


async def read_all(bootstrap: str, topic: str) -> list[Record]:
    """Everything on ``topic`` up to its current end (every partition). Once the collector
    answered 200, all it produced is acknowledged, so this is all there will be."""
    partitions = [TopicPartition(topic, p)
                  for p in range(await topic_partitions(bootstrap, topic))]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Record] = []
        deadline = time.monotonic() + 60
        while True:
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not behind:
                return records
            assert time.monotonic() < deadline, f"{topic} not read to its end in 60 s"
            batches = await consumer.getmany(*behind, timeout_ms=500)
            records += [r for part in batches.values() for r in part]
    finally:
        await consumer.stop()


def track(i: int, user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": f"m-{i}", "userId": user,
            "event": "Report Published", "timestamp": "2024-05-01T10:00:00Z", **extra}
