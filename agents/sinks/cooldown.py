"""Cooldown: the same account, signal and channel alert at most once per period.

Keys live in Redis with a TTL (``{prefix}:notify:cooldown:...``) so every worker shares
them and they expire on their own; they are not part of the rebuildable read model.
"""

from __future__ import annotations

from typing import Any

from streams.health_change import HealthChangeRecord


def topics(change: HealthChangeRecord) -> list[str]:
    """What a change alerts about: each newly started signal's key, or else its reasons
    with the band and stages they led to (so a repeat of the same move is one topic)."""
    started = [s.key or s.type for s in change.signals_started]
    if started:
        return sorted(set(started))
    current = change.current
    reasons = ",".join(sorted(change.reasons))
    return [f"{reasons}|{current.band}|{current.forecast}|{current.lifecycle}"]


class Cooldown:
    def __init__(self, redis: Any, prefix: str, seconds: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.seconds = max(1, int(seconds))

    def _key(self, change: HealthChangeRecord, destination: str, topic: str) -> str:
        return (f"{self.prefix}:notify:cooldown:{change.workspace}:{change.account_id}:"
                f"{destination}:{topic}")

    async def claim(self, change: HealthChangeRecord, destination: str) -> bool:
        """True when at least one of the change's topics was not cooling down for this
        destination (all of them are then claimed for the period)."""
        pipe = self.redis.pipeline(transaction=False)
        for topic in topics(change):
            pipe.set(self._key(change, destination, topic), b"1", nx=True, ex=self.seconds)
        return any(await pipe.execute())
