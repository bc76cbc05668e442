"""The CSM page: server-rendered HTML from the read model, usable without JavaScript.

- ``/today``                 today's worklist, most urgent first: the whole team's, or one
                             owner's (``?owner=me`` for the person signed in); each account
                             with its reasons first, what is new since yesterday, ARR,
                             renewal date, the open playbook step, and forms to acknowledge,
                             snooze, assign, note and mark the step done; renewals at risk,
                             the week's largest drops and expansion leads beside it
- ``/accounts/{account_id}`` reasons, open step, the same forms, score history as an inline
                             SVG chart, components in words, notes, the history of actions,
                             users (score, power user, last seen)

Sign-in: the API tokens (``TELLTALE_API_TOKENS``) decide the workspace and the person. The
token is posted once to ``/signin`` and kept in an HttpOnly, SameSite=Strict cookie
(``Secure`` over HTTPS); it is never accepted in a query string, where logs and browser
history would keep it. ``Authorization: Bearer`` also works. Every form carries a
per-session CSRF token, checked on POST. Templates are ``string.Template`` files in
``agents/templates``; every value is HTML-escaped before it is placed, and the page runs no
script (the CSP forbids it).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web

from agents.api import (
    ANONYMOUS_ACTOR,
    Api,
    Problem,
    Publish,
    days_to_renewal,
    serve_site_from_worker,
    token_identity,
)
from agents.basic_auth import same_secret
from agents.workspaces import Workspaces
from scoring import attention as core
from scoring import explain
from scoring.attention import Playbook, Render, reason_text, renderer
from scoring.changes import iso_day
from scoring.config import Bands, LocaleSettings, load_config
from scoring.i18n import Translator, negotiate, translator
from scoring.labels import Band, band_label, component_label, stage_label
from scoring.worklist import WorklistEntry
from state.aggregates import epoch_day
from state.readmodel import AccountDocument, Listed, ReadModel
from streams.actions import Action, ActionType, handling_of
from streams.health_change import SignalRecord
from streams.settings import ApiIdentity, Settings

SESSION_COOKIE = "telltale_session"
SESSION_SECONDS = 30 * 86_400
BAND_COLOURS: dict[str, str] = {Band.HEALTHY: "#1f9d55", Band.WATCH: "#c98a06",
                               Band.AT_RISK: "#d64545"}
DEFAULT_BANDS = Bands()
ENGLISH = translator()
MAX_FORM_BYTES = 16 * 1024

BEARER_NONCE = "bearer"
"""Session nonce of a request signed in by its Authorization header (no cookie)."""


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in, with which token, and the nonce of this sign-in (a new one each
    time), from which the CSRF token of its forms is derived."""

    token: str
    identity: ApiIdentity
    nonce: str

    @property
    def csrf(self) -> str:
        # Keyed by the token, which a cross-site page can neither read nor guess.
        return hmac.new(self.token.encode(), f"csrf:{self.nonce}".encode(),
                        hashlib.sha256).hexdigest()

    def field(self) -> str:
        return f'<input type="hidden" name="csrf" value="{e(self.csrf)}">'

    def cookie_value(self) -> str:
        return f"{self.nonce}.{self.token}"


def safe_next(target: Any) -> str:
    """A local path to go back to after a form (anything else: /today)."""
    text = str(target or "")
    parts = urlsplit(text)
    if (not text.startswith("/") or text.startswith("//") or "\\" in text or parts.scheme
            or parts.netloc or any(ord(c) < 32 for c in text)):
        return "/today"
    return text


_templates: dict[str, Template] = {}


def template(name: str) -> Template:
    if name not in _templates:
        text = resources.files("agents").joinpath("templates", name).read_text("utf-8")
        _templates[name] = Template(text)
    return _templates[name]


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def money(amount: Any, t: Translator = ENGLISH) -> str:
    """An amount in the workspace's currency, as the reader's locale writes it, to the
    unit ($12,000 / 12 000 €); "—" when unknown."""
    if amount is None:
        return "—"
    return t.money(round(float(amount)))


def signed(n: Any) -> str:
    value = int(n or 0)
    css = "down" if value < 0 else "up" if value > 0 else ""
    text = f"+{value}" if value > 0 else f"−{-value}" if value < 0 else "0"
    return f'<span class="{css}">{text}</span>'


def account_href(account_id: str) -> str:
    return "/accounts/" + quote(account_id, safe="")


def score_badge(score: object, band_value: object, t: Translator = ENGLISH) -> str:
    band = str(band_value or "")
    return (f'<span class="score band-{e(band)}" title="{e(band_label(band, t))}">'
            f'{e(score)}</span>')


def _user_badge(user: Mapping[str, Any], t: Translator = ENGLISH) -> str:
    score = user.get("score")
    return "—" if score is None else score_badge(score, user.get("band"), t)


