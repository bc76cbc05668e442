"""Bodies arrive in pieces: the collector reads them whole, and refuses an oversize one
while reading it (413), whatever its framing or compression."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson

from agents.collector import CollectorLimits
from tests.security.conftest import ServeCollector
from tests.security.harness import Live, http_request, track


def _pieces(raw: bytes, size: int) -> list[bytes]:
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def _batch(count: int, pad: int = 0) -> dict[str, Any]:
    return {"batch": [track(i, user=f"u{i % 50}", properties={"pad": "x" * pad})
                      for i in range(count)]}


async def test_a_batch_written_in_pieces_with_pauses_is_read_whole(live: Live) -> None:
    raw = orjson.dumps(_batch(5))
    answer = await http_request(live.port, "/v1/batch", _pieces(raw, len(raw) // 6 + 1),
                                pause=0.3)
    assert (answer.status, answer.body["accepted"]) == (200, 5), answer
    chunked = await http_request(live.port, "/v1/batch", _pieces(orjson.dumps(
        {"batch": [track(9)]}), 7), pause=0.1, chunked=True)
    assert (chunked.status, chunked.body["accepted"]) == (200, 1), chunked


async def test_a_400_kb_batch_sent_slowly_arrives_whole_on_the_topic(live: Live) -> None:
    batch = _batch(1500, pad=200)
    raw = orjson.dumps(batch)
    assert 390_000 < len(raw) < 500 * 1024
    answer = await http_request(live.port, "/v1/batch", _pieces(raw, 16 * 1024),
                                pause=0.05)
    assert (answer.status, answer.body["accepted"]) == (200, 1500), answer
    ids = [event.message_id for event in await live.events()]
    assert sorted(ids) == sorted(m["messageId"] for m in batch["batch"])


async def test_a_declared_oversize_body_is_413_at_once_even_when_busy(
    serve_collector: ServeCollector
) -> None:
    # Back-pressure smaller than the body: a 429 would be retried by SDKs for ever.
    live: Live = await serve_collector(CollectorLimits(max_inflight_bytes=100_000))
    raw = orjson.dumps(_batch(4000, pad=200))
    assert len(raw) > 1_000_000
    answer = await http_request(live.port, "/v1/batch", _pieces(raw, 64 * 1024),
                                pause=0.2, wait_answer_before_body=10)
    assert answer.status == 413, answer
    assert answer.seconds < 10  # answered on the headers, before any of the body was sent
    assert "larger than" in answer.body["error"]


async def test_a_chunked_body_over_the_limit_is_413_while_reading(live: Live) -> None:
    raw = orjson.dumps(_batch(4000, pad=200))
    answer = await http_request(live.port, "/v1/batch", _pieces(raw, 64 * 1024),
                                pause=0.02, chunked=True)
    assert answer.status == 413, answer
    call = await http_request(live.port, "/v1/track", _pieces(orjson.dumps(
        track(1, properties={"pad": "x" * 40_000})), 4096), chunked=True)
    assert call.status == 413, call


async def test_a_chunked_gzip_body_inflating_over_the_limit_is_413(live: Live) -> None:
    bomb = gzip.compress(orjson.dumps(_batch(4000, pad=2000)))
    assert len(bomb) < 200_000
    answer = await http_request(live.port, "/v1/batch", _pieces(bomb, 8 * 1024),
                                chunked=True, headers={"Content-Encoding": "gzip"})
    assert answer.status == 413, answer
    assert await live.events() == []


async def test_a_gzip_body_larger_than_the_limit_as_sent_is_413(live: Live) -> None:
    """Bytes that inflate to almost nothing (one space per flushed block, 7 bytes each)
    still count: the limit holds for the body as sent, not only once inflated."""
    deflate = zlib.compressobj(wbits=31)  # gzip framing
    parts = [deflate.compress(b'{"batch": [')]
    parts += [deflate.compress(b" ") + deflate.flush(zlib.Z_SYNC_FLUSH) for _ in range(80_000)]
    parts.append(deflate.compress(orjson.dumps(track(1))[1:-1].join([b"{", b"}]}"]))
                 + deflate.flush())
    body = b"".join(parts)
    assert len(body) > 500 * 1024 > 80_000 + 200
    answer = await http_request(live.port, "/v1/batch", _pieces(body, 64 * 1024),
                                chunked=True, headers={"Content-Encoding": "gzip"})
    assert answer.status == 413, answer
    assert await live.events() == []


async def test_a_body_that_trickles_in_for_too_long_is_408(
    serve_collector: ServeCollector
) -> None:
    live: Live = await serve_collector(CollectorLimits(read_timeout_seconds=1.0))
    raw = orjson.dumps(_batch(3))
    answer = await http_request(live.port, "/v1/batch", _pieces(raw, len(raw) // 3 + 1),
                                pause=0.8)
    assert answer.status == 408, answer
