"""The local HubSpot every CRM test writes to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.agents.sinks.test_crm import hubspot_api
from tests.fakes.http import RecordingServer


@pytest.fixture
async def hubspot() -> AsyncIterator[RecordingServer]:
    server = await RecordingServer(hubspot_api).start()
    yield server
    await server.stop()
