"""A local HTTP server that records requests and answers from a script, standing in for
Slack incoming webhooks, webhook receivers, HubSpot and Salesforce (which cannot run here).

``script`` maps a request to ``(status, headers, body)``; by default every request gets
200 ``ok``. :class:`Flaky` answers errors for the first N requests, then succeeds.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from devstack.process import free_port


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return orjson.loads(self.body)


Answer = tuple[int, dict[str, str], bytes]
Script = Callable[["Recorded"], Answer]


def ok(_: Recorded) -> Answer:
    return 200, {"Content-Type": "text/plain"}, b"ok"


@dataclass
class Flaky:
    """The first ``failures`` requests get ``status`` (with ``Retry-After`` if given)."""

    failures: int
    status: int = 503
    retry_after: str | None = None
    then: Script = ok
    seen: int = 0

    def __call__(self, request: Recorded) -> Answer:
        self.seen += 1
        if self.seen <= self.failures:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return self.status, headers, b"temporarily unavailable"
        return self.then(request)


@dataclass
class RecordingServer:
    script: Script = ok
    ssl_context: ssl.SSLContext | None = None
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = Recorded(request.method, request.path_qs, dict(request.headers), body, 0)
        status, headers, payload = self.script(record)
        record.status = status
        self.requests.append(record)
        self._arrived.set()
        response = web.Response(status=status, headers=headers, body=payload)
        if self.ssl_context is not None:
            # No keep-alive over TLS: an idle TLS connection left at shutdown is reported
            # as an unclosed transport.
            response.force_close()
        return response

    async def start(self) -> RecordingServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port,
                          ssl_context=self.ssl_context).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def accepted(self) -> list[Recorded]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def wait_for(self, count: int, timeout: float = 20.0, *,
                       accepted: bool = True) -> list[Recorded]:
        """Wait until ``count`` requests (accepted ones by default) have arrived."""
        async with asyncio.timeout(timeout):
            while True:
                got = self.accepted() if accepted else self.requests
                if len(got) >= count:
                    return got
                self._arrived.clear()
                await self._arrived.wait()
