"""The HTTP API over the read model, documented by ``agents/openapi.json`` (served at
``/openapi.json``).

Every route sits under ``/api/v1/workspaces/{workspace}`` and needs
``Authorization: Bearer <token>`` where the token belongs to that workspace
(``TELLTALE_API_TOKENS``, ``token=workspace`` pairs): 401 without a known token, 403 for
another workspace's data, 404 for an unknown account or user, 400 for a bad parameter.
Errors are JSON ``{"error": "...", "detail": "..."}``.

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

``create_api_app(settings, readmodel)`` serves it on its own; ``register(app, settings)``
adds it to the Faust worker's web server, next to the collector, the page and /metrics.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from agents.settings import Settings
from scoring.attention import Playbook
from state.readmodel import DIMENSIONS, SORTS, ReadModel

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

SUMMARY_FIELDS = (
    "account_id", "account_name", "score", "band", "forecast", "lifecycle", "delta",
    "change_7d", "arr", "arr_at_risk", "segment", "owner", "renewal_date",
    "days_to_renewal", "explanation", "needs_attention", "updated_at",
)
USER_FIELDS = ("user_id", "account_id", "account_name", "name", "email", "score", "band",
               "power_user", "last_seen", "updated_at")


def configured_playbooks(settings: Settings) -> tuple[Playbook, ...]:
    """The playbooks of the scoring config (none when the config declares none)."""
    from scoring.config import load_config

    return tuple(getattr(load_config(settings.scoring_config), "playbooks", ()))


def openapi_document() -> bytes:
    return resources.files("agents").joinpath("openapi.json").read_bytes()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json")


def _error(status: int, error: str, detail: str) -> web.Response:
    response = _json({"error": error, "detail": detail}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="telltale"'
    return response


class _Problem(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.response = _error(status, error, detail)


def token_workspace(tokens: Mapping[str, str], header: str | None) -> str | None:
    """The workspace of a ``Bearer`` token, compared in constant time; None if unknown."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip()
    found = None
    for known, workspace in tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            found = workspace
    return found


def summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: doc.get(k) for k in SUMMARY_FIELDS}
    out["signals"] = sorted({str(s.get("type")) for s in doc.get("active_signals") or []})
    return out


def user_view(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in USER_FIELDS}


