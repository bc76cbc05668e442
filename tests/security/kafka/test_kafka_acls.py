"""The ACLs of docs/security-kafka.md, against a broker whose authorizer holds one user to
them: granted exactly the commands of that page, the user runs a whole worker from an SDK
post to a health change; topics created beforehand need no Create; and a worker that may
not create its topics stops with one line."""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from devstack.process import wait_until
from streams import kafka_admin
from streams.kafka_security import KafkaAccessError
from streams.settings import Settings
from tests.security.kafka.conftest import (
    ACL_PASSWORD,
    ACL_USER,
    SecuredKafka,
    health_change_through_the_pipeline,
    only_line,
    secured_settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOC = Path(__file__).resolve().parents[3] / "docs" / "security-kafka.md"
#: Options of the documented commands that say how to reach a broker, not what to grant.
_CONNECTION_OPTIONS = ("--bootstrap-server", "--command-config")


def documented_worker_acls(variables: dict[str, str]) -> list[list[str]]:
    """The ``kafka-acls.sh`` commands of the page's worker block, as AclCommand
    arguments, with ``$NAME`` replaced from ``variables``."""
    block = DOC.read_text().split("<!-- acls:worker -->", 1)[1]
    script = block.split("```sh", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line)
        assert words[0] == "kafka-acls.sh", line
        arguments: list[str] = []
        skip = False
        for word in words[1:]:
            if skip:
                skip = False
            elif word in _CONNECTION_OPTIONS:
                skip = True
            else:
                for name, value in variables.items():
                    word = word.replace(f"${name}", value)
                assert "$" not in word, f"unknown variable in {line!r}"
                arguments.append(word)
        commands.append(arguments)
    return commands


def _restricted(settings: Settings, secured_kafka: SecuredKafka) -> Settings:
    return secured_settings(settings, secured_kafka, "SASL_PLAINTEXT", "SCRAM-SHA-512",
                            password=ACL_PASSWORD, user=ACL_USER)


@pytest.mark.timeout(420)
async def test_a_worker_granted_the_documented_acls_runs_the_pipeline(
        settings: Settings, secured_kafka: SecuredKafka, start_worker: Any) -> None:
    restricted = _restricted(settings, secured_kafka)
    with pytest.raises(KafkaAccessError, match="not allowed to create the topics"):
        await kafka_admin.create_topics(restricted.kafka_bootstrap, [restricted.topics.events],
                                         security=restricted.kafka_security)

    grants = documented_worker_acls({"PRINCIPAL": f"User:{ACL_USER}",
                                     "TOPIC_PREFIX": settings.topic_prefix,
                                     "APP_ID": settings.app_id})
    assert len(grants) == 3
    for arguments in grants:
        await asyncio.to_thread(secured_kafka.broker.run_tool, "kafka.admin.AclCommand",
                                *arguments)

    worker = await asyncio.to_thread(start_worker, restricted, ready_timeout=180)
    change = await health_change_through_the_pipeline(worker, restricted)
    assert change["current"]["score"] is not None


async def test_topics_created_beforehand_need_no_create_acl(
        settings: Settings, secured_kafka: SecuredKafka, create_topics: Any) -> None:
    restricted = _restricted(settings, secured_kafka)
    topic = restricted.topics.events
    await create_topics(topic)  # as an administrator would
    await asyncio.to_thread(secured_kafka.broker.run_tool, "kafka.admin.AclCommand", "--add",
                            "--allow-principal", f"User:{ACL_USER}", "--topic", topic,
                            "--operation", "Read")
    await kafka_admin.create_topics(restricted.kafka_bootstrap, [topic],
                                     security=restricted.kafka_security)


@pytest.mark.timeout(120)
def test_a_worker_that_may_not_create_its_topics_stops_with_one_line(
        settings: Settings, secured_kafka: SecuredKafka, start_worker: Any) -> None:
    worker = start_worker(_restricted(settings, secured_kafka), wait=False)
    assert wait_until(lambda: not worker.process.alive, timeout=60), "the worker hangs"
    assert worker.process.returncode not in (0, None)
    line = only_line(worker.log())
    assert line.startswith("telltale worker: not allowed to create the topics ")
    named = line.removeprefix("telltale worker: not allowed to create the topics ")
    assert settings.topics.events in re.split(r"[ ,]+", named), line
    assert "grant Create on them" in line
