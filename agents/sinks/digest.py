"""Daily digests built from the worklist, as Slack messages.

Each owner with a route in the ``[owners]`` table of the notifications file
(``agents/sinks/dispatch.py``) gets their own list at their digest hour in their time zone,
as a direct message or in a channel: their most urgent accounts, each with its reasons in
words, what is new since yesterday and the open playbook step. The team's channel gets the
whole team's list at the workspace's digest hour. Everything that came from an event (names,
reasons, step titles) is escaped for mrkdwn; a mention is made only of a checked member id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from agents.sinks import DeliveryError, status_error
from agents.sinks.dispatch import SLACK_USER_ID, OwnerRoute
from agents.sinks.slack import account_url, attention_title, escape_mrkdwn, list_message
from scoring.attention import Render, reason_text, renderer
from scoring.i18n import DEFAULT_LANGUAGE, Lang, Translator, as_translator
from scoring.labels import band_label
from state.readmodel import Listed

TEAM_LIMIT = 10
"""Accounts spelt out in the team digest; the rest are counted."""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _say(render: Render, t: Translator) -> Render:
    """The reasons' renderer: the one given for English, the catalogue's otherwise."""
    return render if t.language == DEFAULT_LANGUAGE else renderer(t)


def account_section(item: Listed, public_url: str, render: Render, *,
                    with_owner: bool, language: Lang = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """One account as a Slack section: name (linked), health, owner when asked, then its
    reasons (new ones marked) and its open steps, in ``language``."""
    t = as_translator(language)
    say = _say(render, t)
    doc, entry = item.doc, item.entry
    name = escape_mrkdwn(str(doc.account_name or entry.account_id))
    url = account_url(public_url, entry.account_id)
    band = band_label(str(doc.band), t)
    head = f"*<{url}|{name}>* · {doc.score} ({escape_mrkdwn(band)})"
    if with_owner:
        slack_id = str(doc.owner_slack_id or "")
        assigned = entry.owner is not None and entry.owner != (doc.owner_email
                                                               or doc.owner)
        head += " · " + (f"<@{slack_id}>" if SLACK_USER_ID.fullmatch(slack_id) and not assigned
                         else escape_mrkdwn(str(entry.owner
                                                or t.pgettext("slack", "no owner"))))
    lines = [head]
    new_mark = " _(" + t.pgettext("slack", "new") + ")_"
    for reason in entry.reasons:
        new = new_mark if reason.key in entry.new else ""
        lines.append(f"• {escape_mrkdwn(reason_text(reason, entry.today, say, t))}{new}")
    for step in entry.open_steps:
        what = dict(step=escape_mrkdwn(step.step.title),
                    playbook=escape_mrkdwn(step.playbook.title), date=t.day(step.due_day))
        lines.append(
            t.pgettext("slack", "→ Next: %(step)s (%(playbook)s, overdue since %(date)s)", **what)
            if step.overdue(entry.today)
            else t.pgettext("slack", "→ Next: %(step)s (%(playbook)s, due %(date)s)", **what))
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), 3000)}}


def owner_digest(owner_label: str, items: Sequence[Listed], public_url: str,
                 render: Render, language: Lang = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """An owner's morning list: "N accounts need you today", most urgent first."""
    t = as_translator(language)
    title = t.npgettext("slack", "%(count)s account needs you today",
                        "%(count)s accounts need you today", len(items))
    page = t.pgettext("slack", "Today page")
    link = f"<{public_url.rstrip('/')}/today?owner=me|{page}>"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150)}},
        *(account_section(i, public_url, render, with_owner=False, language=t) for i in items),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(
            t.pgettext("slack", "Your list for %(owner)s · %(link)s",
                       owner=escape_mrkdwn(owner_label), link=link), 300)}]},
    ]
    return {"text": title, "blocks": blocks}


def team_digest(workspace: str, items: Sequence[Listed], public_url: str, render: Render,
                limit: int = TEAM_LIMIT, language: Lang = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """The whole team's list for the workspace channel: "N accounts need attention today"."""
    t = as_translator(language)
    n = len(items)
    title = attention_title(n, t)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150)}},
        *(account_section(i, public_url, render, with_owner=True, language=t)
          for i in items[:limit]),
    ]
    return list_message(title, blocks, n - limit, public_url, workspace, t)


def local_now(route: OwnerRoute, now: datetime) -> datetime:
    """``now`` (aware) on the owner's clock."""
    return now.astimezone(ZoneInfo(route.time_zone))


async def post_direct(session: aiohttp.ClientSession, api_url: str, token: str, user: str,
                      payload: dict[str, Any], timeout: float = 10.0) -> None:
    """Send ``payload`` as a direct message to member ``user`` (Slack's chat.postMessage
    with the bot token); raises DeliveryError unless Slack says ok."""
    if not SLACK_USER_ID.fullmatch(user):
        raise DeliveryError(f"not a Slack member id: {user[:40]!r}", retryable=False)
    try:
        async with session.post(f"{api_url}/chat.postMessage",
                                json={**payload, "channel": user},
                                headers={"Authorization": f"Bearer {token}"},
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise status_error("slack", resp.status, body, resp.headers.get("Retry-After"))
            answer = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise DeliveryError(f"slack unreachable: {exc!r}") from exc
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = str(answer.get("error") if isinstance(answer, dict) else answer)[:100]
        raise DeliveryError(f"slack refused the direct message: {error}",
                            retryable=error in {"ratelimited", "internal_error",
                                                "service_unavailable"})
