"""Topic administration for the worker, ``telltale rebuild`` and the tests: create topics
(leaving existing ones alone) and wait for their partitions. On aiokafka's admin client,
each call takes the ``security`` (TLS and SASL) of its clients, plaintext unless told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka_security import PLAINTEXT, KafkaAccessError, KafkaSecurity

_TOPIC_ALREADY_EXISTS = 36
_TOPIC_AUTHORIZATION_FAILED = 29

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
