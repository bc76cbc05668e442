"""The HTTP API over the read model, documented by ``agents/openapi.json`` (served at
``/openapi.json``).

Every route sits under ``/api/v1/workspaces/{workspace}`` and needs
``Authorization: Bearer <token>`` where the token belongs to that workspace
(``TELLTALE_API_TOKENS``, ``token=workspace`` or ``token=workspace:person@example.com``
pairs; the person is who actions are recorded for): 401 without a known token, 403 for
another workspace's data, 404 for an unknown account or user, 400 for a bad parameter.
Errors are Problem Details (RFC 9457, ``application/problem+json``; agents/problems.py).
No answer may be cached.

- ``GET  .../accounts``            filter (band, forecast, lifecycle, owner, segment,
                                   signal), sort (score, change_7d, arr_at_risk,
                                   days_to_renewal; ``-`` prefix for descending), page
                                   (limit, offset)
- ``GET  .../accounts/{id}``       components, reasons, drivers, signals, users, history
- ``GET  .../users/{id}``          one user's score, band, power-user flag, last seen
- ``GET  .../rankings/{name}``     at_risk, drops, renewals, expansion, attention
- ``GET  .../portfolio``           counts per band / stage, ARR per band, active signals
- ``GET  .../business-metrics``    churn rate, GRR/NRR, cohorts, NPS, engagement and CLV
                                   of the workspace's history, as last published by
                                   ``telltale metrics --publish`` (404 until then)
- ``GET  .../worklist``            today's worklists: each owner's top accounts (``owner``
                                   for one, ``me`` for the signed-in person) and the team's,
                                   reasons first (structured and in words), what is new
                                   since yesterday, ARR, renewal, the open playbook step
- ``GET  .../accounts/{id}/actions``   who did what about the account, notes included
- ``POST .../accounts/{id}/actions``   acknowledge, snooze, assign, note or step_done:
                                   produced to the actions topic (acks=all) and applied to
                                   the read model at once, so the next read shows it

``create_api_app(settings, readmodel)`` serves it on its own; ``register(app, settings)``
adds it to the Faust worker's web server, next to the collector, the page and /metrics.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from importlib import resources
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from agents.basic_auth import same_secret
from agents.problems import problem_response as _error
from agents.workspaces import Workspaces
from scoring import attention as core
from scoring.attention import Playbook, Render, reason_text, renderer
from scoring.changes import iso_day
from scoring.config import configured_playbooks, load_config
from scoring.i18n import Translator, negotiate, translator
from scoring.worklist import OpenStep
from state.aggregates import epoch_day
from state.readmodel import DIMENSIONS, SORTS, AccountDocument, Listed, ReadModel
from streams.actions import (
    ACTIONS,
    MAX_ID_CHARS,
    Action,
    ActionError,
    ActionType,
    check_date,
    check_id,
    check_text,
    epoch_day_of_date,
)
from streams.settings import ApiIdentity, Settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/workspaces/{workspace}"
MAX_LIMIT = 200
RANKINGS = ("at_risk", "drops", "renewals", "expansion", "attention")
FORECAST_STAGES = ("commit", "best_case", "at_risk")
ALLOWED_FILTERS: dict[str, tuple[str, ...]] = {
    "band": ("healthy", "watch", "at_risk"),
    "forecast": (*FORECAST_STAGES, "none"),
    "lifecycle": ("onboarding", "adopting", "mature", "renewal_window", "churned",
                  "reactivated", "none"),
}

LIST_PARAMS = (*DIMENSIONS, "signal", "sort", "limit", "offset")

READMODEL_KEY: web.AppKey[ReadModel] = web.AppKey("telltale_readmodel", ReadModel)
IDENTITY: web.RequestKey[ApiIdentity] = web.RequestKey("telltale_identity", ApiIdentity)
"""Who the request's token signs in."""

MAX_ACTION_BODY_BYTES = 16 * 1024
MAX_SNOOZE_DAYS = 366
ANONYMOUS_ACTOR = "api-token"
"""Actor recorded for a token that names no person."""

Publish = Callable[[Action], Awaitable[None]]
"""Send an action to the actions topic, returning once every replica has it."""

_T = TypeVar("_T")