def signal_chips(signals: Sequence[SignalRecord], with_text: bool = False,
                 t: Translator = ENGLISH) -> str:
    """One chip per signal with its sentence (said again in the reader's language from
    its type and numbers), or per signal type with a count."""
    chips = []
    if with_text:
        for sig in signals:
            said = explain.signal_again({"type": sig.type, "detail": sig.detail,
                                         "text": sig.text}, t)
            chips.append(f'<span class="chip {e(sig.severity)}">{e(said)}</span>')
        return "".join(chips)
    counts: dict[tuple[str, str], int] = {}
    for sig in signals:
        pair = (sig.type, str(sig.severity))
        counts[pair] = counts.get(pair, 0) + 1
    for (kind, severity), n in counts.items():
        label = kind.replace("_", " ") + (f" ×{n}" if n > 1 else "")
        chips.append(f'<span class="chip {e(severity)}">{e(label)}</span>')
    return "".join(chips)


def renewal_text(doc: AccountDocument, today: int | None = None,
                 t: Translator = ENGLISH) -> str:
    """The renewal date and the days to it on ``today`` (epoch day; default: the day the
    page is read), not the days stored with the last change."""
    day = epoch_day(time.time()) if today is None else today
    days = days_to_renewal(doc, day)
    if days is None:
        return "—"
    try:
        when = t.on(date.fromisoformat(str(doc.renewal_date)[:10]))
    except ValueError:
        when = str(doc.renewal_date)[:10]
    if days == 0:
        return t.pgettext("page", "%(date)s (today)", date=when)
    if days < 0:
        return t.npgettext("page", "%(date)s (%(count)s day ago)", "%(date)s (%(count)s days ago)",
                           -days, date=when)
    return t.pgettext("page", "%(date)s (%(days)s)", date=when,
                      days=t.ngettext("%(count)s day", "%(count)s days", days))


def render(title: str, session: Session | None, content: str,
           status: int = 200, t: Translator = ENGLISH) -> web.Response:
    label = ""
    if session is not None:
        who = session.identity.person
        label = t.pgettext("page", "Workspace %(workspace)s",
                           workspace=session.identity.workspace) + (f" · {who}" if who else "")
    sign_out = e(t.pgettext("page", "Sign out"))
    signout = ("" if session is None or session.nonce == BEARER_NONCE else
               f'<form class="inline" method="post" action="/signout">{session.field()}'
               f'<button type="submit">{sign_out}</button></form>')
    body = template("base.html").substitute(
        title=e(title), workspace_label=e(label), signout=signout, content=content,
        lang=e(t.language), today_link=e(t.pgettext("page", "Today")))
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Language": t.language, "Vary": "Accept-Language"})


def history_chart(points: Sequence[Mapping[str, Any]], bands: Bands = DEFAULT_BANDS,
                  width: int = 720, height: int = 220, t: Translator = ENGLISH) -> str:
    """Score (0-100) over time as inline SVG, with the zones of ``bands`` shaded."""
    if not points:
        none = t.pgettext("page", "No history yet.")
        return f'<p class="empty">{e(none)}</p>'
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

    label = t.pgettext("page", "Score history")
    parts = [f'<svg class="history" role="img" aria-label="{e(label)}" '
             f'viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg">']
    zones = ((bands.healthy, 100, Band.HEALTHY), (bands.watch, bands.healthy, Band.WATCH),
             (0, bands.watch, Band.AT_RISK))
    for low, high, band in zones:
        parts.append(f'<rect x="{left}" y="{y(high):.1f}" width="{plot_w}" '
                     f'height="{y(low) - y(high):.1f}" fill="{BAND_COLOURS[band]}" '
                     f'fill-opacity="0.07"/>')
    for level in (0, bands.watch, bands.healthy, 100):
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


def _mini_list(docs: Sequence[AccountDocument], detail: Callable[[AccountDocument], str],
               t: Translator = ENGLISH) -> str:
    if not docs:
        none = t.pgettext("page", "None right now.")
        return f'<div class="card empty">{e(none)}</div>'
    rows = "".join(
        f'<tr><td><a class="account" href="{e(account_href(d.account_id))}">'
        f'{e(d.account_name or d.account_id)}</a></td>'
        f'<td class="num">{detail(d)}</td></tr>' for d in docs)
    return f"<table><tbody>{rows}</tbody></table>"


