"""A broker of its own for the security tests: PLAINTEXT, plus SASL_PLAINTEXT and SASL_SSL
listeners (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with a certificate made here.

``kafka_bootstrap`` is overridden to this broker's PLAINTEXT listener, so ``settings`` and
the topic helpers of ``tests/conftest.py`` work as everywhere, and no other broker is
started for these tests. A test connects through a login with :func:`secured_settings`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.settings import Settings
from devstack.kafka import KafkaBroker, SaslListeners
from tests.conftest import TEST_PARTITIONS
from tests.fakes.tls import self_signed

USER, PASSWORD = "telltale-worker", "worker-secret-1"


@dataclass(frozen=True)
class SecuredKafka:
    broker: KafkaBroker
    cafile: Path  # the certificate of the SASL_SSL listener, which is its own CA


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    from devstack.kafka import start_kafka

    cert, key = self_signed(tmp_path_factory.mktemp("kafka-tls"))
    broker = start_kafka(partitions=TEST_PARTITIONS, ready_timeout=180,
                         sasl=SaslListeners({USER: PASSWORD}, tls=(cert, key)))
    try:
        yield SecuredKafka(broker, cert)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(secured_kafka: SecuredKafka) -> str:
    return secured_kafka.broker.bootstrap


def secured_settings(settings: Settings, kafka: SecuredKafka, protocol: str, mechanism: str,
                     password: str = PASSWORD) -> Settings:
    """``settings`` pointed at the ``protocol`` listener, logging in with ``mechanism``."""
    cafile = kafka.cafile if protocol == "SASL_SSL" else None
    return settings.with_kafka(*kafka.broker.login(USER, password, protocol=protocol,
                                                   mechanism=mechanism, cafile=cafile))
