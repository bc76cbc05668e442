"""The notify agent: health changes in; the read model, Slack, webhooks and CRMs out.

For each change on the health-changes topic, in order:

1. fold it into the Redis read model (idempotent: older or repeated changes are no-ops);
2. skip it if its id was claimed already (``{prefix}:notify:seen:{id}``, kept 30 days):
   it is a redelivery and notifies nobody again;
3. route it through the playbook rules (``agents/sinks/routing.py``) of its workspace's
   notifications (its own file's in ``TELLTALE_WORKSPACES_DIR``, else the shared file's:
   ``Notifier.config_for``, which also picks the CRM credentials) and skip Slack
   channels whose cooldown for that account and signal is running (a change already
   superseded in the read model goes to webhooks only);
4. in one Redis step, claim the id and keep a durable copy of each delivery in the
   outbox (``agents/sinks/outbox.py``), then *submit* them to the dispatcher's bounded
   per-destination queues, which send, retry with backoff and dead-letter on their own
   (``agents/sinks/dispatch.py``). The agent never waits on a destination; deliveries
   left by a stopped or dead worker are picked up from the outbox by another one.

Before any of that, every message is checked as if anyone could have written it, by the
topic's one codec (``streams/health_change.py``): at most 256 KiB, JSON, encodable again
(orjson's nesting limit), valid against the health-change JSON Schema
(``streams/schemas/health-change.v1.json``, compiled once) and decodable into the typed
record that every step after it reads (``HealthChangeRecord``).
A message that fails is written to the deliveries dead-letter topic with a stable code
(``too_large``, ``not_json``, ``too_deep``, ``bad_health_change``), the schema path of the
problem and a bounded prefix of the payload, and counted in
``telltale_events_dead_lettered_total{reason}``; nothing of it is stored or forwarded, and
the stream goes on. A timer sends the daily digest at the configured hour of each
workspace, and each owner's own list at their hour in their time zone
(``agents/sinks/digest.py``), once per day across all workers.

``rebuild(settings)`` (``telltale rebuild-read-model``) clears the read model and folds
in the whole health-changes topic, then the whole actions topic, from the beginning.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
from redis.exceptions import RedisError

from agents import metrics
from agents.sinks import DeliveryError, digest, slack, webhooks
from agents.sinks.cooldown import Cooldown
from agents.sinks.crm import HUBSPOT_BATCH_LIMIT, HubSpotSync, SalesforceSync
from agents.sinks.dispatch import Dispatcher, Job, OwnerRoutes
from agents.sinks.outbox import HEARTBEAT_EVERY_SECONDS, Outbox
from agents.sinks.routing import NotificationConfig
from agents.sinks.salesforce_oauth import salesforce_tokens
from agents.workspaces import Workspaces
from scoring import attention as core
from scoring.attention import Playbook, Render
from scoring.config import LocaleSettings, configured_playbooks, load_config
from state.readmodel import ReadModel, while_redis_is_down
from streams import health_change
from streams.actions import epoch_day_of_date
from streams.health_change import (
    HealthChangeCodec,
    HealthChangeError,
    HealthChangeRecord,
)
from streams.settings import Settings

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

SEEN_TTL_SECONDS = 30 * 86_400
"""How long a change id is remembered for deduplication (seconds)."""

DIGEST_CHECK_SECONDS = 60.0
DIGEST_CLAIM_SECONDS = 2 * 86_400

DEAD_LETTER_PAYLOAD_BYTES = 4096
"""Bytes of a rejected message kept in its dead letter."""


def change_job(destination: str, change: HealthChangeRecord) -> Job:
    """The delivery of ``change`` to ``destination``: the record for the sinks, its wire
    dict for the outbox's durable copy."""
    return Job(destination, "change", change.wire, change.id, change=change)


