"""Telltale against a broker that wants a login: SCRAM and PLAIN, over SASL_PLAINTEXT and
SASL_SSL, from the start-up check through the topic helpers to a whole worker; and a
wrong password, which must end a command in one line rather than a hang."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.notify import rebuild
from devstack.process import wait_until
from devstack.topics import consume_until, produce
from devstack.workers import WorkerProcess, settings_env
from streams.kafka_admin import create_topics
from streams.kafka_security import KafkaAccessError, KafkaSecurity, check_access
from streams.settings import Settings
from tests.security.kafka.conftest import (
    PASSWORD,
    USER,
    SecuredKafka,
    health_change_through_the_pipeline,
    only_line,
    secured_settings,
)

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]

LOGINS = [("SASL_PLAINTEXT", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
          ("SASL_PLAINTEXT", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN"),
          ("SASL_SSL", "SCRAM-SHA-512")]


@pytest.mark.parametrize(("protocol", "mechanism"), LOGINS)
async def test_each_mechanism_logs_in_and_a_wrong_password_is_refused(
        settings: Settings, secured_kafka: SecuredKafka, protocol: str,
        mechanism: str) -> None:
    good = secured_settings(settings, secured_kafka, protocol, mechanism)
    await check_access(good.kafka_bootstrap, good.kafka_security, timeout=20)

    bad = secured_settings(settings, secured_kafka, protocol, mechanism, password="wrong-1")
    with pytest.raises(KafkaAccessError) as raised:
        await check_access(bad.kafka_bootstrap, bad.kafka_security, timeout=20)
    message = str(raised.value)
    assert message.startswith(f"cannot use Kafka ({protocol} {mechanism} as user '{USER}'): ")
    assert "authentication failed" in message and "\n" not in message
    assert "wrong-1" not in message


async def test_a_client_without_a_login_or_without_the_ca_is_told_why(
        secured_kafka: SecuredKafka) -> None:
    listeners = secured_kafka.broker.sasl_bootstraps
    with pytest.raises(KafkaAccessError, match="TELLTALE_KAFKA_SECURITY_PROTOCOL"):
        await check_access(listeners["SASL_PLAINTEXT"], KafkaSecurity(), timeout=20)
    no_ca = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                          sasl_username=USER, sasl_password=PASSWORD)
    with pytest.raises(KafkaAccessError,
                       match=r"certificate is not trusted .*TELLTALE_KAFKA_SSL_CAFILE"):
        await check_access(listeners["SASL_SSL"], no_ca, timeout=20)


async def test_topic_helpers_work_over_sasl_ssl(settings: Settings,
                                                secured_kafka: SecuredKafka) -> None:
    """Admin client, producer and consumer of ``devstack.topics`` all take the login."""
    secured = secured_settings(settings, secured_kafka, "SASL_SSL", "SCRAM-SHA-512")
    bootstrap, security = secured.kafka_bootstrap, secured.kafka_security
    topic = f"{settings.topic_prefix}.tls"
    await create_topics(bootstrap, [topic], partitions=2, security=security)
    await produce(bootstrap, topic, [("k1", {"n": 1}), ("k2", {"n": 2})], security=security)
    records = await consume_until(bootstrap, topic, lambda seen: len(seen) >= 2,
                                  security=security)
    assert sorted(orjson.loads(r.value)["n"] for r in records if r.value) == [1, 2]


async def _worker_through_the_pipeline(
        settings: Settings, secured_kafka: SecuredKafka, start_worker: Any, protocol: str,
        mechanism: str) -> tuple[WorkerProcess, Settings]:
    """A worker logging in with ``mechanism`` over ``protocol``, after a post went through
    it to a health change with a score; its log never shows the password."""
    secured = secured_settings(settings, secured_kafka, protocol, mechanism)
    worker = await asyncio.to_thread(start_worker, secured, ready_timeout=180)
    change = await health_change_through_the_pipeline(worker, secured)
    assert change["current"]["score"] is not None
    assert PASSWORD not in worker.log()
    return worker, secured


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_worker_logging_in_with_scram_sha_512_turns_a_post_into_a_health_change(
        settings: Settings, secured_kafka: SecuredKafka, start_worker: Any) -> None:
    worker, secured = await _worker_through_the_pipeline(
        settings, secured_kafka, start_worker, "SASL_PLAINTEXT", "SCRAM-SHA-512")

    # `telltale rebuild-read-model` reads the same topic with the same login (once the
    # worker is gone, so that its notify agent cannot fold the change in first).
    await asyncio.to_thread(worker.stop)
    assert (await rebuild(secured, timeout=120)).changes >= 1


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_worker_logging_in_with_plain_over_tls_turns_a_post_into_a_health_change(
        settings: Settings, secured_kafka: SecuredKafka, start_worker: Any) -> None:
    worker, _ = await _worker_through_the_pipeline(settings, secured_kafka, start_worker,
                                                   "SASL_SSL", "PLAIN")
    assert f"Authenticated as {USER} via PLAIN" in worker.log(), "aiokafka saw the login"


@pytest.mark.timeout(120)
def test_worker_with_a_wrong_password_exits_at_start_up_with_one_line(
        settings: Settings, secured_kafka: SecuredKafka, start_worker: Any) -> None:
    secured = secured_settings(settings, secured_kafka, "SASL_PLAINTEXT", "SCRAM-SHA-512",
                               password="not-the-password")
    worker = start_worker(secured, wait=False)
    assert wait_until(lambda: not worker.process.alive, timeout=60), "the worker hangs"
    assert worker.process.returncode not in (0, None)
    line = only_line(worker.log())
    assert line.startswith("telltale worker: cannot use Kafka (SASL_PLAINTEXT SCRAM-SHA-512 "
                           f"as user '{USER}'): ")
    assert "authentication failed" in line and "not-the-password" not in line


@pytest.mark.timeout(120)
def test_rebuild_with_a_wrong_password_exits_with_one_line(
        settings: Settings, secured_kafka: SecuredKafka) -> None:
    secured = secured_settings(settings, secured_kafka, "SASL_SSL", "SCRAM-SHA-512",
                               password="not-the-password")
    result = subprocess.run(
        [sys.executable, "-m", "agents.cli", "rebuild-read-model", "--timeout", "30"],
        cwd=REPO, capture_output=True, text=True, timeout=90, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **settings_env(secured)})
    assert result.returncode != 0
    line = only_line(result.stdout + result.stderr)
    assert line.startswith("telltale rebuild-read-model: cannot use Kafka (SASL_SSL ")
    assert "authentication failed" in line
