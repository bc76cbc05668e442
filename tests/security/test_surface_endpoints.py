"""The public port serves the product, not the worker's insides: Faust's debug views are
off and ``/metrics`` lives on its own port, bound to loopback unless told otherwise."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from devstack.workers import WorkerProcess
from streams.settings import Settings

#: Faust's built-in views in faust-streaming 0.15 (faust/web/apps/), and our /metrics.
HIDDEN = ["/router/", "/router/topics", "/table/", "/graph/", "/stats/", "/performance/",
          "/metrics"]


def _status(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def test_metrics_listen_on_loopback_by_default() -> None:
    defaults = Settings()
    assert defaults.metrics_host == "127.0.0.1"
    assert defaults.metrics_port != defaults.web_port


def test_public_port_hides_faust_views_and_metrics(
        settings: Settings, start_worker: Callable[..., WorkerProcess]) -> None:
    worker = start_worker(settings, ready_timeout=150)
    for path in HIDDEN:
        status, body = _status(worker.url + path)
        assert status == 404, (path, status, body[:200])
    status, body = _status(worker.metrics_url + "/metrics")
    assert status == 200
    assert b"# HELP telltale_events_received_total" in body
    # The metrics port serves nothing else: no product routes, no Faust views.
    for path in ("/router/", "/v1/batch", "/today"):
        assert _status(worker.metrics_url + path)[0] == 404, path
