"""The walking skeleton: the smallest pipeline through every real piece.

An agent reads the events topic, counts messages per account in a RocksDB-backed table,
and each time an account's count reaches a multiple of the threshold it sends a JSON
message to the health-changes topic. The worker's metrics server (``metrics_port``)
serves its counters.
It proves the harness (Kafka, RocksDB, changelog, web server) end to end; the scoring
pipeline replaces it.

The account is the message key; a keyless message is counted under the ``account_id``,
``groupId`` or ``context.groupId`` of its JSON value. Messages with neither are skipped
and counted as dead-lettered with reason ``no_account``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import faust
import orjson

from agents.metrics import EVENTS_DEAD_LETTERED, MESSAGES_PROCESSED
from state.tables import raw_schema, raw_table
from streams.settings import Settings

THRESHOLD_ENV = "TELLTALE_SKELETON_THRESHOLD"
DEFAULT_THRESHOLD = 10
SCHEMA = "telltale.skeleton-count/1"


def threshold_from_env() -> int:
    raw = os.environ.get(THRESHOLD_ENV, str(DEFAULT_THRESHOLD))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{THRESHOLD_ENV} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{THRESHOLD_ENV} must be at least 1, got {value}")
    return value


def account_of(key: bytes | None, value: bytes | None) -> str | None:
    """The account a message counts for: its key, else an id inside its JSON value."""
    if key:
        return key.decode("utf-8", errors="replace")
    try:
        body: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    context = body.get("context")
    for candidate in (body.get("account_id"), body.get("groupId"),
                      context.get("groupId") if isinstance(context, dict) else None):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def crossing(previous: int, current: int, threshold: int) -> int | None:
    """The multiple of ``threshold`` that ``previous → current`` reached, if any."""
    if current // threshold > previous // threshold:
        return (current // threshold) * threshold
    return None


def register(app: faust.App, settings: Settings, *, threshold: int | None = None) -> None:
    threshold = threshold or threshold_from_env()
    names = settings.topics
    events = app.topic(names.events, schema=raw_schema(), partitions=settings.partitions)
    changes = app.topic(names.health_changes, schema=raw_schema(),
                        partitions=settings.partitions)
    counts = raw_table(app, settings, "skeleton-counts",
                       "Messages seen per account (walking skeleton)")

    @app.agent(events, name="skeleton-count")
    async def count_events(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            MESSAGES_PROCESSED.labels(agent="skeleton").inc()
            account = account_of(event.key, event.value)
            if account is None:
                EVENTS_DEAD_LETTERED.labels(reason="no_account").inc()
                continue
            key = account.encode()
            previous = int(counts.get(key) or 0)
            current = previous + 1
            counts[key] = str(current).encode()
            reached = crossing(previous, current, threshold)
            if reached is not None:
                await changes.send(key=key, value=orjson.dumps({
                    "schema": SCHEMA,
                    "account_id": account,
                    "count": current,
                    "threshold": reached,
                    "event_time": time.time(),
                }))
