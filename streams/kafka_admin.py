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


#: The broker settings that bound a consumer group member's session timeout.
SESSION_TIMEOUT_LIMITS = ("group.min.session.timeout.ms", "group.max.session.timeout.ms")


async def session_timeout_limits(bootstrap: str, *, timeout: float = 15.0,
                                 security: KafkaSecurity = PLAINTEXT,
                                 ) -> tuple[float, float] | None:
    """The session timeouts (seconds, lowest and highest) every broker of the cluster
    accepts from a group member; None when a broker will not say (a managed Kafka may
    refuse to describe its brokers' configuration to a client)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                request_timeout_ms=int(timeout * 1000),
                                **security.aiokafka_options())
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        resources = [ConfigResource(ConfigResourceType.BROKER, str(broker["node_id"]),
                                    configs=dict.fromkeys(SESSION_TIMEOUT_LIMITS))
                     for broker in cluster["brokers"]]
        responses = await admin.describe_configs(resources)
    except Exception:  # refused, or an old broker: the join itself will tell
        return None
    finally:
        await admin.close()
    low, high = 0.0, float("inf")
    for response in responses:
        for error_code, _message, _type, _name, entries, *_ in response.resources:
            values = {entry[0]: entry[1] for entry in entries}
            if error_code != 0 or any(values.get(name) is None
                                      for name in SESSION_TIMEOUT_LIMITS):
                return None
            low = max(low, int(values[SESSION_TIMEOUT_LIMITS[0]]) / 1000)
            high = min(high, int(values[SESSION_TIMEOUT_LIMITS[1]]) / 1000)
    return (low, high) if responses else None
