"""The Redis read model: what the API, the CSM page and the integrations read.

It is *derived*: every key is computed from health-change events and action events
(``streams/actions.py``) alone, so it can be thrown away and rebuilt by replaying both
topics (``rebuild``). Applying the same change twice, or an older change after a newer
one, leaves it unchanged, and an action is applied once by its id, which is what makes
at-least-once delivery from Kafka and the rebuild give the same content.

Health changes come in as typed records (``streams/health_change.py``); account
documents go out as typed :class:`AccountDocument`, decoded once where they leave Redis,
with the stored JSON kept for the API to pass on.

The worklist (:meth:`ReadModel.worklist`) is computed when it is read, for the day it is
read, from each listed account's attention (kept with its dates) and its actions, by the
pure rules of ``scoring/worklist.py``.

Layout, all under ``{prefix}:rm:`` (``prefix`` is the installation's topic prefix) and
then the workspace ``{ws}``:

- ``acct:{id}``            latest account document (JSON): score, band, stages, components,
                           reasons, explanation, drivers, active signals, users summary
- ``user:{id}``            latest user record (JSON), with its account id
- ``hist:{id}``            sorted set of ``{"t", "score", "band"}`` by event time, bounded
                           to :data:`HISTORY_LIMIT` points
- ``accounts``             every account, scored by health score
- ``sort:{key}``           sort orders for the API: change_7d, arr_at_risk, renewal (day)
- ``idx:{dim}:{value}``    filter indexes (band, forecast, lifecycle, owner, segment),
                           scored by ARR so portfolio ARR sums need no document reads;
                           ``idx:signal:{type}`` is scored by that signal's active count
- ``dims:{dim}``           the values of a dimension seen so far
- ``rank:{name}``          ranked lists: at_risk (by score), drops (by 7-day change),
                           renewals:{forecast} (by days to renewal), expansion (by ARR),
                           attention (accounts whose attention has reasons, by the core's
                           priority: the worklist reads only these)
- ``actions:{id}``         hash of the actions people took on the account (action id →
                           action JSON): the audit trail, and what acknowledgements,
                           snoozes, assignments and done steps are folded from

and ``{prefix}:rm:workspaces`` lists the workspaces.

Not derived, and so kept outside ``{prefix}:rm:`` where a rebuild cannot wipe it:
``{prefix}:business:{ws}`` holds the business metrics last published for a workspace by
``telltale metrics --publish`` (computed from a history, not from health changes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from scoring import worklist as rules
from scoring.attention import Playbook
from scoring.labels import Band, ForecastStage, Lifecycle
from state.aggregates import epoch_day
from streams.actions import ACTIONS, Action, ActionError, handling_of
from streams.health_change import HealthChangeRecord, SignalRecord

log = logging.getLogger(__name__)
_T = TypeVar("_T")


async def while_redis_is_down(work: Callable[[], Awaitable[_T]], attempts: int | None,
                              what: str) -> _T:
    """``work()``, tried again with backoff (0.5 s doubling, at most 30 s) while Redis is
    unreachable, up to ``attempts`` tries (None: until Redis answers); the stream waits
    meanwhile, since skipping ``what`` would lose it from the read model."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await work()
        except RedisError as exc:
            if attempts is not None and attempt >= attempts:
                raise
            wait = min(30.0, 0.5 * 2 ** (attempt - 1))
            log.warning("Redis unavailable (%s); retrying %s in %.1f s", exc, what, wait)
            await asyncio.sleep(wait)

HISTORY_LIMIT = 365
"""Score points kept per account (one per health change; oldest dropped first)."""

RENEWAL_WINDOW_DAYS = 180
"""Accounts renewing within this many days appear in the renewals ranking."""

MAX_ACTIONS_READ = 500
"""Most recent actions of one account read back (audit trail and worklist fold)."""

DIMENSIONS = ("band", "forecast", "lifecycle", "owner", "segment")
SORTS = ("score", "change_7d", "arr_at_risk", "days_to_renewal")
NONE_VALUE = "none"
"""Index value standing for a missing stage, owner or segment."""


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _renewal_day(renewal_date: str | None) -> int | None:
    if not renewal_date:
        return None
    try:
        return date.fromisoformat(renewal_date[:10]).toordinal()
    except ValueError:
        return None