class Page:
    def __init__(self, settings: Settings, readmodel: ReadModel, *,
                 publish: Publish | None = None, playbooks: Sequence[Playbook] | None = None,
                 render_reason: Render = core.render,
                 workspaces: Workspaces | None = None) -> None:
        self.readmodel = readmodel
        self.settings = settings
        self.tokens = settings.api_identities()
        self.api = Api(settings, readmodel, playbooks, publish=publish, render=render_reason,
                       workspaces=workspaces)
        self.workspaces = workspaces  # a workspace's own [scoring]: bands, locale, playbooks
        self.render_reason = render_reason
        self.secure_cookie = settings.public_url.lower().startswith("https://")
        config = load_config(settings.scoring_config)
        self.bands = config.bands
        self.locale: LocaleSettings = config.locale

    def _scoring_of(self, workspace: str | None) -> tuple[Bands, LocaleSettings]:
        """The band limits and locale of ``workspace``'s own scoring config, else the
        shared ones (before sign-in, when no workspace is known)."""
        own = (self.workspaces.get(workspace)
               if self.workspaces is not None and workspace is not None else None)
        if own is not None:  # its own [scoring], or the shared one in its time zone
            return own.scoring.bands, own.scoring.locale
        return self.bands, self.locale

    def translator(self, request: web.Request, workspace: str | None = None) -> Translator:
        """The reader's language: the browser's ``Accept-Language`` when it asks for one
        Telltale speaks, else the workspace's; amounts and dates in the workspace's
        currency and time zone."""
        locale = self._scoring_of(workspace)[1]
        language = negotiate(request.headers.get("Accept-Language"), locale.language)
        return translator(language, locale.currency, locale.time_zone)

    def _render_reason(self, t: Translator) -> Render:
        """The reasons' renderer for ``t``: the one given (English) or the catalogue's."""
        if t.language == "en" and t.currency == "USD":
            return self.render_reason
        return renderer(t)

    @property
    def playbooks(self) -> Sequence[Playbook]:
        return self.api.playbooks

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.root, allow_head=False),
            web.get("/static/telltale.css", self.stylesheet),
            web.post("/signin", self.signin),
            web.post("/signout", self.signout),
            web.get("/today", self._authed(self.today)),
            web.get("/accounts/{account_id}", self._authed(self.account)),
            web.post("/accounts/{account_id}/actions", self._authed(self.act)),
        ]

    async def root(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/today")

    async def stylesheet(self, request: web.Request) -> web.Response:
        css = resources.files("agents").joinpath("templates", "telltale.css").read_text("utf-8")
        return web.Response(text=css, content_type="text/css", charset="utf-8")

    # ------------------------------------------------------------------ signing in

    def session(self, request: web.Request) -> Session | None:
        header = request.headers.get("Authorization")
        identity = token_identity(self.tokens, header)
        if identity is not None and header is not None:
            return Session(header.partition(" ")[2].strip(), identity, BEARER_NONCE)
        nonce, _, token = request.cookies.get(SESSION_COOKIE, "").partition(".")
        if not nonce or not token or nonce == BEARER_NONCE:
            return None
        identity = token_identity(self.tokens, f"Bearer {token}")
        return None if identity is None else Session(token, identity, nonce)

    def _authed(self, handler: Callable[[web.Request, Session], Awaitable[web.Response]]
                ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            t = self.translator(request)
            if "token" in request.query:
                return self._login(request, t.pgettext(
                    "page", "A token in the address is not accepted (it would stay in logs "
                            "and history): sign in here."))
            session = self.session(request)
            if session is None:
                return self._login(request, t.pgettext(
                    "page", "Enter your Telltale API token to see your accounts."))
            if request.method == "POST":
                problem = await self._check_post(request, session)
                if problem is not None:
                    return problem
            return await handler(request, session)

        return wrapped

    async def _check_post(self, request: web.Request, session: Session) -> web.Response | None:
        """A form post must come from our own page: its origin (when the browser says it)
        and the session's CSRF token."""
        origin = request.headers.get("Origin")
        # Our own Referrer-Policy (no-referrer) makes browsers send "null" for our forms.
        allowed = {"null", f"{request.scheme}://{request.host}",
                   _origin(self.settings.public_url)}
        t = self.translator(request)
        if origin is not None and origin not in allowed:
            return self._problem(session, 403, t.pgettext(
                "page", "This form was sent from another site."), t=t)
        form = await _form(request)
        if not same_secret(session.csrf, str(form.get("csrf", ""))):
            return self._problem(session, 403, t.pgettext(
                "page", "This form has expired: reload the page and try again."), t=t)
        return None

    def _login(self, request: web.Request, message: str) -> web.Response:
        t = self.translator(request)
        target = request.rel_url.with_query(
            {k: v for k, v in request.query.items() if k != "token"})
        return self._login_page(t, message, safe_next(str(target)))

    def _login_page(self, t: Translator, message: str, target: str) -> web.Response:
        sign_in = t.pgettext("page", "Sign in")
        content = template("login.html").substitute(
            message=e(message), next=e(target), sign_in=e(sign_in),
            token_label=e(t.pgettext("page", "API token")))
        return render(sign_in, None, content, status=401, t=t)

    async def signin(self, request: web.Request) -> web.Response:
        form = await _form(request)
        token = str(form.get("token", "")).strip()
        identity = token_identity(self.tokens, f"Bearer {token}") if token else None
        if identity is None:
            t = self.translator(request)
            return self._login_page(t, t.pgettext("page", "That token is not known here."),
                                    safe_next(form.get("next")))
        session = Session(token, identity, secrets.token_hex(16))
        response = web.HTTPSeeOther(safe_next(form.get("next")))
        response.set_cookie(SESSION_COOKIE, session.cookie_value(), httponly=True,
                            samesite="Strict", path="/", max_age=SESSION_SECONDS,
                            secure=self.secure_cookie or request.scheme == "https")
        raise response

    async def signout(self, request: web.Request) -> web.Response:
        session = self.session(request)
        if session is not None:
            problem = await self._check_post(request, session)
            if problem is not None:
                return problem
        response = web.HTTPSeeOther("/today")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    def _problem(self, session: Session | None, status: int, message: str,
                 back: str = "/today", t: Translator = ENGLISH) -> web.Response:
        title = t.pgettext("page", "Not done")
        back_label = t.pgettext("page", "← Back")
        content = (f'<p class="sub"><a href="{e(back)}">{e(back_label)}</a>'
                   f'</p><h1>{e(title)}</h1><p>{e(message)}</p>')
        return render(title, session, content, status=status, t=t)

    # ------------------------------------------------------------------ acting

    async def act(self, request: web.Request, session: Session) -> web.Response:
        form = await _form(request)
        account_id = request.match_info["account_id"]
        back = safe_next(form.get("next") or f"/accounts/{quote(account_id, safe='')}")
        fields: dict[str, Any] = {"type": form.get("type")}
        kind = str(form.get("type"))
        if kind == ActionType.SNOOZE:
            fields["until"] = form.get("until")
        elif kind == ActionType.ASSIGN:
            fields["assignee"] = str(form.get("assignee") or "").strip() or None
        elif kind == ActionType.NOTE:
            fields["text"] = str(form.get("text") or "").replace("\r\n", "\n")
        elif kind == ActionType.STEP_DONE:
            fields["playbook"] = form.get("playbook")
            step = str(form.get("step") or "")
            fields["step"] = int(step) if step.isdigit() else step
        try:
            await self.api.act(session.identity.workspace, account_id,
                               session.identity.person or ANONYMOUS_ACTOR, fields)
        except Problem as problem:
            return self._problem(session, problem.response.status, str(problem), back,
                                 self.translator(request))
        raise web.HTTPSeeOther(back)

    # ------------------------------------------------------------------ the pages

    async def today(self, request: web.Request, session: Session) -> web.Response:
        workspace = session.identity.workspace
        t = self.translator(request, workspace)
        wanted = request.query.get("owner")
        owner = session.identity.person if wanted == "me" else wanted
        everyone = await self.readmodel.worklist(workspace,
                                                 playbooks=self.api.playbooks_for(workspace))
        listed = [i for i in everyone.team if owner is None or i.entry.owner == owner]
        headline = _headline(t, len(listed), wanted, owner)
        if wanted == "me" and session.identity.person is None:
            headline = t.pgettext("page", "This token names no person, so it has no accounts "
                                          "of its own.")
        here = str(request.rel_url)
        rows = "\n".join(self._row(i, session, here, t) for i in listed) or _empty_row(
            7, t.pgettext("page", "Nothing needs attention."))
        renewals = await self.readmodel.accounts(
            workspace, await self.readmodel.ranking(workspace, "renewals:at_risk", 5))
        drops = await self.readmodel.accounts(
            workspace, await self.readmodel.ranking(workspace, "drops", 5))
        leads = await self.readmodel.accounts(
            workspace, await self.readmodel.ranking(workspace, "expansion", 5))
        content = template("today.html").substitute(
            headline=e(headline), rows=rows,
            filters=_filters(everyone.team, session, wanted, t),
            renewals=_mini_list(
                renewals, lambda d: f"{e(renewal_text(d, t=t))} · {e(money(d.arr, t))}", t),
            drops=_mini_list(drops, lambda d: signed(d.change_7d), t),
            expansion=_mini_list(leads, lambda d: e(money(d.arr, t)), t),
            **_today_labels(t),
        )
        return render(t.pgettext("page", "Today"), session, content, t=t)

    def _row(self, item: Listed, session: Session, here: str,
             t: Translator = ENGLISH) -> str:
        doc, entry = item.doc, item.entry
        return (
            f'<tr><td><a class="account" href="{e(account_href(entry.account_id))}">'
            f'{e(doc.account_name or entry.account_id)}</a>'
            f'{self._reasons(entry, t)}</td>'
            f'<td class="num">{score_badge(doc.score, doc.band, t)}<br>{signed(doc.change_7d)}'
            f'</td>'
            f'<td>{e(_owner_label(item, t))}</td>'
            f'<td class="num">{e(money(doc.arr, t))}</td>'
            f'<td class="num">{e(renewal_text(doc, entry.today, t))}</td>'
            f'<td>{_steps(entry, t)}</td>'
            f'<td>{self._forms(entry, session, here, t)}</td></tr>')

    def _reasons(self, entry: WorklistEntry, t: Translator = ENGLISH) -> str:
        say = self._render_reason(t)
        new = e(t.pgettext("page", "new"))
        items = "".join(
            f'<li class="sev-{e(r.severity.value)}">'
            f'{e(reason_text(r, entry.today, say, t))}'
            f'{f"<span class=new>{new}</span>" if r.key in entry.new else ""}</li>'
            for r in entry.reasons)
        return f'<ul class="reasons">{items}</ul>' if items else ""

    def _off_list(self, doc: AccountDocument, actions: Sequence[Action],
                  t: Translator = ENGLISH) -> str:
        """Why an account is on no list today, with the reasons it still has."""
        attention = doc.attention_track.attention
        if attention is None or not attention.needed:
            nothing = t.pgettext("page", "Nothing needs attention on this account today.")
            return f'<p class="empty">{e(nothing)}</p>'
        today = epoch_day(time.time())
        handling = handling_of(actions)
        if handling.snoozed_until is not None and today < handling.snoozed_until:
            why = t.pgettext("page", "Snoozed until %(date)s.", date=t.day(handling.snoozed_until))
        else:
            why = t.pgettext("page", "Acknowledged: back on the list when a new or worse "
                                     "reason appears.")
        say = self._render_reason(t)
        items = "".join(f"<li>{e(reason_text(r, today, say, t))}</li>"
                        for r in attention.reasons)
        return f'<p class="sub">{e(why)}</p><ul class="reasons">{items}</ul>'

    def _forms(self, entry: WorklistEntry, session: Session, here: str,
               t: Translator = ENGLISH) -> str:
        action = e(f"{account_href(entry.account_id)}/actions")
        hidden = f'{session.field()}<input type="hidden" name="next" value="{e(here)}">'

        def form(kind: str, body: str, label: str) -> str:
            return (f'<form method="post" action="{action}" class="act-{kind}">{hidden}'
                    f'<input type="hidden" name="type" value="{kind}">{body}'
                    f'<button type="submit">{e(label)}</button></form>')

        tomorrow = iso_day(entry.today + 1)
        steps = "".join(
            form("step_done", f'<input type="hidden" name="playbook" value="{e(s.playbook.name)}">'
                              f'<input type="hidden" name="step" value="{s.index}">',
                 t.pgettext("page", "Done: %(step)s", step=s.step.title))
            for s in entry.open_steps)
        until = e(t.pgettext("page", "until"))
        assignee = e(t.pgettext("page", "assignee email (empty: the owner)"))
        note = e(t.pgettext("page", "Note"))
        act = e(t.pgettext("page", "Act"))
        return (
            f'<details class="act"><summary>{act}</summary>'
            + form("acknowledge", "", t.pgettext("page", "Acknowledge"))
            + form("snooze", f'<label>{until} <input type="date" name="until" min="{tomorrow}" '
                             f'value="{e(iso_day(entry.today + 7))}" required></label>',
                   t.pgettext("page", "Snooze"))
            + form("assign", f'<input type="email" name="assignee" placeholder="{assignee}" '
                             'maxlength="256">', t.pgettext("page", "Assign"))
            + form("note", '<textarea name="text" maxlength="2000" required '
                           f'placeholder="{note}"></textarea>', t.pgettext("page", "Add note"))
            + steps + "</details>")

    async def account(self, request: web.Request, session: Session) -> web.Response:
        workspace = session.identity.workspace
        t = self.translator(request, workspace)
        account_id = request.match_info["account_id"]
        doc = await self.readmodel.account(workspace, account_id)
        if doc is None:
            title = t.pgettext("page", "Not found")
            missing = t.pgettext("page", "No account %(account)s in this workspace.",
                                 account=account_id)
            back = t.pgettext("page", "← Today")
            content = (f'<p class="sub"><a href="/today">{e(back)}'
                       f'</a></p><h1>{e(title)}</h1><p>{e(missing)}</p>')
            return render(title, session, content, status=404, t=t)
        history = await self.readmodel.history(workspace, account_id)
        users = await self.readmodel.users(workspace, doc.user_ids)
        actions = await self.readmodel.actions(workspace, account_id)
        entry = await self.readmodel.listing(workspace, account_id,
                                             playbooks=self.api.playbooks_for(workspace))
        band = str(doc.band)
        stages = " · ".join(x for x in (
            band_label(band, t),
            t.pgettext("page", "forecast %(stage)s", stage=stage_label(doc.forecast, t))
            if doc.forecast else "",
            stage_label(str(doc.lifecycle), t) if doc.lifecycle else "",
            t.pgettext("page", "owner %(owner)s", owner=doc.owner) if doc.owner
            else t.pgettext("page", "unassigned"),
        ) if x)
        kpis = "".join(
            f'<div class="card kpi"><div class="label">{e(label)}</div>'
            f'<div class="value">{value}</div></div>'
            for label, value in (
                (t.pgettext("page", "7-day change"), signed(doc.change_7d)),
                (t.pgettext("page", "ARR"), e(money(doc.arr, t))),
                (t.pgettext("page", "Renewal"), e(renewal_text(doc, t=t))),
                (t.pgettext("page", "Segment"),
                 e(str(doc.segment or "—").replace("_", "-"))),
            ))
        components = "\n".join(
            f'<tr><td>{e(component_label(name, t))}</td>'
            f'<td>{e(_component_words(name, c.get("detail"), t))}</td>'
            f'<td class="num">{e(_number(c.get("points")))} / {e(_number(c.get("weight")))}'
            f'</td>'
            f'<td><meter class="earned" min="0" max="100" value="{_pct(c)}">{_pct(c)}%</meter>'
            f'</td></tr>'
            for name, c in sorted(doc.components.items())
            if c.get("weight")  # a component the config weighs at nothing says nothing
        ) or _empty_row(4, t.pgettext("page", "No components."))
        power = e(t.pgettext("page", "★ power user"))
        never = e(t.pgettext("page", "never"))
        user_rows = "\n".join(
            f'<tr><td>{e(u.get("name") or u.get("user_id"))}</td><td>{e(u.get("email"))}</td>'
            f'<td class="num">{_user_badge(u, t)}</td>'
            f'<td>{power if u.get("power_user") else ""}</td>'
            f'<td>{e(_seen(u.get("last_seen"), t)) if u.get("last_seen") else never}</td></tr>'
            for u in sorted(users, key=lambda u: -(u.get("score") or 0))
        ) or _empty_row(5, t.pgettext("page", "No users seen yet."))
        signals = doc.active_signals
        notes = [a for a in actions if a.type is ActionType.NOTE]
        next_step = t.pgettext("page", "Next step:")
        no_notes = t.pgettext("page", "No notes yet.")
        content = template("account.html").substitute(
            name=e(doc.account_name or account_id), band=e(band),
            score=e(doc.score), stages=e(stages),
            explanation=e(self._explanation(doc, t)),
            reasons=(self._reasons(entry, t) if entry is not None else
                     self._off_list(doc, actions, t)),
            steps=(f"<p>{e(next_step)} {_steps(entry, t)}</p>"
                   if entry is not None and entry.open_steps else ""),
            actions="" if entry is None else self._forms(entry, session, str(request.rel_url),
                                                         t),
            signals=(f'<p class="chips">{signal_chips(signals, with_text=True, t=t)}</p>'
                     if signals else ""),
            kpis=kpis, chart=history_chart(history, self._scoring_of(workspace)[0], t=t),
            components=components,
            notes="".join(
                f'<div class="card spaced-sm"><p class="note">{e(a.text)}</p>'
                f'<p class="sub">{e(a.actor)} · {e(_when(a.at, t))}</p></div>'
                for a in reversed(notes))
            or f'<p class="empty">{e(no_notes)}</p>',
            history="\n".join(
                f"<tr><td>{e(_when(a.at, t))}</td><td>{e(a.actor)}</td>"
                f"<td>{e(action_in_words(a, t))}</td></tr>" for a in reversed(actions))
            or _empty_row(3, t.pgettext("page", "Nobody has acted on this account yet.")),
            users=user_rows, **_account_labels(t))
        return render(str(doc.account_name or account_id), session, content, t=t)

    def _explanation(self, doc: AccountDocument, t: Translator) -> str:
        """The last change's explanation in the reader's language: as written when it was
        written in that language, else said again from the change's structured fields."""
        stored = doc.explanation
        if t.language == str(doc.stored.get("language") or "en") or not stored:
            return stored
        try:
            return explain.retell(doc.stored, t)
        except (KeyError, TypeError, ValueError):
            return stored


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _form(request: web.Request) -> Mapping[str, Any]:
    """The posted form (read once per request, at most :data:`MAX_FORM_BYTES`)."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
    return await request.post()


def _when(at: float, t: Translator = ENGLISH) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    if t.language == "en" and t.time_zone == "UTC":
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return t.datetime(moment, "short")


def _seen(last_seen: Any, t: Translator) -> str:
    """A user's last-seen time as a date on the workspace's clock."""
    try:
        moment = datetime.fromisoformat(str(last_seen).replace("Z", "+00:00"))
    except ValueError:
        return str(last_seen)[:10]
    if t.language == "en" and t.time_zone == "UTC":
        return str(last_seen)[:10]
    return t.date(moment)


def _empty_row(columns: int, text: str) -> str:
    return f'<tr><td colspan="{columns}" class="empty">{e(text)}</td></tr>'


def _headline(t: Translator, n: int, wanted: str | None, owner: str | None) -> str:
    """How many accounts of the list need attention today."""
    if wanted == "me":
        if not n:
            return t.pgettext("page", "No account of your accounts needs attention today.")
        return t.npgettext("page", "%(count)s of your accounts needs attention today, most "
                                   "urgent first.",
                           "%(count)s of your accounts need attention today, most urgent "
                           "first.", n)
    if owner:
        if not n:
            return t.pgettext("page", "No account of %(owner)s's accounts needs attention "
                                      "today.", owner=owner)
        return t.npgettext("page", "%(count)s of %(owner)s's accounts needs attention today, "
                                   "most urgent first.",
                           "%(count)s of %(owner)s's accounts need attention today, most "
                           "urgent first.", n, owner=owner)
    if not n:
        return t.pgettext("page", "No account needs attention today.")
    return t.npgettext("page", "%(count)s account needs attention today, most urgent first.",
                       "%(count)s accounts need attention today, most urgent first.", n)


def _today_labels(t: Translator) -> dict[str, str]:
    """The fixed words of ``today.html``, escaped."""
    return {key: e(text) for key, text in (
        ("l_today", t.pgettext("page", "Today")),
        ("l_account", t.pgettext("page", "Account and why")),
        ("l_health", t.pgettext("page", "Health")),
        ("l_owner", t.pgettext("page", "Owner")),
        ("l_arr", t.pgettext("page", "ARR")),
        ("l_renewal", t.pgettext("page", "Renewal")),
        ("l_next", t.pgettext("page", "Next step")),
        ("l_act", t.pgettext("page", "Act")),
        ("l_renewals", t.pgettext("page", "Renewals at risk")),
        ("l_drops", t.pgettext("page", "Largest drops this week")),
        ("l_expansion", t.pgettext("page", "Expansion leads")),
    )}


def _account_labels(t: Translator) -> dict[str, str]:
    """The fixed words of ``account.html``, escaped."""
    return {key: e(text) for key, text in (
        ("l_back", t.pgettext("page", "← Today")),
        ("l_why", t.pgettext("page", "Why it needs attention")),
        ("l_history", t.pgettext("page", "Score history")),
        ("l_components", t.pgettext("page", "Components")),
        ("l_component", t.pgettext("page", "Component")),
        ("l_words", t.pgettext("page", "In words")),
        ("l_points", t.pgettext("page", "Points / weight")),
        ("l_earned", t.pgettext("page", "Earned")),
        ("l_notes", t.pgettext("page", "Notes")),
        ("l_actions", t.pgettext("page", "History of actions")),
        ("l_when", t.pgettext("page", "When")),
        ("l_who", t.pgettext("page", "Who")),
        ("l_what", t.pgettext("page", "What")),
        ("l_users", t.pgettext("page", "Users")),
        ("l_user", t.pgettext("page", "User")),
        ("l_email", t.pgettext("page", "Email")),
        ("l_health", t.pgettext("page", "Health")),
        ("l_power", t.pgettext("page", "Power user")),
        ("l_seen", t.pgettext("page", "Last seen")),
    )}


def _component_words(name: str, detail: Any, t: Translator) -> str:
    """A component in words: the page's own summary in English, the core's sentence for
    the component (``explain.weakest_text``) in other languages."""
    if t.language == "en" or not isinstance(detail, Mapping):
        return component_in_words(name, detail)
    try:
        return explain.weakest_text(name, dict(detail), t)
    except (KeyError, TypeError, ValueError):
        return component_in_words(name, detail)


def _owner_label(item: Listed, t: Translator = ENGLISH) -> str:
    """The owner's name when the account is with its owner, else the assignee."""
    if item.entry.owner is None:
        return t.pgettext("page", "Unassigned")
    if item.entry.owner == item.doc.owner_key:
        return str(item.doc.owner or item.entry.owner)
    return t.pgettext("page", "%(owner)s (assigned)", owner=item.entry.owner)


def _filters(team: Sequence[Listed], session: Session, wanted: str | None,
             t: Translator = ENGLISH) -> str:
    counts: dict[str, tuple[str, int]] = {}
    for item in team:
        if item.entry.owner is not None:
            label, n = counts.get(item.entry.owner, (_owner_label(item, t), 0))
            counts[item.entry.owner] = (label, n + 1)
    links = [(t.pgettext("page", "Whole team"), "/today", wanted is None)]
    if session.identity.person is not None:
        links.append((t.pgettext("page", "My accounts"), "/today?owner=me", wanted == "me"))
    links += [(f"{label} ({n})", "/today?" + urlencode({"owner": owner}), wanted == owner)
              for owner, (label, n) in sorted(counts.items(), key=lambda kv: kv[1][0])]
    return "".join(f'<a href="{e(href)}"{" class=current" if current else ""}>{e(label)}</a>'
                   for label, href, current in links)


def _steps(entry: WorklistEntry, t: Translator = ENGLISH) -> str:
    """Each open playbook step: what, in which playbook, and by when."""
    parts = []
    for step in entry.open_steps:
        late = step.overdue(entry.today)
        title = (f'<span class="overdue">{e(step.step.title)}</span>' if late
                 else e(step.step.title))
        when = (t.pgettext("page", "%(playbook)s, was due %(date)s", playbook=step.playbook.title,
                           date=t.day(step.due_day)) if late else
                t.pgettext("page", "%(playbook)s, due %(date)s", playbook=step.playbook.title,
                           date=t.day(step.due_day)))
        parts.append(f'{title} <span class="sub">({e(when)})</span>')
    return "<br>".join(parts) or "—"


def action_in_words(action: Action, t: Translator = ENGLISH) -> str:
    """What an action did, for the history table."""
    if action.type is ActionType.ACKNOWLEDGE:
        return t.npgettext("page", "Acknowledged %(count)s reason",
                           "Acknowledged %(count)s reasons", len(action.reasons))
    if action.type is ActionType.SNOOZE:
        return t.pgettext("page", "Snoozed until %(date)s",
                          date=t.on(action.until) if action.until else "?")
    if action.type is ActionType.ASSIGN:
        return (t.pgettext("page", "Assigned to %(who)s", who=action.assignee)
                if action.assignee else t.pgettext("page", "Gave back to the account owner"))
    if action.type is ActionType.NOTE:
        return t.pgettext("page", "Added a note")
    return t.pgettext("page", "Marked step %(step)s of %(playbook)s done",
                      step=(action.step or 0) + 1, playbook=str(action.playbook))


def component_in_words(name: str, detail: Any) -> str:
    """A component's numbers as a sentence, e.g. ``12 of 30 seats active in the last 30
    days``; details of unknown shape fall back to :func:`describe_detail`."""
    if not isinstance(detail, Mapping):
        return describe_detail(detail)
    d = detail
    active = d.get("active", d.get("active_users"))
    if "seats" in d and isinstance(active, int | float) and not isinstance(active, bool):
        text = f"{_number(active)} of {_number(d['seats'])} seats active in the last 30 days"
        previous = d.get("previous_active")
        if isinstance(previous, int | float) and previous != active:
            text += f" (the 30 days before: {_number(previous)})"
        return text
    if "power_users" in d:
        quiet = ", ".join(f"{p.get('name') or p.get('user_id')} ({p.get('days')} days)"
                          for p in d.get("inactive") or [] if isinstance(p, Mapping))
        if d["power_users"]:
            text = (f"{_number(d.get('active') or 0)} of {_number(d['power_users'])} "
                    f"power users active")
        else:
            text = (f"no power users; {_number(d.get('recent') or 0)} of "
                    f"{_number(d.get('users') or 0)} users active recently")
        return text + (f"; quiet: {quiet}" if quiet else "")
    if "points_30d" in d:
        text = f"{_number(d['points_30d'])} activity points in the last 30 days"
        if d.get("per_seat_week") is not None:
            text += f", {_number(d['per_seat_week'])} per seat a week"
        for key, words in (("trend_pct", "against the 60 days before"),
                           ("week_over_week_pct", "week over week")):
            if d.get(key) is not None:
                text += f", {_percent(d[key])} {words}"
        return text
    if "per_month" in d:
        if d["per_month"] is None:
            return "no use yet"
        return (f"used on {_number(d['per_month'])} days a month over the last "
                f"{_number(d.get('days'))} days")
    if "events_28d" in d:
        text = f"{_number(d['events_28d'])} core-feature uses in 28 days"
        if d.get("previous_28d") is not None:
            text += f" (the 28 days before: {_number(d['previous_28d'])})"
        return text
    if "open" in d or "open_tickets" in d:
        open_ = d.get("open", d.get("open_tickets")) or 0
        parts = [f"{_number(open_)} open ticket{'s' if open_ != 1 else ''}"]
        if d.get("aged"):
            parts.append(f"{_number(d['aged'])} open long (oldest {_number(d.get('oldest_days'))}"
                         f" days)")
        if d.get("recent"):
            parts.append(f"{_number(d['recent'])} opened recently")
        if d.get("spike"):
            parts.append("a spike of new tickets")
        if d.get("low_csat") is not None:
            parts.append(f"low satisfaction ({_number(d['low_csat'])})")
        return ", ".join(parts)
    if "risk" in d:
        parts = []
        if d.get("payment_failed") is not None:
            parts.append(f"a payment of {money(d['payment_failed'])} failed")
        if isinstance(d.get("downgrade"), list) and len(d["downgrade"]) == 2:
            parts.append(f"downgraded from {d['downgrade'][0]} to {d['downgrade'][1]}")
        if isinstance(d.get("seat_reduction"), list) and len(d["seat_reduction"]) == 2:
            parts.append(f"seats cut from {d['seat_reduction'][0]} to {d['seat_reduction'][1]}")
        if d.get("cancelled"):
            parts.append("cancellation requested")
        return "; ".join(parts) or "no billing risk"
    if "nps" in d and isinstance(d["nps"], list):
        answers = ", ".join(str(v) for v in d["nps"])
        return f"NPS answers: {answers}" if answers else "no NPS answers"
    return describe_detail(d)


def _percent(value: Any) -> str:
    number = float(value)
    return f"{'+' if number > 0 else ''}{_number(number)}%"


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
                    with_api: bool = True, playbooks: Sequence[Playbook] | None = None,
                    render_reason: Render = core.render,
                    workspaces: Workspaces | None = None) -> web.Application:
    """A stand-alone aiohttp application serving the page (and the API by default)."""
    from agents.api import standalone_app

    def routes(model: ReadModel, publish: Publish) -> list[web.RouteDef]:
        page = Page(settings, model, publish=publish, playbooks=playbooks,
                    render_reason=render_reason, workspaces=workspaces)
        return page.routes() + page.api.routes() if with_api else page.routes()

    return standalone_app(settings, readmodel, routes)


def register(app: Any, settings: Settings, readmodel: ReadModel | None = None) -> Page:
    """Serve the page from the Faust worker's web server."""
    return serve_site_from_worker(app, settings, readmodel, Page)