class Notifier:
    """Everything the agent does for one message, usable without Faust (tests, tools)."""

    def __init__(self, settings: Settings, config: NotificationConfig, readmodel: ReadModel,
                 dead_letter: Callable[[dict[str, Any]], Awaitable[None]],
                 *, salesforce_session: Any = None, owners: OwnerRoutes | None = None,
                 playbooks: Sequence[Playbook] | None = None,
                 render: Render = core.render,
                 schema: Mapping[str, Any] | None = None,
                 workspaces: Workspaces | None = None) -> None:
        self.settings = settings
        # Each workspace's own notifications, owners, digest channel and time zone, when
        # it has a file (agents/workspaces.py); ``config`` and ``owners`` otherwise.
        self.workspaces = workspaces
        self._crms: dict[str, tuple[NotificationConfig, HubSpotSync | None,
                                    SalesforceSync | None]] = {}
        self._salesforce_session = salesforce_session
        self.codec = (health_change.HEALTH_CHANGES if schema is None
                      else HealthChangeCodec(schema))
        self.config = config
        self.owners = owners or OwnerRoutes()
        self.playbooks = (configured_playbooks(settings.scoring_config) if playbooks is None
                          else playbooks)
        self.render = render
        self.locale = (workspaces.shared.scoring.locale if workspaces is not None
                       else load_config(settings.scoring_config).locale)
        self.readmodel = readmodel
        self.redis = readmodel.redis
        self.prefix = settings.topic_prefix
        self.cooldown = Cooldown(self.redis, self.prefix, config.cooldown_seconds)
        self._dead_letter = dead_letter
        self._session: aiohttp.ClientSession | None = None
        self.hubspot, self.salesforce = self._crm_clients(config)
        self.outbox = Outbox(self.redis, self.prefix)
        self.dispatcher = Dispatcher(
            self._send, dead_letter, max_attempts=config.max_attempts,
            backoff_seconds=config.backoff_seconds,
            max_backoff_seconds=config.max_backoff_seconds, queue_size=config.queue_size,
            on_done=self.outbox.done, batch_limits={"hubspot": HUBSPOT_BATCH_LIMIT})

    # ------------------------------------------------------------------ one change

    async def handle(self, raw: bytes | Mapping[str, Any]) -> str:
        """Process one message; returns "notified", "duplicate", "stale" or "invalid"."""
        try:
            change = self.codec.decode(raw)
        except HealthChangeError as exc:
            await self._reject(raw, f"invalid health change: {exc}", exc.code, exc.path)
            return "invalid"
        folded = await self.readmodel.fold(change)
        metrics.DELIVERIES.labels(destination="readmodel",
                                  outcome="sent" if folded == "applied" else "skipped").inc()
        seen = f"{self.prefix}:notify:seen:{change.id}"
        if await self.redis.exists(seen):
            return "duplicate"
        jobs: list[Job] = []
        config = self.config_for(change.workspace)
        cooldown = (self.cooldown if config.cooldown_seconds == self.config.cooldown_seconds
                    else Cooldown(self.redis, self.prefix, config.cooldown_seconds))
        for destination in config.route(change):
            if folded == "older" and not destination.startswith("webhook:"):
                # Superseded already: alerting on it or writing it to a CRM would put
                # stale health in front of people. Webhooks are a feed and get it all.
                metrics.DELIVERIES.labels(destination=destination.split(":")[0],
                                          outcome="skipped").inc()
                continue
            if destination.startswith("slack:") and not await cooldown.claim(
                    change, destination):
                metrics.DELIVERIES.labels(destination="slack", outcome="skipped").inc()
                continue
            jobs.append(change_job(destination, change))
        if not await self.outbox.claim(seen, SEEN_TTL_SECONDS, jobs):
            return "duplicate"
        for job in jobs:
            self.dispatcher.submit(job)
        return "stale" if folded == "older" else "notified"

    async def recover(self) -> int:
        """Queue again the deliveries of notifiers that died before finishing them (see
        ``agents/sinks/outbox.py``); also renews this notifier's heartbeat."""
        jobs = await self.outbox.adopt_orphans()
        for job in jobs:
            self.dispatcher.submit(job)
        if jobs:
            log.info("re-queued %d deliveries left by a stopped notifier", len(jobs))
        return len(jobs)

    async def process(self, raw: bytes | Mapping[str, Any], *,
                      redis_attempts: int | None = None) -> str:
        """``handle`` as the agent runs it: while Redis is unreachable the message is
        retried with backoff (the stream waits, since dedup and the read model need
        Redis; nothing is committed past it), up to ``redis_attempts`` (None: until it
        works). Any other unexpected error dead-letters the message and the stream goes
        on."""
        try:
            return await while_redis_is_down(lambda: self.handle(raw), redis_attempts, "change")
        except RedisError:
            raise
        except Exception as exc:
            log.exception("notify failed on a message")
            await self._reject(raw, f"unexpected error: {type(exc).__name__}: "
                                    f"{str(exc)[:300]}", "internal_error")
            return "invalid"

    async def _reject(self, raw: bytes | Mapping[str, Any], reason: str, code: str,
                      path: str = "") -> None:
        metrics.DELIVERIES.labels(destination="readmodel", outcome="dead_lettered").inc()
        metrics.EVENTS_DEAD_LETTERED.labels(reason=code).inc()
        log.warning("health change dead-lettered: %s", reason)
        await self._dead_letter({
            "v": 1, "destination": "readmodel", "kind": "change", "ref": None,
            "reason": reason, "code": code, "path": path, "attempts": 0,
            "failed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "raw": _payload_prefix(raw),
        })

    # ------------------------------------------------------------------ sending

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # ------------------------------------------------------------------ per workspace

    def config_for(self, workspace: str) -> NotificationConfig:
        """The notifications ``workspace``'s changes and digests follow: those of its own
        file when it has a ``[notifications]`` table, else the shared ones."""
        own = self.workspaces.get(workspace) if self.workspaces is not None else None
        return own.notifications if own is not None and own.own_notifications else (
            self.config)

    def owners_for(self, workspace: str) -> OwnerRoutes:
        own = self.workspaces.get(workspace) if self.workspaces is not None else None
        return own.owners if own is not None and own.own_notifications else self.owners

    def locale_for(self, workspace: str) -> LocaleSettings:
        """The language, currency and time zone ``workspace``'s digests are written in:
        those of its own scoring config (with its file's time zone), else the shared
        one's."""
        own = self.workspaces.get(workspace) if self.workspaces is not None else None
        return own.scoring.locale if own is not None else self.locale

    def playbooks_for(self, workspace: str) -> Sequence[Playbook]:
        own = self.workspaces.get(workspace) if self.workspaces is not None else None
        return own.scoring.playbooks if own is not None and own.own_scoring else (
            self.playbooks)

    def _crm_clients(self, config: NotificationConfig
                     ) -> tuple[HubSpotSync | None, SalesforceSync | None]:
        session = self._salesforce_session
        hubspot = (HubSpotSync(config.hubspot.access_token, config.hubspot.host)
                   if config.hubspot else None)
        salesforce = (SalesforceSync(config.salesforce.instance_url,
                                     config.salesforce.session_id,
                                     config.salesforce.version, session,
                                     salesforce_tokens(config.salesforce.oauth, session))
                      if config.salesforce else None)
        return hubspot, salesforce

    def crm_for(self, workspace: str) -> tuple[HubSpotSync | None, SalesforceSync | None]:
        """The HubSpot and Salesforce clients with ``workspace``'s credentials, made once
        per configuration (a changed file gets new clients; in-flight writes keep theirs).
        """
        config = self.config_for(workspace)
        if config is self.config:
            return self.hubspot, self.salesforce
        held = self._crms.get(workspace)
        if held is None or held[0] is not config:
            held = (config, *self._crm_clients(config))
            self._crms[workspace] = held
        return held[1], held[2]

    async def _send(self, job: Job) -> None:
        kind, _, name = job.destination.partition(":")
        workspace = str(job.body.get("workspace") or "")
        config = self.config_for(workspace)
        if kind == "slack":
            url = config.slack_channels[name]
            payload = (_slack_body(job.body) if job.kind == "digest"
                       else slack.change_message(_change_of(job), self.settings.public_url))
            await slack.post(self.session, url, payload)
        elif kind == "slackdm" and (owners := self.owners_for(workspace)).bot_token:
            await digest.post_direct(self.session, owners.api_url, owners.bot_token,
                                     name, _slack_body(job.body))
        elif kind == "webhook":
            target = config.webhooks[name]
            await webhooks.post(self.session, target.url, target.secret,
                                health_change.HEALTH_CHANGES.encode(_change_of(job)),
                                job.ref, time.time(),
                                standard_key=target.standard_key)
        elif kind == "hubspot" and (hubspot := self.crm_for(workspace)[0]) is not None:
            if not await hubspot.send(_change_of(job)):
                metrics.DELIVERIES.labels(destination="hubspot", outcome="skipped").inc()
        elif kind == "salesforce" and (salesforce := self.crm_for(workspace)[1]) is not None:
            if not await salesforce.send(_change_of(job)):
                metrics.DELIVERIES.labels(destination="salesforce", outcome="skipped").inc()
        else:
            raise ValueError(f"no such destination {job.destination!r}")

    # ------------------------------------------------------------------ digest

    async def send_digests(self, now: datetime | None = None) -> list[str]:
        """Queue the digests due at ``now``: each workspace's team digest to its digest
        channel at its digest hour in its time zone (UTC unless its workspace file says),
        and each owner's own list at their hour in their time zone. Each is claimed in
        Redis for its day, so one worker sends it once. Returns what was queued:
        workspaces, and ``workspace/owner`` for owners."""
        now = now or datetime.now(UTC)
        sent: list[str] = []
        for workspace in await self.readmodel.workspaces():
            config = self.config_for(workspace)
            own = self.workspaces.get(workspace) if self.workspaces is not None else None
            channel = own.digest_channel if own is not None and own.digest_channel else (
                config.digest_channel)
            here = now.astimezone(ZoneInfo(own.time_zone)) if own is not None else now
            playbooks = self.playbooks_for(workspace)
            if (channel and channel in config.slack_channels
                    and here.hour == config.digest_hour_for(workspace)):
                day = here.date()
                key = f"{self.prefix}:notify:digest:{workspace}:{day.isoformat()}"
                found = await self.readmodel.worklist(
                    workspace, today=epoch_day_of_date(day),
                    per_owner=self.settings.worklist_per_owner, playbooks=playbooks)
                body = digest.team_digest(workspace, found.team, self.settings.public_url,
                                          self.render,
                                          language=self.locale_for(workspace).translator())
                if await self._queue(f"slack:{channel}", key, workspace, body):
                    sent.append(workspace)
            for route in self.owners_for(workspace).owners.values():
                local = digest.local_now(route, now)
                hour = config.digest_hour_for(workspace) if route.hour is None else (
                    route.hour)
                if local.hour != hour:
                    continue
                owner_key = hashlib.sha256(route.owner.encode()).hexdigest()[:16]
                key = (f"{self.prefix}:notify:digest:{workspace}:owner:{owner_key}:"
                       f"{local.date().isoformat()}")
                found = await self.readmodel.worklist(
                    workspace, route.owner, today=epoch_day_of_date(local.date()),
                    per_owner=self.settings.worklist_per_owner, playbooks=playbooks)
                items = found.owners.get(route.owner, [])
                if not items:  # nothing needs them: no message beats an empty one
                    continue
                body = digest.owner_digest(route.owner, items, self.settings.public_url,
                                           self.render,
                                           language=self.locale_for(workspace).translator())
                if await self._queue(route.destination, key, workspace, body):
                    sent.append(f"{workspace}/{route.owner}")
        return sent

    async def _queue(self, destination: str, key: str, workspace: str,
                     body: Mapping[str, Any]) -> bool:
        """Claim digest ``key`` and submit it; False when it was claimed already."""
        if await self.redis.exists(key):
            return False
        job = Job(destination, "digest", {**body, "workspace": workspace}, key)
        if not await self.outbox.claim(key, DIGEST_CLAIM_SECONDS, [job]):
            return False
        self.dispatcher.submit(job)
        return True

    async def close(self) -> None:
        """Give queued deliveries a few seconds; what is left stays in the outbox and is
        handed to the other notifiers at once."""
        await self.dispatcher.close(keep_leftovers=True)
        try:
            await self.outbox.release()
        except RedisError:  # the heartbeat then simply expires
            log.warning("could not release the delivery outbox at shutdown")
        if self._session is not None:
            await self._session.close()
        for hubspot in [self.hubspot, *(held[1] for held in self._crms.values())]:
            if hubspot is not None:
                hubspot.close()