def _dim(value: Any) -> str:
    return NONE_VALUE if value in (None, "") else str(value)


def arr_at_risk(doc: Mapping[str, Any]) -> float:
    """ARR counted as at risk: the whole ARR of an account in the at-risk band or with an
    at-risk forecast, half of it in the watch band, nothing otherwise (US dollars)."""
    arr = float(doc.get("arr") or 0.0)
    if doc.get("band") == "at_risk" or doc.get("forecast") == "at_risk":
        return arr
    if doc.get("band") == "watch":
        return arr / 2
    return 0.0


def owner_of(doc: Mapping[str, Any]) -> str | None:
    """Who an account belongs to, as worklists name owners: the owner's email when the
    CRM gave one (it is what people sign in with), else the owner's name."""
    owner = doc.get("owner_email") or doc.get("owner")
    return None if owner in (None, "") else str(owner)


def account_document(change: HealthChangeRecord) -> dict[str, Any]:
    """The account document stored for a health change (pure)."""
    current, users = change.current, change.users
    doc: dict[str, Any] = {
        "workspace": change.workspace,
        "account_id": change.account_id,
        "account_name": change.account_name,
        "score": current.score,
        "band": current.band.value,
        "forecast": None if current.forecast is None else current.forecast.value,
        "lifecycle": current.lifecycle.value,
        "components": dict(change.components),
        "previous": None if change.previous is None else change.previous.to_wire(),
        "reasons": [r.value for r in change.reasons],
        "delta": change.delta,
        "change_7d": change.change_7d,
        "explanation": change.explanation,
        "drivers": [d.to_wire() for d in change.drivers],
        "active_signals": [s.to_wire() for s in change.active_signals],
        "owner": change.owner,
        "owner_email": change.owner_email,
        "owner_slack_id": change.owner_slack_id,
        "segment": change.segment,
        "arr": change.arr,
        "renewal_date": change.renewal_date,
        "days_to_renewal": change.days_to_renewal,
        "external_ids": dict(change.external_ids),
        "users_summary": {
            "count": len(users),
            "power_users": sum(1 for u in users if u.power_user),
            "healthy": sum(1 for u in users if u.band is Band.HEALTHY),
            "watch": sum(1 for u in users if u.band is Band.WATCH),
            "at_risk": sum(1 for u in users if u.band is Band.AT_RISK),
        },
        "user_ids": [u.user_id for u in users],
        "updated_at": change.event_time,
        "change_id": change.id,
        "config_version": change.config_version,
        # What the explanation and texts are written in, so a reader in another
        # language gets them said again rather than assumed to be theirs.
        "language": str(change.wire.get("language") or "en"),
        "currency": str(change.wire.get("currency") or "USD"),
    }
    doc["arr_at_risk"] = arr_at_risk(doc)
    attention = change.attention
    doc["attention"] = None if attention is None else attention.to_dict()
    doc["needs_attention"] = attention is not None and attention.needed
    return doc


