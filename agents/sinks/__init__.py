"""Where health changes go: Slack, signed webhooks, HubSpot and Salesforce.

Each sink module turns a health change (the ``telltale.health-change/1`` dict) into one
request and raises :class:`DeliveryError` when the destination did not take it; the
dispatcher (``agents/sinks/dispatch.py``) owns queues, retries, backoff and the
dead-letter topic, so the sinks stay small and the stream never waits on them.

No sink follows a redirect: the token or signature of a request is meant for the configured
host only, and a 30x usually means a moved endpoint that needs a new URL in the
configuration. A redirect is therefore a permanent failure (dead-lettered with the reason,
not retried). The CRM clients build their URLs themselves, so their requests also go
through a transport that refuses any host other than the configured one
(:func:`refuse_foreign_host`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests


class DeliveryError(Exception):
    """A destination refused or failed a delivery.

    ``retryable`` says whether trying again may help (429, 5xx, network errors);
    ``retry_after`` is the wait the destination asked for, in seconds, if it said.
    """

    def __init__(self, reason: str, *, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def status_error(destination: str, status: int, body: str,
                 retry_after_header: str | None) -> DeliveryError:
    """The DeliveryError for a non-2xx HTTP answer (retryable for 408/425/429/5xx)."""
    if 300 <= status < 400:
        return DeliveryError(f"{destination} answered HTTP {status}, a redirect, which is "
                             "not followed: check the configured URL", retryable=False)
    retry_after: float | None = None
    if retry_after_header:
        try:
            retry_after = max(0.0, float(retry_after_header))
        except ValueError:
            retry_after = None
    return DeliveryError(
        f"{destination} answered HTTP {status}: {body[:200]}",
        retryable=status in RETRYABLE_STATUSES or status >= 500,
        retry_after=retry_after,
    )


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, lower-case host, port or the scheme's default) of an absolute URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:  # a port that is not a number
        port = None
    return scheme, (parts.hostname or "").lower(), port


def refuse_foreign_host(destination: str, url: str, configured: str) -> None:
    """Raise a permanent DeliveryError, before anything is sent, unless ``url`` points at
    the scheme, host and port of the ``configured`` base URL."""
    if origin(url) != origin(configured) or not origin(configured)[1]:
        raise DeliveryError(f"{destination} request refused: it would go to "
                            f"{urlsplit(url).netloc[:100]!r}, not the configured host",
                            retryable=False)


class PinnedSession(requests.Session):
    """A requests session that sends only to the host of ``base_url`` and never follows a
    redirect. TLS and proxy settings (verify, cert, proxies, trust_env) come from
    ``like`` when given."""

    def __init__(self, base_url: str, like: requests.Session | None = None) -> None:
        super().__init__()
        self.base_url = base_url
        if like is not None:
            self.verify, self.cert = like.verify, like.cert
            self.proxies, self.trust_env = dict(like.proxies), like.trust_env

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        refuse_foreign_host("salesforce", str(request.url), self.base_url)
        kwargs["allow_redirects"] = False
        return super().send(request, **kwargs)
