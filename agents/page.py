"""The CSM page: server-rendered HTML from the read model, readable without JavaScript.

- ``/today``                 accounts needing attention, most urgent first, with the
                             plain-language reason and owner; renewals at risk, the week's
                             largest drops and expansion leads beside them
- ``/accounts/{account_id}`` score history as an inline SVG chart, components, signals,
                             users (score, power user, last seen)

Auth: the same API tokens (``TELLTALE_API_TOKENS``) decide the workspace. Open any page
once with ``?token=<token>``; the token is then kept in an HttpOnly, SameSite=Strict
cookie and the address bar loses it. ``Authorization: Bearer`` also works. Without a token
the page asks for one (401). Templates are ``string.Template`` files in
``agents/templates``; every value is HTML-escaped before it is placed.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import quote

from aiohttp import web

from agents.api import token_identity
from agents.settings import Settings
from state.readmodel import ReadModel

COOKIE = "telltale_token"
BAND_LABELS = {"healthy": "Healthy", "watch": "Watch", "at_risk": "At risk"}
STAGE_LABELS = {"commit": "Commit", "best_case": "Best case", "at_risk": "At risk",
                "onboarding": "Onboarding", "adopting": "Adopting", "mature": "Mature",
                "renewal_window": "In renewal window", "churned": "Churned",
                "reactivated": "Reactivated"}
BAND_COLOURS = {"healthy": "#1f9d55", "watch": "#c98a06", "at_risk": "#d64545"}

_templates: dict[str, Template] = {}


def template(name: str) -> Template:
    if name not in _templates:
        text = resources.files("agents").joinpath("templates", name).read_text("utf-8")
        _templates[name] = Template(text)
    return _templates[name]


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def money(amount: Any) -> str:
    if amount is None:
        return "—"
    value = float(amount)
    if value >= 1_000_000:
        return f"${value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"${value / 1_000:.0f}k"
    return f"${value:.0f}"


def signed(n: Any) -> str:
    value = int(n or 0)
    css = "down" if value < 0 else "up" if value > 0 else ""
    text = f"+{value}" if value > 0 else f"−{-value}" if value < 0 else "0"
    return f'<span class="{css}">{text}</span>'


def account_href(account_id: str) -> str:
    return "/accounts/" + quote(account_id, safe="")


def score_badge(doc: Mapping[str, Any]) -> str:
    band = str(doc.get("band") or "")
    return (f'<span class="score band-{e(band)}" title="{e(BAND_LABELS.get(band, band))}">'
            f'{e(doc.get("score"))}</span>')


def signal_chips(signals: Sequence[Mapping[str, Any]], with_text: bool = False) -> str:
    """One chip per signal with its sentence, or per signal type with a count."""
    chips = []
    if with_text:
        for sig in signals:
            chips.append(f'<span class="chip {e(sig.get("severity"))}">{e(sig.get("text"))}'
                         f'</span>')
        return "".join(chips)
    counts: dict[tuple[str, str], int] = {}
    for sig in signals:
        pair = (str(sig.get("type", "")), str(sig.get("severity", "")))
        counts[pair] = counts.get(pair, 0) + 1
    for (kind, severity), n in counts.items():
        label = kind.replace("_", " ") + (f" ×{n}" if n > 1 else "")
        chips.append(f'<span class="chip {e(severity)}">{e(label)}</span>')
    return "".join(chips)


def renewal_text(doc: Mapping[str, Any]) -> str:
    days = doc.get("days_to_renewal")
    return "—" if days is None else f"{int(days)} days"


def render(title: str, workspace: str | None, content: str, status: int = 200) -> web.Response:
    body = template("base.html").substitute(
        title=e(title), workspace_label=e(f"Workspace {workspace}" if workspace else ""),
        content=content)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def history_chart(points: Sequence[Mapping[str, Any]], width: int = 720,
                  height: int = 220) -> str:
    """Score (0-100) over time as inline SVG, with the band zones shaded."""
    if not points:
        return '<p class="empty">No history yet.</p>'
    left, right, top, bottom = 34, 12, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    times = [datetime.fromisoformat(str(p["t"]).replace("Z", "+00:00")).timestamp()
             for p in points]
    t0, t1 = min(times), max(times)
    span = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return left + (plot_w * (t - t0) / span if t1 > t0 else plot_w / 2)

    def y(score: float) -> float:
        return top + plot_h * (1 - score / 100)

    parts = [f'<svg class="history" role="img" aria-label="Score history" '
             f'viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for low, high, band in ((70, 100, "healthy"), (40, 70, "watch"), (0, 40, "at_risk")):
        parts.append(f'<rect x="{left}" y="{y(high):.1f}" width="{plot_w}" '
                     f'height="{y(low) - y(high):.1f}" fill="{BAND_COLOURS[band]}" '
                     f'fill-opacity="0.07"/>')
    for level in (0, 40, 70, 100):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(level):.1f}" '
                     f'y2="{y(level):.1f}" stroke="#e4e7ee"/>'
                     f'<text x="{left - 6}" y="{y(level) + 4:.1f}" '
                     f'text-anchor="end">{level}</text>')
    coords = [(x(t), y(float(p["score"]))) for t, p in zip(times, points, strict=True)]
    path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
    parts.append(f'<polyline points="{path}" fill="none" stroke="#3b5bdb" '
                 f'stroke-width="2.2" stroke-linejoin="round"/>')
    for (cx, cy), p in zip(coords, points, strict=True):
        colour = BAND_COLOURS.get(str(p.get("band")), "#3b5bdb")
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{colour}">'
                     f'<title>{e(str(p["t"])[:10])}: {e(p["score"])}</title></circle>')
    first, last = str(points[0]["t"])[:10], str(points[-1]["t"])[:10]
    parts.append(f'<text x="{left}" y="{height - 6}">{e(first)}</text>')
    if last != first:
        parts.append(f'<text x="{left + plot_w}" y="{height - 6}" '
                     f'text-anchor="end">{e(last)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _mini_list(docs: Sequence[Mapping[str, Any]], detail: Callable[[Mapping[str, Any]], str]
               ) -> str:
    if not docs:
        return '<div class="card empty">None right now.</div>'
    rows = "".join(
        f'<tr><td><a class="account" href="{e(account_href(str(d["account_id"])))}">'
        f'{e(d.get("account_name") or d["account_id"])}</a></td>'
        f'<td class="num">{detail(d)}</td></tr>' for d in docs)
    return f"<table><tbody>{rows}</tbody></table>"


class Page:
    def __init__(self, settings: Settings, readmodel: ReadModel) -> None:
        self.readmodel = readmodel
        self.tokens = {t: i.workspace for t, i in settings.api_identities().items()}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.root, allow_head=False),
            web.get("/today", self._authed(self.today)),
            web.get("/accounts/{account_id}", self._authed(self.account)),
        ]

    async def root(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/today")

    def _authed(self, handler: Callable[[web.Request, str], Awaitable[web.Response]]
                ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            given = request.query.get("token")
            if given is not None:
                workspace = token_identity(self.tokens, f"Bearer {given}")
                if workspace is None:
                    return self._login(request, "That token is not known here.")
                # Keep the token in a cookie and drop it from the address bar.
                rest = {k: v for k, v in request.query.items() if k != "token"}
                target = request.rel_url.with_query(rest)
                response = web.HTTPSeeOther(str(target))
                response.set_cookie(COOKIE, given, httponly=True, samesite="Strict", path="/",
                                    max_age=30 * 86_400)
                raise response
            header = request.headers.get("Authorization")
            cookie = request.cookies.get(COOKIE)
            workspace = token_identity(self.tokens, header) or (
                token_identity(self.tokens, f"Bearer {cookie}") if cookie else None)
            if workspace is None:
                return self._login(request, "Enter your Telltale API token to see your "
                                            "accounts.")
            return await handler(request, workspace)

        return wrapped

    def _login(self, request: web.Request, message: str) -> web.Response:
        content = template("login.html").substitute(message=e(message),
                                                    action=e(request.path))
        return render("Sign in", None, content, status=401)

    async def today(self, request: web.Request, workspace: str) -> web.Response:
        docs = await self.readmodel.attention(workspace, limit=50)
        n = len(docs)
        headline = (f"{n} account{'s' if n != 1 else ''} need{'s' if n == 1 else ''} "
                    f"attention today, most urgent first." if n
                    else "No account needs attention today.")
        rows = "\n".join(
            f'<tr><td><a class="account" href="{e(account_href(str(d["account_id"])))}">'
            f'{e(d.get("account_name") or d["account_id"])}</a><br>'
            f'{signal_chips(d.get("active_signals") or [])}</td>'
            f'<td class="num">{score_badge(d)}</td>'
            f'<td class="num">{signed(d.get("change_7d"))}</td>'
            f'<td class="reason">{e(d.get("explanation"))}</td>'
            f'<td>{e(d.get("owner") or "Unassigned")}</td>'
            f'<td class="num">{money(d.get("arr"))}</td>'
            f'<td class="num">{renewal_text(d)}</td></tr>' for d in docs
        ) or '<tr><td colspan="7" class="empty">Nothing needs attention. </td></tr>'
        renewals = await self.readmodel.accounts(
            workspace, await self.readmodel.ranking(workspace, "renewals:at_risk", 5))
        drops = await self.readmodel.accounts(
            workspace, await self.readmodel.ranking(workspace, "drops", 5))
        leads = await self.readmodel.accounts(
            workspace, await self.readmodel.ranking(workspace, "expansion", 5))
        content = template("today.html").substitute(
            headline=e(headline), rows=rows,
            renewals=_mini_list(renewals, lambda d: f"{renewal_text(d)} · {money(d.get('arr'))}"),
            drops=_mini_list(drops, lambda d: signed(d.get("change_7d"))),
            expansion=_mini_list(leads, lambda d: money(d.get("arr"))),
        )
        return render("Today", workspace, content)

    async def account(self, request: web.Request, workspace: str) -> web.Response:
        account_id = request.match_info["account_id"]
        doc = await self.readmodel.account(workspace, account_id)
        if doc is None:
            content = (f'<p class="sub"><a href="/today">← Today</a></p><h1>Not found</h1>'
                       f'<p>No account {e(account_id)} in this workspace.</p>')
            return render("Not found", workspace, content, status=404)
        history = await self.readmodel.history(workspace, account_id)
        users = await self.readmodel.users(workspace, doc.get("user_ids") or [])
        band = str(doc.get("band"))
        stages = " · ".join(x for x in (
            BAND_LABELS.get(band, band),
            f"forecast {STAGE_LABELS.get(doc['forecast'], doc['forecast'])}"
            if doc.get("forecast") else "",
            STAGE_LABELS.get(str(doc.get("lifecycle")), "") if doc.get("lifecycle") else "",
            f"owner {doc['owner']}" if doc.get("owner") else "unassigned",
        ) if x)
        kpis = "".join(
            f'<div class="card kpi"><div class="label">{e(label)}</div>'
            f'<div class="value">{value}</div></div>'
            for label, value in (
                ("7-day change", signed(doc.get("change_7d"))),
                ("ARR", e(money(doc.get("arr")))),
                ("Renewal", e(renewal_text(doc))),
                ("Segment", e(str(doc.get("segment") or "—").replace("_", "-"))),
            ))
        components = "\n".join(
            f'<tr><td>{e(name.replace("_", " ").capitalize())}</td>'
            f'<td>{e(describe_detail(c.get("detail")))}</td>'
            f'<td class="num">{e(_number(c.get("points")))} / {e(_number(c.get("weight")))}'
            f'</td>'
            f'<td><div class="bar"><span style="width:{_pct(c)}%"></span></div></td></tr>'
            for name, c in sorted((doc.get("components") or {}).items())
        ) or '<tr><td colspan="4" class="empty">No components.</td></tr>'
        user_rows = "\n".join(
            f'<tr><td>{e(u.get("name") or u.get("user_id"))}</td><td>{e(u.get("email"))}</td>'
            f'<td class="num">{score_badge(u) if u.get("score") is not None else "—"}</td>'
            f'<td>{"★ power user" if u.get("power_user") else ""}</td>'
            f'<td>{e(str(u.get("last_seen"))[:10] if u.get("last_seen") else "never")}</td></tr>'
            for u in sorted(users, key=lambda u: -(u.get("score") or 0))
        ) or '<tr><td colspan="5" class="empty">No users seen yet.</td></tr>'
        signals = doc.get("active_signals") or []
        content = template("account.html").substitute(
            name=e(doc.get("account_name") or account_id), band=e(band),
            score=e(doc.get("score")), stages=e(stages), explanation=e(doc.get("explanation")),
            signals=(f'<p style="margin:10px 0 0">{signal_chips(signals, with_text=True)}</p>'
                     if signals else ""),
            kpis=kpis, chart=history_chart(history), components=components, users=user_rows)
        return render(str(doc.get("account_name") or account_id), workspace, content)


def describe_detail(detail: Any) -> str:
    """A component's numbers in words: ``{"active_users": 18, "seats": 30}`` →
    ``active users 18 · seats 30``; lists of people by name, lists of values with →."""
    if not isinstance(detail, Mapping):
        return "" if detail is None else str(detail)
    parts = []
    for key, value in detail.items():
        label = str(key).replace("_", " ")
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, bool):
            parts.append(label if value else f"no {label}")
        elif isinstance(value, int | float):
            parts.append(f"{label} {_number(value)}")
        elif isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
            names = [str(v.get("name") or v.get("user_id") or "?") for v in value]
            parts.append(f"{label}: {', '.join(names)}")
        elif isinstance(value, list):
            parts.append(f"{label} {' → '.join(str(v) for v in value)}")
        else:
            parts.append(f"{label} {value}")
    return " · ".join(parts)


def _number(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.1f}"


def _pct(component: Mapping[str, Any]) -> int:
    """Share of the component's weight earned, as a bar width (0-100)."""
    try:
        points, weight = float(component.get("points") or 0), float(component.get("weight") or 0)
    except (TypeError, ValueError):
        return 0
    return max(0, min(100, round(100 * points / weight))) if weight > 0 else 0


def create_page_app(settings: Settings, readmodel: ReadModel | None = None, *,
                    with_api: bool = True) -> web.Application:
    """A stand-alone aiohttp application serving the page (and the API by default)."""
    from agents.api import Api, Publish, standalone_app

    def routes(model: ReadModel, publish: Publish) -> list[web.RouteDef]:
        page_routes = Page(settings, model).routes()
        return (page_routes + Api(settings, model, publish=publish).routes() if with_api
                else page_routes)

    return standalone_app(settings, readmodel, routes)


def register(app: Any, settings: Settings, readmodel: ReadModel | None = None) -> Page:
    """Serve the page from the Faust worker's web server."""
    page = Page(settings, readmodel or ReadModel.of_app(app, settings))
    web_app: web.Application = app.web.web_app
    web_app.router.add_routes(page.routes())
    return page