@dataclass(frozen=True, slots=True)
class AccountDocument:
    """An account's latest stored document (:func:`account_document`) as the API, the
    page and the digests read it, decoded once where it leaves Redis. ``stored`` is the
    JSON as kept, which the API passes on unchanged; ``forecast`` and ``lifecycle`` are
    None on a document without them."""

    workspace: str
    account_id: str
    account_name: str | None
    score: int
    band: Band
    forecast: ForecastStage | None
    lifecycle: Lifecycle | None
    change_7d: int
    explanation: str
    active_signals: tuple[SignalRecord, ...]
    components: Mapping[str, Mapping[str, Any]]
    segment: str | None
    arr: float | None
    renewal_date: str | None
    owner: str | None
    owner_email: str | None
    owner_slack_id: str | None
    user_ids: tuple[str, ...]
    attention_track: rules.AttentionTrack
    stored: Mapping[str, Any]

    @property
    def owner_key(self) -> str | None:
        """The owner as worklists name them (:func:`owner_of`)."""
        return owner_of(self.stored)

    @classmethod
    def from_stored(cls, doc: Mapping[str, Any]) -> AccountDocument:
        """Raises KeyError, TypeError or ValueError on a document this module did not
        write (Redis is not trusted more than Kafka)."""
        forecast, lifecycle, arr = doc.get("forecast"), doc.get("lifecycle"), doc.get("arr")
        return cls(
            workspace=str(doc["workspace"]), account_id=str(doc["account_id"]),
            account_name=doc.get("account_name"), score=int(doc["score"]),
            band=Band(doc["band"]), forecast=None if forecast is None else ForecastStage(forecast),
            lifecycle=None if lifecycle is None else Lifecycle(lifecycle),
            change_7d=int(doc.get("change_7d") or 0),
            explanation=str(doc.get("explanation") or ""),
            active_signals=tuple(SignalRecord.from_wire(s)
                                 for s in doc.get("active_signals") or ()),
            components=doc.get("components") or {},
            owner=doc.get("owner"), owner_email=doc.get("owner_email"),
            owner_slack_id=doc.get("owner_slack_id"), segment=doc.get("segment"),
            arr=None if arr is None else float(arr), renewal_date=doc.get("renewal_date"),
            user_ids=tuple(str(u) for u in doc.get("user_ids") or ()),
            attention_track=rules.AttentionTrack.from_dict(doc.get("attention_track")),
            stored=doc,
        )


@dataclass(frozen=True, slots=True)
class Listed:
    """One account on a worklist: its stored document and how it is listed today."""

    doc: AccountDocument
    entry: rules.WorklistEntry


@dataclass(frozen=True, slots=True)
class Worklist:
    """Worklists on epoch day ``today``: each owner's top accounts (``owners``; the key
    None holds unowned accounts) and the whole team's, most urgent first."""

    today: int
    owners: dict[str | None, list[Listed]]
    team: list[Listed]


@dataclass(frozen=True, slots=True)
class AccountPage:
    """One page of an account listing."""

    items: list[AccountDocument]
    total: int
    offset: int
    limit: int


_APP_ATTRIBUTE = "_telltale_readmodel"

REDIS_TIMEOUT_SECONDS = 2.0
"""Default of :func:`redis_client` (and of the ``redis_timeout_seconds`` setting)."""


def redis_client(url: str, timeout_seconds: float = REDIS_TIMEOUT_SECONDS) -> aioredis.Redis:
    """A Redis client that gives up on connecting, and on each reply, after
    ``timeout_seconds``: without them a stopped Redis (whose kernel still accepts
    connections) holds every caller for ever. A timed-out connection is dropped, so the
    client recovers by itself once Redis answers again."""
    return aioredis.from_url(url, socket_timeout=timeout_seconds,
                             socket_connect_timeout=timeout_seconds)