SUMMARY_FIELDS = (
    "account_id", "account_name", "score", "band", "forecast", "lifecycle", "delta",
    "change_7d", "arr", "arr_at_risk", "segment", "owner", "renewal_date",
    "days_to_renewal", "explanation", "needs_attention", "updated_at",
)
#: What an account's detail adds to its summary, as stored, with the value shown when a
#: document lacks it.
DETAIL_FIELDS: dict[str, Any] = {
    "components": {}, "reasons": [], "drivers": [], "previous": None, "active_signals": [],
    "owner_email": None, "owner_slack_id": None, "external_ids": {}, "users_summary": {},
}
USER_FIELDS = ("user_id", "account_id", "account_name", "name", "email", "score", "band",
               "power_user", "last_seen", "updated_at")


def openapi_document() -> bytes:
    return resources.files("agents").joinpath("openapi.json").read_bytes()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json")


class Problem(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.response = _error(status, error, detail)


def token_identity(tokens: Mapping[str, _T], header: str | None) -> _T | None:
    """What a ``Bearer`` token stands for, compared in constant time; None if unknown."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip()
    found = None
    for known, identity in tokens.items():
        if same_secret(known, token):
            found = identity
    return found


def step_view(step: OpenStep, today: int) -> dict[str, Any]:
    return {"playbook": step.playbook.name, "playbook_title": step.playbook.title,
            "step": step.index, "title": step.step.title, "owner_role": step.step.owner_role,
            "due_date": iso_day(step.due_day), "overdue": step.overdue(today)}


def days_to_renewal(doc: AccountDocument, today: int) -> int | None:
    """Days from epoch day ``today`` to the renewal date (negative once it passed)."""
    try:
        renewal = date.fromisoformat(str(doc.renewal_date)[:10])
    except ValueError:
        return None
    return epoch_day_of_date(renewal) - today


def worklist_item(item: Listed, render: Render = core.render,
                  language: Translator | None = None) -> dict[str, Any]:
    """One listed account as the API, the digest and the demo show it; the reasons'
    ``text`` in ``language`` (default English)."""
    doc, entry = item.doc, item.entry
    today = entry.today
    t = language or translator()
    reasons = [{**r.to_dict(), "text": reason_text(r, today, render, t),
                "new": r.key in entry.new} for r in entry.reasons]
    return {
        "account_id": entry.account_id, "account_name": doc.account_name,
        "owner": entry.owner, "owner_name": doc.owner,
        "assigned": entry.owner != doc.owner_key,
        "priority": entry.priority, "score": doc.score, "band": doc.band.value,
        "arr": doc.arr, "renewal_date": doc.renewal_date,
        "days_to_renewal": days_to_renewal(doc, today),
        "reasons": reasons,
        "new_since_yesterday": [r["text"] for r in reasons if r["new"]],
        "open_steps": [step_view(s, today) for s in entry.open_steps],
    }


def summary(doc: AccountDocument) -> dict[str, Any]:
    """An account as lists show it: the stored fields the API documents, as stored."""
    out = {k: doc.stored.get(k) for k in SUMMARY_FIELDS}
    out["signals"] = sorted({s.type for s in doc.active_signals})
    return out


def user_view(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in USER_FIELDS}


class Api:
    """Request handlers bound to one read model and the configured tokens."""

    def __init__(self, settings: Settings, readmodel: ReadModel,
                 playbooks: Sequence[Playbook] | None = None, *,
                 publish: Publish | None = None, render: Render = core.render,
                 workspaces: Workspaces | None = None) -> None:
        self.readmodel = readmodel
        self.workspaces = workspaces  # a workspace's own [scoring] playbooks, if any
        self.tokens = settings.api_identities()
        self.playbooks = (configured_playbooks(settings.scoring_config) if playbooks is None
                          else playbooks)
        self.per_owner = settings.worklist_per_owner
        self.publish = publish
        self.render = render
        self.locale = load_config(settings.scoring_config).locale

    def _reader(self, request: web.Request, workspace: str) -> tuple[Render, Translator]:
        """The renderer and translator of the reader's language: the browser's or
        client's ``Accept-Language`` when Telltale speaks it, else the workspace's."""
        own = self.workspaces.get(workspace) if self.workspaces is not None else None
        locale = own.scoring.locale if own is not None else self.locale
        language = negotiate(request.headers.get("Accept-Language"), locale.language)
        t = translator(language, locale.currency, locale.time_zone)
        if t.language == "en" and t.currency == "USD":
            return self.render, t
        return renderer(t), t

    def playbooks_for(self, workspace: str) -> Sequence[Playbook]:
        """The playbooks of ``workspace``'s own scoring config, else the shared ones."""
        own = self.workspaces.get(workspace) if self.workspaces is not None else None
        return own.scoring.playbooks if own is not None and own.own_scoring else (
            self.playbooks)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/openapi.json", self.openapi, allow_head=False),
            web.get(API_PREFIX + "/accounts",
                    self._guard(self.list_accounts, LIST_PARAMS), allow_head=False),
            web.get(API_PREFIX + "/accounts/{account_id}", self._guard(self.get_account),
                    allow_head=False),
            web.get(API_PREFIX + "/users/{user_id}", self._guard(self.get_user),
                    allow_head=False),
            web.get(API_PREFIX + "/rankings/{name}",
                    self._guard(self.get_ranking, ("forecast", "limit")), allow_head=False),
            web.get(API_PREFIX + "/portfolio", self._guard(self.get_portfolio),
                    allow_head=False),
            web.get(API_PREFIX + "/business-metrics", self._guard(self.get_business),
                    allow_head=False),
            web.get(API_PREFIX + "/worklist",
                    self._guard(self.get_worklist, ("owner", "per_owner", "limit")),
                    allow_head=False),
            web.get(API_PREFIX + "/accounts/{account_id}/actions",
                    self._guard(self.get_actions), allow_head=False),
            web.post(API_PREFIX + "/accounts/{account_id}/actions",
                     self._guard(self.post_action)),
        ]

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=openapi_document(), content_type="application/json")

    def _guard(self, handler: Callable[[web.Request, str], Awaitable[web.Response]],
               params: tuple[str, ...] = ()
               ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            identity = token_identity(self.tokens, request.headers.get("Authorization"))
            if identity is None:
                return _error(401, "unauthorized", "a valid bearer token is required")
            workspace = identity.workspace
            request[IDENTITY] = identity
            if request.match_info["workspace"] != workspace:
                return _error(403, "forbidden", "this token belongs to another workspace")
            unknown = sorted(set(request.query) - set(params))
            if unknown:  # a misspelt filter must not silently widen the result
                return _error(400, "bad_request",
                              f"unknown query parameter {unknown[0]!r}; "
                              f"allowed: {', '.join(params) or 'none'}")
            try:
                return await handler(request, workspace)
            except Problem as problem:
                return problem.response

        return guarded

    async def list_accounts(self, request: web.Request, workspace: str) -> web.Response:
        query = request.query
        sort = query.get("sort", "score")
        descending = sort.startswith("-")
        sort_key = sort.removeprefix("-")
        if sort_key not in SORTS:
            raise Problem(400, "bad_request",
                          f"sort must be one of {', '.join(SORTS)} (prefix - for descending)")
        limit = _int_param(query, "limit", 50, 1, MAX_LIMIT)
        offset = _int_param(query, "offset", 0, 0, 1_000_000)
        filters = {dim: query.get(dim) for dim in (*DIMENSIONS, "signal")}
        for dim, allowed in ALLOWED_FILTERS.items():
            if filters[dim] is not None and filters[dim] not in allowed:
                raise Problem(400, "bad_request", f"{dim} must be one of {', '.join(allowed)}")
        page = await self.readmodel.list_accounts(workspace, filters=filters, sort=sort_key,
                                                  descending=descending, offset=offset,
                                                  limit=limit)
        following = offset + limit
        return _json({
            "items": [summary(d) for d in page.items],
            "total": page.total, "offset": offset, "limit": limit,
            "next_offset": following if following < page.total else None,
        })

    async def get_account(self, request: web.Request, workspace: str) -> web.Response:
        account_id = request.match_info["account_id"]
        doc = await self.readmodel.account(workspace, account_id)
        if doc is None:
            raise Problem(404, "not_found", f"no account {account_id!r} in this workspace")
        users = await self.readmodel.users(workspace, list(doc.user_ids))
        detail = summary(doc)
        detail.update({k: doc.stored.get(k) if empty is None else doc.stored.get(k) or empty
                       for k, empty in DETAIL_FIELDS.items()})
        detail.update({
            "users": [user_view(u) for u in users],
            "history": await self.readmodel.history(workspace, account_id),
            "config_version": doc.stored.get("config_version"),
        })
        return _json(detail)

    async def get_user(self, request: web.Request, workspace: str) -> web.Response:
        user_id = request.match_info["user_id"]
        record = await self.readmodel.user(workspace, user_id)
        if record is None:
            raise Problem(404, "not_found", f"no user {user_id!r} in this workspace")
        return _json(user_view(record))

    async def get_ranking(self, request: web.Request, workspace: str) -> web.Response:
        name = request.match_info["name"]
        if name not in RANKINGS:
            raise Problem(404, "not_found", f"no ranking {name!r}; use one of "
                                            f"{', '.join(RANKINGS)}")
        limit = _int_param(request.query, "limit", 20, 1, MAX_LIMIT)
        stage = request.query.get("forecast", "at_risk")
        if stage not in FORECAST_STAGES:
            raise Problem(400, "bad_request",
                          f"forecast must be one of {', '.join(FORECAST_STAGES)}")
        if name == "renewals":
            name = f"renewals:{stage}"
        if name == "attention":  # today's worklist, not the core's raw order
            docs = await self.readmodel.attention(workspace, limit,
                                                  playbooks=self.playbooks_for(workspace))
        else:
            docs = await self.readmodel.accounts(
                workspace, await self.readmodel.ranking(workspace, name, limit))
        return _json({"name": name, "items": [summary(d) for d in docs]})

    async def get_portfolio(self, request: web.Request, workspace: str) -> web.Response:
        return _json(await self.readmodel.portfolio(workspace))

    async def get_business(self, request: web.Request, workspace: str) -> web.Response:
        doc = await self.readmodel.business(workspace)
        if doc is None:
            raise Problem(404, "not_found",
                          "no business metrics published for this workspace yet; run "
                          "telltale metrics HISTORY --outcomes OUTCOMES --publish")
        return _json(doc)


    # ------------------------------------------------------------------ the worklist

    async def get_worklist(self, request: web.Request, workspace: str) -> web.Response:
        owner = request.query.get("owner")
        if owner == "me":
            owner = request[IDENTITY].person
            if owner is None:
                raise Problem(400, "bad_request",
                              "owner=me needs a token that names a person "
                              "(token=workspace:person@example.com)")
        elif owner is not None and not 1 <= len(owner) <= MAX_ID_CHARS:
            # Only compared with owners, never stored: its length is all that matters.
            raise Problem(400, "bad_request", f"owner must be 1 to {MAX_ID_CHARS} characters")
        per_owner = _int_param(request.query, "per_owner", self.per_owner, 1, 100)
        limit = _int_param(request.query, "limit", 50, 1, MAX_LIMIT)
        found = await self.readmodel.worklist(workspace, owner, per_owner=per_owner,
                                              playbooks=self.playbooks_for(workspace))
        render, t = self._reader(request, workspace)
        return _json({
            "today": iso_day(found.today), "owner": owner,
            "owners": [{"owner": who, "items": [worklist_item(i, render, t) for i in items]}
                       for who, items in sorted(found.owners.items(),
                                                key=lambda kv: kv[0] or "")],
            "team": [worklist_item(i, render, t) for i in found.team[:limit]],
        })

    async def get_actions(self, request: web.Request, workspace: str) -> web.Response:
        account_id = request.match_info["account_id"]
        actions = await self.readmodel.actions(workspace, account_id)
        if not actions and await self.readmodel.account(workspace, account_id) is None:
            raise Problem(404, "not_found", f"no account {account_id!r} in this workspace")
        return _json({"account_id": account_id, "items": [a.to_dict() for a in actions]})

    async def post_action(self, request: web.Request, workspace: str) -> web.Response:
        body = await request.content.read(MAX_ACTION_BODY_BYTES + 1)
        if len(body) > MAX_ACTION_BODY_BYTES:
            raise Problem(413, "too_large",
                          f"an action is at most {MAX_ACTION_BODY_BYTES} bytes")
        try:
            fields = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Problem(400, "bad_request", "the body must be a JSON object") from None
        if not isinstance(fields, dict):
            raise Problem(400, "bad_request", "the body must be a JSON object")
        identity: ApiIdentity = request[IDENTITY]
        action = await self.act(workspace, request.match_info["account_id"],
                                identity.person or ANONYMOUS_ACTOR, fields)
        return _json({"action": action.to_dict()}, 201)

    async def act(self, workspace: str, account_id: str, actor: str,
                  fields: Mapping[str, Any]) -> Action:
        """Check what a person asked for, send it to the actions topic and apply it to the
        read model; raises :class:`Problem` with the reason it cannot be done. Shared by
        the API and the page's forms."""
        if self.publish is None:
            raise Problem(503, "unavailable", "actions cannot be recorded here: no Kafka")
        account = await self.readmodel.account(workspace, account_id)
        if account is None:
            raise Problem(404, "not_found", f"no account {account_id!r} in this workspace")
        kind = _action_type(fields.get("type"))
        allowed = {"type", *{ActionType.SNOOZE: ("until",), ActionType.ASSIGN: ("assignee",),
                             ActionType.NOTE: ("text",),
                             ActionType.STEP_DONE: ("playbook", "step")}.get(kind, ())}
        extra = sorted(set(fields) - allowed)
        if extra:
            raise Problem(400, "bad_request",
                          f"{extra[0]!r} does not belong to a {kind.value} action; "
                          f"send {', '.join(sorted(allowed))}")
        now = time.time()
        action = Action(id=uuid.uuid4().hex, workspace=workspace, account_id=account_id,
                        type=kind, actor=actor, at=now)
        today = epoch_day(now)
        if kind is ActionType.ACKNOWLEDGE:
            listing = await self.readmodel.listing(
                workspace, account_id, playbooks=self.playbooks_for(workspace), today=today)
            if listing is None:
                raise Problem(409, "conflict", "the account is on no list today: there is "
                                               "nothing to acknowledge")
            action = replace(action, reasons={r.key: r.severity for r in listing.reasons})
        elif kind is ActionType.SNOOZE:
            until = _checked(check_date, fields.get("until"), "until")
            if not today < epoch_day_of_date(until) <= today + MAX_SNOOZE_DAYS:
                raise Problem(409, "conflict", f"until must be a day after today and at "
                                               f"most {MAX_SNOOZE_DAYS} days ahead")
            action = replace(action, until=until)
        elif kind is ActionType.ASSIGN:
            if "assignee" not in fields:
                raise Problem(400, "bad_request", "assign needs an assignee (null: back to "
                                                  "the account owner)")
            assignee = fields["assignee"]
            action = replace(action, assignee=None if assignee is None
                             else _checked(check_id, assignee, "assignee"))
        elif kind is ActionType.NOTE:
            action = replace(action, text=_checked(check_text, fields.get("text"), "text"))
        else:
            action = replace(action, **self._step(workspace, fields.get("playbook"),
                                                  fields.get("step")))
        try:
            ACTIONS.encode(action)
        except ActionError as exc:
            raise Problem(400, "bad_request", str(exc)) from None
        try:
            await self.publish(action)
        except Exception as exc:  # the broker is down or refused it: nothing was recorded
            raise Problem(503, "unavailable",
                          f"the action could not be recorded, try again: {exc!r}"[:300]
                          ) from None
        await self.readmodel.apply_action(action)
        return action

    def _step(self, workspace: str, playbook: Any, step: Any) -> dict[str, Any]:
        known = {p.name: p for p in self.playbooks_for(workspace)}
        if not isinstance(playbook, str) or playbook not in known:
            raise Problem(404, "not_found",
                          f"no playbook {str(playbook)[:100]!r}; configured: "
                          f"{', '.join(known) or 'none'}")
        count = len(known[playbook].steps)
        if not isinstance(step, int) or isinstance(step, bool):
            raise Problem(400, "bad_request", "step must be an integer")
        if not 0 <= step < count:
            raise Problem(404, "not_found", f"{playbook} has steps 0 to {count - 1}")
        return {"playbook": playbook, "step": step}


def _action_type(value: Any) -> ActionType:
    try:
        return ActionType(str(value))
    except ValueError:
        raise Problem(400, "bad_request", f"type must be one of "
                                           f"{', '.join(t.value for t in ActionType)}"
                      ) from None


def _checked(check: Callable[[Any, str], _T], value: Any, name: str) -> _T:
    """``check(value, name)`` (one of the action codec's checks), its refusal as a 400."""
    try:
        return check(value, name)
    except ActionError as exc:
        raise Problem(400, "bad_request", str(exc)) from None


class KafkaPublisher:
    """Sends actions to the actions topic with acks=all from a stand-alone app; the
    producer starts on the first action, so an app that only reads never connects."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Any = None

    async def __call__(self, action: Action) -> None:
        from aiokafka import AIOKafkaProducer

        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap,
                                        acks="all", enable_idempotence=True,
                                        request_timeout_ms=10_000)
            await producer.start()
            self._producer = producer
        await self._producer.send_and_wait(self.settings.topics.actions, ACTIONS.encode(action),
                                           key=ACTIONS.key(action))

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, "bad_request", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise Problem(400, "bad_request", f"{name} must be between {low} and {high}")
    return value


@web.middleware
async def json_errors(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """Router errors (404, 405) under /api/ answer JSON like every other API error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        response = _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if "Allow" in exc.headers:  # 405 must say which methods are allowed (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response


READ_MODEL_RETRY_AFTER_SECONDS = 5


@web.middleware
async def read_model_unavailable(request: web.Request,
                                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                                 ) -> web.StreamResponse:
    """A paused or unreachable Redis costs a request at most the client's timeout
    (``TELLTALE_REDIS_TIMEOUT_SECONDS``) and answers 503 with Retry-After, never a 500 or a
    hung request; the next request after Redis answers again succeeds by itself."""
    try:
        return await handler(request)
    except RedisError as exc:
        log.warning("read model unavailable for %s %s: %r", request.method, request.path, exc)
        detail = "the read model is unreachable; retry shortly"
        response = (_error(503, "unavailable", detail) if request.path.startswith("/api/")
                    else web.Response(status=503, text=f"Telltale: {detail}.\n"))
        response.headers["Retry-After"] = str(READ_MODEL_RETRY_AFTER_SECONDS)
        return response


CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'none'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""On every page and API answer: nothing runs but our own files, nothing frames us, no
address leaks to other sites, and nobody's accounts stay in a shared cache."""


@web.middleware
async def secure_headers(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and router errors carry them too
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


def add_middlewares(web_app: web.Application) -> None:
    """The API's middlewares on a shared web server, once however many modules ask."""
    for middleware in (secure_headers, json_errors, read_model_unavailable):
        if middleware not in web_app.middlewares:
            web_app.middlewares.append(middleware)


Routes = Callable[[ReadModel, Publish], list[web.RouteDef]]


def standalone_app(settings: Settings, readmodel: ReadModel | None,
                   routes: Routes) -> web.Application:
    """A stand-alone aiohttp application over one read model (made from ``settings`` and
    closed with the app when not given), serving ``routes(readmodel, publish)``; actions
    go to Kafka through a producer of its own."""
    app = web.Application(middlewares=[secure_headers, json_errors, read_model_unavailable])
    model = readmodel or ReadModel.from_settings(settings)
    publisher = KafkaPublisher(settings)
    app[READMODEL_KEY] = model
    app.add_routes(routes(model, publisher))

    async def close(_app: web.Application) -> None:
        await publisher.close()
        if readmodel is None:
            await model.close()

    app.on_cleanup.append(close)
    return app


def create_api_app(settings: Settings, readmodel: ReadModel | None = None) -> web.Application:
    """A stand-alone aiohttp application serving only the API (and /openapi.json)."""
    return standalone_app(settings, readmodel,
                          lambda model, publish: Api(settings, model, publish=publish).routes())


def faust_publisher(app: Any, settings: Settings) -> Publish:
    """Actions sent through the worker's own producer (acks=all, see agents/app.py)."""
    topic = app.topic(settings.topics.actions, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")

    async def publish(action: Action) -> None:
        delivered = await topic.send(key=ACTIONS.key(action), value=ACTIONS.encode(action))
        await delivered

    return publish


def register(app: Any, settings: Settings, readmodel: ReadModel | None = None) -> Api:
    """Serve the API from the Faust worker's web server."""
    return serve_site_from_worker(app, settings, readmodel, Api)


class _Site(Protocol):
    def routes(self) -> list[web.RouteDef]: ...


_SiteT = TypeVar("_SiteT", bound=_Site)


def serve_site_from_worker(app: Any, settings: Settings, readmodel: ReadModel | None,
                           site: Callable[..., _SiteT]) -> _SiteT:
    """Build ``site`` (the API or the page) over the worker's read model (or
    ``readmodel``), its producer for actions and its workspaces, and serve its routes from
    the worker's web server."""
    served = site(settings, readmodel or ReadModel.of_app(app, settings),
                  publish=faust_publisher(app, settings),
                  workspaces=Workspaces.of_app(app, settings))
    serve_from_worker(app, served.routes())
    return served


def serve_from_worker(app: Any, routes: list[web.RouteDef]) -> None:
    """Add ``routes`` to the Faust worker's web server, behind the API's middlewares."""
    web_app: web.Application = app.web.web_app
    web_app.router.add_routes(routes)
    add_middlewares(web_app)