def _payload_prefix(raw: bytes | Mapping[str, Any]) -> str:
    """The first :data:`DEAD_LETTER_PAYLOAD_BYTES` of a rejected message, as text."""
    if not isinstance(raw, bytes | bytearray):
        try:
            raw = orjson.dumps(raw, default=str)
        except (TypeError, orjson.JSONEncodeError):  # too deep for orjson: say what it was
            raw = f"<unencodable {type(raw).__name__}>".encode()
    return bytes(raw[:DEAD_LETTER_PAYLOAD_BYTES]).decode("utf-8", "ignore")


def _change_of(job: Job) -> HealthChangeRecord:
    """The health change a change delivery carries; a permanent failure for a durable
    copy read back from the outbox that no longer decodes (Redis is not trusted more
    than Kafka), so it is dead-lettered rather than retried."""
    if job.change is None:
        raise DeliveryError(f"{job.kind} delivery {job.ref[:80]!r} holds no valid health "
                            "change", retryable=False)
    return job.change


def _slack_body(job_body: Mapping[str, Any]) -> dict[str, Any]:
    """A queued digest carries its workspace for dead letters; Slack gets the rest."""
    return {k: v for k, v in job_body.items() if k != "workspace"}


def register(app: faust.App, settings: Settings, *, config: NotificationConfig | None = None,
             salesforce_session: Any = None) -> None:
    """Declare the notify agent, its dead-letter topic and the digest timer on ``app``."""
    workspaces = Workspaces.of_app(app, settings)
    config = config or workspaces.shared.notifications
    owners = (workspaces.shared.owners if config is workspaces.shared.notifications
              else OwnerRoutes.load(settings.notifications_config, config.slack_channels))
    changes = app.topic(settings.topics.health_changes, key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.topics.deliveries_dlq, key_type=bytes, value_type=bytes,
                    key_serializer="raw", value_serializer="raw")
    holder: dict[str, Notifier] = {}

    async def dead_letter(record: dict[str, Any]) -> None:
        key = str(record.get("account_id") or record.get("ref") or "").encode()
        await dlq.send(key=key, value=orjson.dumps(record))

    def notifier() -> Notifier:
        if "n" not in holder:
            holder["n"] = Notifier(settings, config, ReadModel.of_app(app, settings),
                                   dead_letter, salesforce_session=salesforce_session,
                                   owners=owners, workspaces=workspaces)
        return holder["n"]

    @app.agent(changes, name="telltale.notify")
    async def notify(stream: Any) -> Any:
        async for raw in stream:
            await notifier().process(raw)
            metrics.MESSAGES_PROCESSED.labels(agent="notify").inc()

    def every(seconds: float, name: str, what: str,
              work: Callable[[Notifier], Awaitable[Any]]) -> None:
        @app.timer(interval=seconds, name=name)
        async def beat() -> None:
            try:
                await work(notifier())
            except Exception:  # a Redis hiccup: try again at the next beat
                log.warning("%s failed", what, exc_info=True)

    every(HEARTBEAT_EVERY_SECONDS, "telltale.notify_outbox", "checking the delivery outbox",
          Notifier.recover)
    every(DIGEST_CHECK_SECONDS, "telltale.daily_digest", "daily digest check",
          Notifier.send_digests)

    @app.on_before_shutdown.connect
    async def close_notifier(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if "n" in holder:
            await holder.pop("n").close()


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a rebuild folded in: health changes and actions applied."""

    changes: int
    actions: int


async def rebuild(settings: Settings, *, timeout: float = 600.0) -> Rebuilt:
    """Clear the read model, then fold in the health-changes topic and the actions topic
    (acknowledgements, snoozes, assignments, notes, done steps), each from its first
    offset up to the end offsets seen at start."""
    from agents.actions import ActionApplier
    from streams.kafka_security import check_access

    await check_access(settings.kafka_bootstrap, settings.kafka_security)
    readmodel = ReadModel.from_settings(settings)
    applier = ActionApplier(readmodel)
    async def fold_change(raw: bytes) -> bool:
        try:
            return await readmodel.apply(health_change.HEALTH_CHANGES.decode(raw or b"null"))
        except HealthChangeError as exc:
            log.warning("rebuild skipped an invalid health change: %s", exc)
            return False

    async def fold_action(raw: bytes) -> bool:
        return await applier.handle(raw) == "applied"

    try:
        async with asyncio.timeout(timeout):
            await readmodel.clear()
            changes = await _replay(settings, settings.topics.health_changes, fold_change)
            actions = await _replay(settings, settings.topics.actions, fold_action,
                                    missing_ok=True)
    finally:
        await readmodel.close()
    return Rebuilt(changes, actions)


async def _replay(settings: Settings, topic: str, fold: Callable[[bytes], Awaitable[bool]],
                  *, missing_ok: bool = False) -> int:
    """Pass every record of ``topic`` up to its end offsets at start to ``fold``; returns
    how many it applied. A missing topic is empty when ``missing_ok`` (an installation
    from before the topic existed), an error otherwise."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.kafka_admin import topic_partitions

    try:
        count = await topic_partitions(settings.kafka_bootstrap, topic,
                                       timeout=5.0 if missing_ok else 30.0,
                                       security=settings.kafka_security)
    except TimeoutError:
        if missing_ok:
            return 0
        raise
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                **settings.kafka_security.aiokafka_options())
    applied = 0
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    if await fold(record.value or b""):
                        applied += 1
                    else:
                        log.debug("rebuild skipped a record at %s:%d", tp, record.offset)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return applied


def add_parser(subparsers: Any) -> Any:
    """``telltale rebuild-read-model``."""
    parser = subparsers.add_parser(
        "rebuild-read-model", help="rebuild the Redis read model from the health-changes topic",
        description="Delete the read model (latest assessments, rankings, history) and fold "
                    "in every health change from the beginning of the topic. Delivery "
                    "state (dedup, cooldowns, digests) is kept, so nothing is re-sent.")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up after this many seconds (default 600)")
    return parser


def run(args: Any) -> int:
    settings = Settings.from_env()
    done = asyncio.run(rebuild(settings, timeout=args.timeout))
    print(f"read model rebuilt from {settings.topics.health_changes}: "
          f"{done.changes} changes applied; from {settings.topics.actions}: "
          f"{done.actions} actions applied")
    return 0