class ReadModel:
    """Latest assessments, rankings and history in Redis (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "telltale") -> None:
        # redis-py's command stubs return unions of every reply shape; the replies used
        # here are bytes (decode_responses off), so the client is handled untyped.
        self.redis: Any = redis
        self.prefix = prefix
        self.root = f"{prefix}:rm"

    @classmethod
    def from_url(cls, url: str, prefix: str = "telltale",
                 timeout_seconds: float = REDIS_TIMEOUT_SECONDS) -> ReadModel:
        return cls(redis_client(url, timeout_seconds), prefix)

    @classmethod
    def from_settings(cls, settings: Any) -> ReadModel:
        """Redis from ``settings.redis_url``; keys under ``settings.topic_prefix``."""
        return cls.from_url(settings.redis_url, settings.topic_prefix,
                            settings.redis_timeout_seconds)

    @classmethod
    def of_app(cls, app: Any, settings: Any) -> ReadModel:
        """The worker's one read model (one Redis pool), made on first use by whichever
        module needs it (notify, API, page, portfolio gauges) and shared by all."""
        model: ReadModel | None = getattr(app, _APP_ATTRIBUTE, None)
        if model is None:
            model = cls.from_settings(settings)
            setattr(app, _APP_ATTRIBUTE, model)
        return model

    async def close(self) -> None:
        await self.redis.aclose()

    def _k(self, workspace: str, *parts: str) -> str:
        return ":".join((self.root, workspace, *parts))

    # ------------------------------------------------------------------ writing

    async def apply(self, change: HealthChangeRecord) -> bool:
        """Fold one health change in. Returns False when it was older than (or the same
        as) what is stored, which leaves everything untouched."""
        return await self.fold(change) == "applied"

    async def fold(self, change: HealthChangeRecord) -> Literal["applied", "same", "older"]:
        """Like :meth:`apply`, saying whether the change was folded in, was the one
        stored already, or was older than the stored one (and ignored)."""
        doc = account_document(change)
        ws, acct = doc["workspace"], doc["account_id"]
        key = self._k(ws, "acct", acct)
        raw_old = await self.redis.get(key)
        old: dict[str, Any] | None = orjson.loads(raw_old) if raw_old else None
        t_new = change.time
        if old is not None:
            t_old = _epoch(old["updated_at"])
            if doc["change_id"] == old["change_id"]:
                return "same"
            if (t_new, doc["change_id"]) < (t_old, old["change_id"]):
                return "older"
        previous = rules.AttentionTrack.from_dict(old.get("attention_track") if old else None)
        doc["attention_track"] = rules.track(previous, change.attention).to_dict()
        pipe = self.redis.pipeline(transaction=True)
        if old is not None:
            self._unindex(pipe, old)
        self._index(pipe, doc)
        pipe.set(key, orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
        hist = self._k(ws, "hist", acct)
        point = {"t": doc["updated_at"], "score": doc["score"], "band": doc["band"]}
        pipe.zadd(hist, {orjson.dumps(point, option=orjson.OPT_SORT_KEYS): t_new})
        pipe.zremrangebyrank(hist, 0, -(HISTORY_LIMIT + 1))
        for user in change.users:
            record = {**user.to_wire(), "account_id": acct,
                      "account_name": doc["account_name"], "updated_at": doc["updated_at"]}
            pipe.set(self._k(ws, "user", user.user_id),
                     orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
        pipe.sadd(f"{self.root}:workspaces", ws)
        await pipe.execute()
        return "applied"

    def _index(self, pipe: Any, doc: Mapping[str, Any]) -> None:
        ws, acct = doc["workspace"], doc["account_id"]
        arr = float(doc.get("arr") or 0.0)
        pipe.zadd(self._k(ws, "accounts"), {acct: doc["score"]})
        pipe.zadd(self._k(ws, "sort", "change_7d"), {acct: doc["change_7d"]})
        pipe.zadd(self._k(ws, "sort", "arr_at_risk"), {acct: doc["arr_at_risk"]})
        renewal = _renewal_day(doc.get("renewal_date"))
        if renewal is not None:
            pipe.zadd(self._k(ws, "sort", "renewal"), {acct: renewal})
        for dim in DIMENSIONS:
            value = _dim(doc.get(dim))
            pipe.zadd(self._k(ws, "idx", dim, value), {acct: arr})
            pipe.sadd(self._k(ws, "dims", dim), value)
        for sig_type, count in _signal_counts(doc).items():
            pipe.zadd(self._k(ws, "idx", "signal", sig_type), {acct: count})
            pipe.sadd(self._k(ws, "dims", "signal"), sig_type)
        if doc["band"] == "at_risk":
            pipe.zadd(self._k(ws, "rank", "at_risk"), {acct: doc["score"]})
        if doc["change_7d"] < 0:
            pipe.zadd(self._k(ws, "rank", "drops"), {acct: doc["change_7d"]})
        dtr = doc.get("days_to_renewal")
        if dtr is not None and 0 <= int(dtr) <= RENEWAL_WINDOW_DAYS:
            stage = _dim(doc.get("forecast"))
            pipe.zadd(self._k(ws, "rank", "renewals", stage), {acct: int(dtr)})
        if any(s.get("severity") == "expansion" for s in doc["active_signals"]):
            pipe.zadd(self._k(ws, "rank", "expansion"), {acct: arr})
        if doc["needs_attention"]:
            pipe.zadd(self._k(ws, "rank", "attention"),
                      {acct: float(doc["attention"]["priority"])})

    def _unindex(self, pipe: Any, doc: Mapping[str, Any]) -> None:
        ws, acct = doc["workspace"], doc["account_id"]
        for dim in DIMENSIONS:
            pipe.zrem(self._k(ws, "idx", dim, _dim(doc.get(dim))), acct)
        for sig_type in _signal_counts(doc):
            pipe.zrem(self._k(ws, "idx", "signal", sig_type), acct)
        pipe.zrem(self._k(ws, "sort", "renewal"), acct)
        for name in ("at_risk", "drops", "expansion", "attention"):
            pipe.zrem(self._k(ws, "rank", name), acct)
        pipe.zrem(self._k(ws, "rank", "renewals", _dim(doc.get("forecast"))), acct)

    async def apply_action(self, action: Action) -> bool:
        """Record one action on its account. Returns False when an action with that id was
        applied already (a redelivery, or the consumer catching up with what the API
        applied at once), which changes nothing."""
        added = await self.redis.hsetnx(
            self._k(action.workspace, "actions", action.account_id), action.id,
            orjson.dumps(action.to_dict(), option=orjson.OPT_SORT_KEYS))
        if added:
            await self.redis.sadd(f"{self.root}:workspaces", action.workspace)
        return bool(added)

    async def clear(self) -> int:
        """Delete every read-model key (not dedup, cooldown or digest keys). Returns the
        number of keys removed."""
        removed = 0
        batch: list[bytes] = []
        async for key in self.redis.scan_iter(match=f"{self.root}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += await self.redis.unlink(*batch)
                batch = []
        if batch:
            removed += await self.redis.unlink(*batch)
        return removed

    async def publish_business(self, workspace: str, metrics: Mapping[str, Any],
                               source: str, computed_at: datetime) -> dict[str, Any]:
        """Store ``metrics`` (:func:`history.business.compute`) as the workspace's
        business metrics, replacing what was there. Returns the stored document."""
        doc = {"workspace": workspace, "computed_at": computed_at.isoformat(),
               "source": source, "metrics": metrics}
        await self.redis.set(self.business_key(workspace),
                             orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
        return doc

    async def business(self, workspace: str) -> dict[str, Any] | None:
        """The workspace's last published business metrics, or None."""
        raw = await self.redis.get(self.business_key(workspace))
        return orjson.loads(raw) if raw else None

    def business_key(self, workspace: str) -> str:
        return f"{self.prefix}:business:{workspace}"

    # ------------------------------------------------------------------ reading

    async def workspaces(self) -> list[str]:
        members = await self.redis.smembers(f"{self.root}:workspaces")
        return sorted(m.decode() for m in members)

    async def account(self, workspace: str, account_id: str) -> AccountDocument | None:
        return next(iter(await self.accounts(workspace, [account_id])), None)

    async def accounts(self, workspace: str, ids: Sequence[str]) -> list[AccountDocument]:
        """Documents of ``ids`` in that order (unknown ids, and documents that do not
        decode, left out)."""
        docs = []
        for stored in await self._documents(workspace, "acct", ids):
            try:
                docs.append(AccountDocument.from_stored(stored))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("skipped an account document that does not decode: %r", exc)
        return docs

    async def user(self, workspace: str, user_id: str) -> dict[str, Any] | None:
        return next(iter(await self._documents(workspace, "user", [user_id])), None)

    async def users(self, workspace: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        return await self._documents(workspace, "user", ids)

    async def _documents(self, workspace: str, kind: str,
                         ids: Sequence[str]) -> list[dict[str, Any]]:
        """The stored ``kind`` documents of ``ids`` in that order (unknown ids left out)."""
        if not ids:
            return []
        raws = await self.redis.mget([self._k(workspace, kind, i) for i in ids])
        return [orjson.loads(r) for r in raws if r]

    async def history(self, workspace: str, account_id: str,
                      limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
        """Score points oldest first: ``[{"t": ISO, "score": int, "band": str}]``."""
        raws = await self.redis.zrange(self._k(workspace, "hist", account_id), -limit, -1)
        return [orjson.loads(r) for r in raws]

    async def ranking(self, workspace: str, name: str, limit: int = 20) -> list[str]:
        """Account ids of a ranked list, most relevant first: ``at_risk`` (lowest score),
        ``drops`` (largest fall), ``renewals:{stage}`` (soonest), ``expansion`` (largest
        ARR), ``attention`` (most urgent)."""
        key = self._k(workspace, "rank", *name.split(":"))
        descending = name in ("expansion", "attention")
        raws = await self.redis.zrange(key, 0, limit - 1, desc=descending)
        return [r.decode() for r in raws]

    async def attention(self, workspace: str, limit: int = 50, *,
                        playbooks: Sequence[Playbook] = (),
                        today: int | None = None) -> list[AccountDocument]:
        """The documents of the whole team's worklist today, most urgent first."""
        found = await self.worklist(workspace, today=today, playbooks=playbooks)
        return [item.doc for item in found.team[:limit]]

    async def actions(self, workspace: str, account_id: str) -> list[Action]:
        """The account's actions oldest first (the last :data:`MAX_ACTIONS_READ`)."""
        return (await self._actions_of(workspace, [account_id]))[account_id]

    async def _actions_of(self, workspace: str, ids: Sequence[str]) -> dict[str, list[Action]]:
        pipe = self.redis.pipeline(transaction=False)
        for account_id in ids:
            pipe.hvals(self._k(workspace, "actions", account_id))
        out: dict[str, list[Action]] = {}
        for account_id, raws in zip(ids, await pipe.execute(), strict=True):
            found = []
            for raw in raws:
                try:  # checked again on the way out: Redis is not trusted more than Kafka
                    found.append(ACTIONS.decode(raw))
                except ActionError:
                    continue
            found.sort(key=lambda a: (a.at, a.id))
            out[account_id] = found[-MAX_ACTIONS_READ:]
        return out

    async def listing(self, workspace: str, account_id: str, *,
                      playbooks: Sequence[Playbook] = (),
                      today: int | None = None) -> rules.WorklistEntry | None:
        """How one account is listed today (None: it is not on any list today)."""
        doc = await self.account(workspace, account_id)
        if doc is None:
            return None
        day = epoch_day(time.time()) if today is None else today
        return _entry(doc, await self.actions(workspace, account_id), playbooks, day)

    async def worklist(self, workspace: str, owner: str | None = None,
                       today: int | None = None, per_owner: int = rules.DEFAULT_PER_OWNER,
                       *, playbooks: Sequence[Playbook] = ()) -> Worklist:
        """Who should look at which account on epoch day ``today`` (default: the day it
        is read, so days to renewal and days inactive are right on that day).

        Reads only the accounts whose attention has reasons (``rank:attention``) and their
        actions. With ``owner``, ``owners`` holds that owner's list only and ``team`` is
        every listed account of that owner."""
        day = epoch_day(time.time()) if today is None else today
        ids = [m.decode() for m in await self.redis.zrange(
            self._k(workspace, "rank", "attention"), 0, -1, desc=True)]
        docs = {d.account_id: d for d in await self.accounts(workspace, ids)}
        acted = await self._actions_of(workspace, list(docs))
        listed: list[Listed] = []
        for account_id, doc in docs.items():
            item = _entry(doc, acted[account_id], playbooks, day)
            if item is not None and (owner is None or item.owner == owner):
                listed.append(Listed(doc, item))
        by_account = {item.entry.account_id: item for item in listed}
        team = [by_account[e.account_id] for e in rules.ranked(i.entry for i in listed)]
        owners = {who: [by_account[e.account_id] for e in entries] for who, entries in
                  rules.per_owner((i.entry for i in listed), per_owner).items()}
        return Worklist(today=day, owners=owners, team=team)

    async def dimension_values(self, workspace: str, dim: str) -> list[str]:
        members = await self.redis.smembers(self._k(workspace, "dims", dim))
        return sorted(v.decode() for v in members)

    async def list_accounts(
        self,
        workspace: str,
        *,
        filters: Mapping[str, str | None] | None = None,
        sort: str = "score",
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> AccountPage:
        """Accounts matching every filter (band, forecast, lifecycle, owner, segment,
        signal; ``none`` matches a missing value), sorted, one page."""
        if sort not in SORTS:
            raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
        active = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
        candidates: set[str] | None = None
        for dim, value in active.items():
            if dim not in (*DIMENSIONS, "signal"):
                raise ValueError(f"unknown filter {dim!r}")
            members = {m.decode() for m in await self.redis.zrange(
                self._k(workspace, "idx", dim, str(value)), 0, -1)}
            candidates = members if candidates is None else candidates & members
        sort_key = {
            "score": self._k(workspace, "accounts"),
            "change_7d": self._k(workspace, "sort", "change_7d"),
            "arr_at_risk": self._k(workspace, "sort", "arr_at_risk"),
            "days_to_renewal": self._k(workspace, "sort", "renewal"),
        }[sort]
        ordered = [m.decode() for m in await self.redis.zrange(sort_key, 0, -1,
                                                                desc=descending)]
        if sort == "days_to_renewal":
            # Accounts without a renewal date have no entry: they come last either way.
            seen = set(ordered)
            ordered += sorted(
                m.decode() for m in await self.redis.zrange(self._k(workspace, "accounts"), 0, -1)
                if m.decode() not in seen
            )
        if candidates is not None:
            ordered = [a for a in ordered if a in candidates]
        page = ordered[offset:offset + limit]
        return AccountPage(items=await self.accounts(workspace, page), total=len(ordered),
                           offset=offset, limit=limit)

    async def portfolio(self, workspace: str) -> dict[str, Any]:
        """Portfolio figures for gauges: ``accounts_by_band``, ``accounts_by_forecast``,
        ``accounts_by_lifecycle`` (counts), ``arr_by_band`` (US dollars),
        ``active_signals`` (count of active signals per type), ``accounts`` (total)."""
        total = await self.redis.zcard(self._k(workspace, "accounts"))
        result: dict[str, Any] = {"accounts": total}
        for dim, field in (("band", "accounts_by_band"), ("forecast", "accounts_by_forecast"),
                           ("lifecycle", "accounts_by_lifecycle")):
            counts: dict[str, int] = {}
            for value in await self.dimension_values(workspace, dim):
                counts[value] = await self.redis.zcard(self._k(workspace, "idx", dim, value))
            result[field] = counts
        arr: dict[str, float] = {}
        for band in await self.dimension_values(workspace, "band"):
            members = await self.redis.zrange(self._k(workspace, "idx", "band", band), 0, -1,
                                              withscores=True)
            arr[band] = float(sum(score for _, score in members))
        result["arr_by_band"] = arr
        signals: dict[str, int] = {}
        for sig_type in await self.dimension_values(workspace, "signal"):
            members = await self.redis.zrange(self._k(workspace, "idx", "signal", sig_type),
                                              0, -1, withscores=True)
            signals[sig_type] = int(sum(score for _, score in members))
        result["active_signals"] = signals
        return result

    async def dump(self) -> dict[str, Any]:
        """Every read-model key with its content, for comparing a rebuild with a live run."""
        out: dict[str, Any] = {}
        async for raw_key in self.redis.scan_iter(match=f"{self.root}:*", count=1000):
            key = raw_key.decode()
            kind = (await self.redis.type(raw_key)).decode()
            if kind == "string":
                out[key] = await self.redis.get(raw_key)
            elif kind == "set":
                out[key] = sorted(await self.redis.smembers(raw_key))
            elif kind == "hash":
                out[key] = sorted((await self.redis.hgetall(raw_key)).items())
            elif kind == "zset":
                members = await self.redis.zrange(raw_key, 0, -1, withscores=True)
                # Empty sorted sets vanish in Redis, so only non-empty ones are compared.
                out[key] = sorted(members)
            else:
                out[key] = kind
        return out


def _signal_counts(doc: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sig in doc.get("active_signals") or []:
        sig_type = str(sig.get("type") or "unknown")
        counts[sig_type] = counts.get(sig_type, 0) + 1
    return counts



def _entry(doc: AccountDocument, actions: Sequence[Action], playbooks: Sequence[Playbook],
           today: int) -> rules.WorklistEntry | None:
    return rules.entry(doc.account_id, doc.owner_key, doc.attention_track,
                       handling_of(actions), playbooks, today)
