"""Cooldown: the same account, signal and channel alert at most once per period.

Keys live in Redis with a TTL (``{prefix}:notify:cooldown:...``) so every worker shares
them and they expire on their own; they are not part of the rebuildable read model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def topics(change: Mapping[str, Any]) -> list[str]:
    """What a change alerts about: each newly started signal's key, or else its reasons
    with the band and stages they led to (so a repeat of the same move is one topic)."""
    started = [str(s.get("key") or s.get("type")) for s in change.get("signals_started") or []]
    if started:
        return sorted(set(started))
    current = change.get("current") or {}
    reasons = ",".join(sorted(change.get("reasons") or []))
    return [f"{reasons}|{current.get('band')}|{current.get('forecast')}|"
            f"{current.get('lifecycle')}"]


class Cooldown:
    def __init__(self, redis: Any, prefix: str, seconds: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.seconds = max(1, int(seconds))

    def _key(self, change: Mapping[str, Any], destination: str, topic: str) -> str:
        return (f"{self.prefix}:notify:cooldown:{change['workspace']}:{change['account_id']}:"
                f"{destination}:{topic}")

    async def claim(self, change: Mapping[str, Any], destination: str) -> bool:
        """True when at least one of the change's topics was not cooling down for this
        destination (all of them are then claimed for the period)."""
        pipe = self.redis.pipeline(transaction=False)
        for topic in topics(change):
            pipe.set(self._key(change, destination, topic), b"1", nx=True, ex=self.seconds)
        return any(await pipe.execute())
