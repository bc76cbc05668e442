"""The durable side of delivery: every queued delivery also sits in Redis until it is
sent or dead-lettered, so a worker killed mid-retry loses nothing.

The dispatcher's queues live in memory (so the stream never waits on a destination) and
the change's id is claimed before they are filled, so Kafka will not bring the change back
to this agent. The outbox closes that gap: one Redis hash (``{prefix}:notify:outbox``)
holds ``{owner}|{destination}|{ref}`` → the job, where ``owner`` is one notifier's random
id. Each notifier keeps a heartbeat key (``{prefix}:notify:owner:{owner}``, 60 s TTL,
renewed every 20 s, deleted on a clean stop). Any notifier periodically adopts the jobs
of owners whose heartbeat is gone and queues them again, so a delivery interrupted by a
crash is retried at least once more. Receivers dedup by change id (webhooks carry
``X-Telltale-Change-Id``).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson

from agents.sinks.dispatch import Job
from streams.health_change import HEALTH_CHANGES, HealthChangeError, HealthChangeRecord

log = logging.getLogger(__name__)

HEARTBEAT_TTL_SECONDS = 60
HEARTBEAT_EVERY_SECONDS = 20.0

# Move one entry to a new field only if it is still there, so two notifiers adopting the
# same dead owner's jobs never both get one.
_ADOPT = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], value)
return 1
"""


# Claim a change id and keep its deliveries in one step: a crash can never leave the id
# claimed (so Kafka's redelivery is ignored) without the deliveries kept.
_CLAIM = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""


class Outbox:
    def __init__(self, redis: Any, prefix: str, owner: str | None = None) -> None:
        self.redis = redis
        self.key = f"{prefix}:notify:outbox"
        self.owner_prefix = f"{prefix}:notify:owner:"
        self.owner = owner or uuid.uuid4().hex[:16]
        self._beat_at = 0.0
        self._adopt = redis.register_script(_ADOPT)
        self._claim = redis.register_script(_CLAIM)

    def _field(self, job: Job, owner: str | None = None) -> str:
        return f"{owner or self.owner}|{job.destination}|{job.ref}"

    async def heartbeat(self, force: bool = False) -> None:
        """Say this owner is alive (at most every 20 s unless forced)."""
        now = time.monotonic()
        if force or now - self._beat_at >= HEARTBEAT_EVERY_SECONDS:
            await self.redis.set(self.owner_prefix + self.owner, b"1",
                                 ex=HEARTBEAT_TTL_SECONDS)
            self._beat_at = now

    def _entries(self, jobs: list[Job]) -> list[bytes | str]:
        flat: list[bytes | str] = []
        for job in jobs:
            job.outbox_field = self._field(job)
            flat += [job.outbox_field, orjson.dumps(
                {"destination": job.destination, "kind": job.kind, "ref": job.ref,
                 "body": job.body})]
        return flat

    async def claim(self, claim_key: str, ttl_seconds: int, jobs: list[Job]) -> bool:
        """Atomically: set ``claim_key`` if absent (for ``ttl_seconds``) and keep durable
        copies of ``jobs``. False (and nothing kept) when the key existed already."""
        claimed = await self._claim(
            keys=[claim_key, self.key, self.owner_prefix + self.owner],
            args=[ttl_seconds, HEARTBEAT_TTL_SECONDS, *self._entries(jobs)])
        if claimed:
            self._beat_at = time.monotonic()
        return bool(claimed)

    async def done(self, job: Job) -> None:
        if job.outbox_field:
            await self.redis.hdel(self.key, job.outbox_field)

    async def adopt_orphans(self, limit: int = 1000) -> list[Job]:
        """Jobs of owners without a heartbeat, now owned by this notifier."""
        await self.heartbeat()
        alive: dict[str, bool] = {self.owner: True}
        adopted: list[Job] = []
        async for raw_field, raw_value in self.redis.hscan_iter(self.key, count=500):
            field = raw_field.decode()
            owner = field.split("|", 1)[0]
            if owner not in alive:
                alive[owner] = bool(await self.redis.exists(self.owner_prefix + owner))
            if alive[owner]:
                continue
            data = orjson.loads(raw_value)
            job = Job(data["destination"], data["kind"], data["body"], data["ref"],
                      change=_change_of(data["kind"], data["body"]))
            new_field = self._field(job)
            if await self._adopt(keys=[self.key], args=[field, new_field]):
                job.outbox_field = new_field
                adopted.append(job)
                if len(adopted) >= limit:
                    break
        return adopted

    async def release(self) -> None:
        """A clean stop: whatever is still ours is adopted by others right away."""
        await self.redis.delete(self.owner_prefix + self.owner)


def _change_of(kind: str, body: Any) -> HealthChangeRecord | None:
    """The health change of an adopted ``change`` job, decoded again: the copy came back
    from Redis, which is not trusted more than Kafka. None for a digest, or for a copy
    that no longer decodes (its delivery is then dead-lettered, see ``agents/notify.py``)."""
    if kind != "change":
        return None
    try:
        return HEALTH_CHANGES.decode(body)
    except HealthChangeError as exc:
        log.warning("an adopted delivery holds no valid health change: %s", exc)
        return None
