"""Where health changes go: Slack, signed webhooks, HubSpot and Salesforce.

Each sink module turns a health change (the ``telltale.health-change/1`` dict) into one
request and raises :class:`DeliveryError` when the destination did not take it; the
dispatcher (``agents/sinks/dispatch.py``) owns queues, retries, backoff and the
dead-letter topic, so the sinks stay small and the stream never waits on them.
"""

from __future__ import annotations


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
