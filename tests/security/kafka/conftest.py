"""A broker of its own for the security tests: PLAINTEXT, plus SASL_PLAINTEXT and SASL_SSL
listeners (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with a certificate made here.

``kafka_bootstrap`` is overridden to this broker's PLAINTEXT listener, so ``settings`` and
the topic helpers of ``tests/conftest.py`` work as everywhere, and no other broker is
started for these tests. A test connects through a login with :func:`secured_settings`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from devstack.kafka import KafkaBroker, SaslListeners
from devstack.topics import Record, consume_until
from devstack.workers import WorkerProcess
from streams.settings import Settings
from tests.conftest import TEST_PARTITIONS
from tests.fakes.tls import self_signed

USER, PASSWORD = "telltale-worker", "worker-secret-1"
#: A user the broker's authorizer holds to its ACLs (USER, like PLAINTEXT clients, is a
#: super user).
ACL_USER, ACL_PASSWORD = "telltale-acl", "acl-secret-1"


@dataclass(frozen=True)
class SecuredKafka:
    broker: KafkaBroker
    cafile: Path  # the certificate of the SASL_SSL listener, which is its own CA


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    from devstack.kafka import start_kafka

    cert, key = self_signed(tmp_path_factory.mktemp("kafka-tls"))
    broker = start_kafka(partitions=TEST_PARTITIONS, ready_timeout=180,
                         sasl=SaslListeners({USER: PASSWORD, ACL_USER: ACL_PASSWORD},
                                            tls=(cert, key), restricted=frozenset({ACL_USER})))
    try:
        yield SecuredKafka(broker, cert)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(secured_kafka: SecuredKafka) -> str:
    return secured_kafka.broker.bootstrap


def secured_settings(settings: Settings, kafka: SecuredKafka, protocol: str, mechanism: str,
                     password: str = PASSWORD, user: str = USER) -> Settings:
    """``settings`` pointed at the ``protocol`` listener, logging in with ``mechanism``."""
    cafile = kafka.cafile if protocol == "SASL_SSL" else None
    return settings.with_kafka(*kafka.broker.login(user, password, protocol=protocol,
                                                   mechanism=mechanism, cafile=cafile))


def _sdk_batch(account: str) -> dict[str, Any]:
    """What a Segment SDK posts for one user joining ``account`` and using the product."""
    when = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    traits = {"name": f"{account.title()} Corp", "seats": 20, "arr": 30_000,
              "owner": "Riley Chen"}
    calls: list[dict[str, Any]] = [
        {"type": "identify", "userId": "dana", "traits": {"email": "dana@example.com"}},
        {"type": "group", "userId": "dana", "groupId": account, "traits": traits},
        {"type": "track", "userId": "dana", "event": "Logged In"},
        {"type": "track", "userId": "dana", "event": "Report Published"},
    ]
    for call in calls:
        call.update(messageId=str(uuid.uuid4()), timestamp=when)
    return {"batch": calls, "sentAt": when}


async def health_change_through_the_pipeline(worker: WorkerProcess,
                                              settings: Settings) -> dict[str, Any]:
    """POST an SDK batch to the worker's collector; the health change it leads to."""
    account = f"acc-{uuid.uuid4().hex[:6]}"
    write_key = next(iter(Settings.parse_pairs(settings.write_keys)))
    basic = base64.b64encode(f"{write_key}:".encode()).decode()  # as SDKs send the key
    async with aiohttp.ClientSession() as session, session.post(
            f"{worker.url}/v1/batch", json=_sdk_batch(account),
            headers={"Authorization": f"Basic {basic}"}) as response:
        assert response.status == 200, await response.text()

    def about_account(records: list[Record]) -> bool:
        return any(r.value and orjson.loads(r.value).get("account_id") == account
                   for r in records)

    records = await consume_until(settings.kafka_bootstrap, settings.topics.health_changes,
                                  about_account, timeout=150,
                                  security=settings.kafka_security)
    return next(change for change in (orjson.loads(r.value) for r in records if r.value)
                if change.get("account_id") == account)


def only_line(output: str) -> str:
    """The one line ``output`` holds (the test fails when it holds more, or a traceback)."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output
    assert len(lines) == 1, output[-3000:]
    return lines[0]