class Api:
    """Request handlers bound to one read model and the configured tokens."""

    def __init__(self, settings: Settings, readmodel: ReadModel,
                 playbooks: Sequence[Playbook] | None = None) -> None:
        self.readmodel = readmodel
        self.tokens = Settings.parse_pairs(settings.api_tokens)
        self.playbooks = configured_playbooks(settings) if playbooks is None else playbooks

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
        ]

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=openapi_document(), content_type="application/json")

    def _guard(self, handler: Callable[[web.Request, str], Awaitable[web.Response]],
               params: tuple[str, ...] = ()
               ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            workspace = token_workspace(self.tokens, request.headers.get("Authorization"))
            if workspace is None:
                return _error(401, "unauthorized", "a valid bearer token is required")
            if request.match_info["workspace"] != workspace:
                return _error(403, "forbidden", "this token belongs to another workspace")
            unknown = sorted(set(request.query) - set(params))
            if unknown:  # a misspelt filter must not silently widen the result
                return _error(400, "bad_request",
                              f"unknown query parameter {unknown[0]!r}; "
                              f"allowed: {', '.join(params) or 'none'}")
            try:
                return await handler(request, workspace)
            except _Problem as problem:
                return problem.response

        return guarded

    async def list_accounts(self, request: web.Request, workspace: str) -> web.Response:
        query = request.query
        sort = query.get("sort", "score")
        descending = sort.startswith("-")
        sort_key = sort.removeprefix("-")
        if sort_key not in SORTS:
            raise _Problem(400, "bad_request",
                           f"sort must be one of {', '.join(SORTS)} (prefix - for descending)")
        limit = _int_param(query, "limit", 50, 1, MAX_LIMIT)
        offset = _int_param(query, "offset", 0, 0, 1_000_000)
        filters = {dim: query.get(dim) for dim in (*DIMENSIONS, "signal")}
        for dim, allowed in ALLOWED_FILTERS.items():
            if filters[dim] is not None and filters[dim] not in allowed:
                raise _Problem(400, "bad_request", f"{dim} must be one of {', '.join(allowed)}")
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
            raise _Problem(404, "not_found", f"no account {account_id!r} in this workspace")
        users = await self.readmodel.users(workspace, doc.get("user_ids") or [])
        detail = summary(doc)
        detail.update({
            "components": doc.get("components") or {},
            "reasons": doc.get("reasons") or [],
            "drivers": doc.get("drivers") or [],
            "previous": doc.get("previous"),
            "active_signals": doc.get("active_signals") or [],
            "owner_email": doc.get("owner_email"),
            "owner_slack_id": doc.get("owner_slack_id"),
            "external_ids": doc.get("external_ids") or {},
            "users_summary": doc.get("users_summary") or {},
            "users": [user_view(u) for u in users],
            "history": await self.readmodel.history(workspace, account_id),
            "config_version": doc.get("config_version"),
        })
        return _json(detail)

    async def get_user(self, request: web.Request, workspace: str) -> web.Response:
        user_id = request.match_info["user_id"]
        record = await self.readmodel.user(workspace, user_id)
        if record is None:
            raise _Problem(404, "not_found", f"no user {user_id!r} in this workspace")
        return _json(user_view(record))

    async def get_ranking(self, request: web.Request, workspace: str) -> web.Response:
        name = request.match_info["name"]
        if name not in RANKINGS:
            raise _Problem(404, "not_found", f"no ranking {name!r}; use one of "
                                             f"{', '.join(RANKINGS)}")
        limit = _int_param(request.query, "limit", 20, 1, MAX_LIMIT)
        stage = request.query.get("forecast", "at_risk")
        if stage not in FORECAST_STAGES:
            raise _Problem(400, "bad_request",
                           f"forecast must be one of {', '.join(FORECAST_STAGES)}")
        if name == "renewals":
            name = f"renewals:{stage}"
        if name == "attention":  # today's worklist, not the core's raw order
            docs = await self.readmodel.attention(workspace, limit, playbooks=self.playbooks)
        else:
            docs = await self.readmodel.accounts(
                workspace, await self.readmodel.ranking(workspace, name, limit))
        return _json({"name": name, "items": [summary(d) for d in docs]})

    async def get_portfolio(self, request: web.Request, workspace: str) -> web.Response:
        return _json(await self.readmodel.portfolio(workspace))

    async def get_business(self, request: web.Request, workspace: str) -> web.Response:
        doc = await self.readmodel.business(workspace)
        if doc is None:
            raise _Problem(404, "not_found",
                           "no business metrics published for this workspace yet; run "
                           "telltale metrics HISTORY --outcomes OUTCOMES --publish")
        return _json(doc)


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Problem(400, "bad_request", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise _Problem(400, "bad_request", f"{name} must be between {low} and {high}")
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


def standalone_app(settings: Settings, readmodel: ReadModel | None,
                   routes: Callable[[ReadModel], list[web.RouteDef]]) -> web.Application:
    """A stand-alone aiohttp application over one read model (made from ``settings`` and
    closed with the app when not given), serving ``routes(readmodel)``."""
    app = web.Application(middlewares=[json_errors])
    model = readmodel or ReadModel.from_settings(settings)
    app[READMODEL_KEY] = model
    app.add_routes(routes(model))
    if readmodel is None:
        async def close(_app: web.Application) -> None:
            await model.close()

        app.on_cleanup.append(close)
    return app


def create_api_app(settings: Settings, readmodel: ReadModel | None = None) -> web.Application:
    """A stand-alone aiohttp application serving only the API (and /openapi.json)."""
    return standalone_app(settings, readmodel, lambda model: Api(settings, model).routes())


def register(app: Any, settings: Settings, readmodel: ReadModel | None = None) -> Api:
    """Serve the API from the Faust worker's web server."""
    api = Api(settings, readmodel or ReadModel.of_app(app, settings))
    web_app: web.Application = app.web.web_app
    web_app.router.add_routes(api.routes())
    web_app.middlewares.append(json_errors)
    return api
