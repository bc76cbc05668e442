"""Slack incoming webhooks: Block Kit messages for health changes and the daily digest.

A message carries the account, score and delta, band, the plain-language reason, the top
signals, the owner mention and a button to the account page. Limits follow Block Kit
(header text 150 characters, section text 3,000, button text 75, URL 3,000).

Everything taken from a change is event data, so none of it may become Slack markup: every
such text, in blocks and in the fallback ``text`` alike, goes through :func:`escape_mrkdwn`
(a name ``<!channel>`` arrives as the literal text), and a mention is made only of a value
that is strictly a Slack user id (``streams/identifiers.py``); anything else is shown as
the owner's escaped name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from agents.sinks import DeliveryError, status_error
from scoring.labels import BAND_LABELS, STAGE_LABELS, SignalSeverity
from streams.health_change import HealthChangeRecord, SignalRecord
from streams.identifiers import is_slack_user_id

BAND_ICONS = {"healthy": ":large_green_circle:", "watch": ":large_yellow_circle:",
              "at_risk": ":red_circle:"}


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in "…" when cut; never cuts an entity such as
    ``&amp;`` in half (a lone ``&`` would be markup of its own)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def escape_mrkdwn(value: object) -> str:
    """``value`` as text with Slack's control characters (&, <, >) escaped, as Slack
    documents, so that it can never form a mention, a link or a command."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def account_url(public_url: str, account_id: str) -> str:
    return f"{public_url.rstrip('/')}/accounts/{quote(account_id, safe='')}"


def _signed(n: int) -> str:
    return f"+{n}" if n > 0 else f"−{-n}" if n < 0 else "±0"


def _money(amount: float | None) -> str:
    if amount is None:
        return "n/a"
    if amount >= 1_000_000:
        return f"${amount / 1_000_000:.1f}M"
    if amount >= 1_000:
        return f"${amount / 1_000:.0f}k"
    return f"${amount:.0f}"


def owner_mention(record: HealthChangeRecord | Mapping[str, Any]) -> str:
    """``<@U…>`` for a change or read-model document whose ``owner_slack_id`` is a Slack
    user id, else the owner's name, escaped."""
    if isinstance(record, HealthChangeRecord):
        slack_id, owner = record.owner_slack_id, record.owner
    else:
        slack_id, owner = record.get("owner_slack_id"), record.get("owner")
    if is_slack_user_id(slack_id):
        return f"<@{slack_id}>"
    return escape_mrkdwn(owner or "no owner")


def _label(labels: Mapping[str, str], value: object) -> str:
    """The display label of a known band or stage; an unknown value, escaped."""
    return labels.get(str(value)) or escape_mrkdwn(value)


def top_signals(change: HealthChangeRecord, limit: int = 3) -> list[SignalRecord]:
    """Newly started signals first, then other active ones; risk before the rest."""
    seen: set[str] = set()
    ordered: list[SignalRecord] = []
    for group in (change.signals_started, change.active_signals):
        for sig in sorted(group, key=lambda s: s.severity is not SignalSeverity.RISK):
            key = sig.key or sig.type
            if key not in seen:
                seen.add(key)
                ordered.append(sig)
    return ordered[:limit]


def change_message(change: HealthChangeRecord, public_url: str) -> dict[str, Any]:
    """The incoming-webhook payload (``text`` fallback plus ``blocks``) for one change."""
    current = change.current
    previous = change.previous
    name = escape_mrkdwn(change.account_name or change.account_id)
    score, band = current.score, current.band
    delta = change.delta
    band_text = _label(BAND_LABELS, band)
    if previous and previous.band != band:
        band_text += f" (was {_label(BAND_LABELS, previous.band)})"
    url = account_url(public_url, change.account_id)
    header = (f"{name}: health {score} ({_signed(delta)})" if previous
              else f"{name}: health {score} (first assessment)")
    explanation = escape_mrkdwn(change.explanation)
    fields = [
        f"*Band*\n{BAND_ICONS.get(band, '')} {band_text}".replace("\n ", "\n"),
        f"*Owner*\n{owner_mention(change)}",
    ]
    if current.forecast:
        renewal = change.days_to_renewal
        when = (f", renews in {escape_mrkdwn(renewal)} days" if renewal is not None else "")
        fields.append(f"*Forecast*\n{_label(STAGE_LABELS, current.forecast)}{when}")
    if current.lifecycle:
        fields.append(f"*Stage*\n{_label(STAGE_LABELS, current.lifecycle)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(header, 150),
                                    "emoji": True}},
        {"type": "section",
         "text": {"type": "mrkdwn", "text": _clip(explanation, 3000) or "Health changed."}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _clip(f, 2000)}
                                       for f in fields]},
    ]
    signals = top_signals(change)
    if signals:
        lines = "\n".join(f"• {escape_mrkdwn(s.text or s.type)}" for s in signals)
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": _clip(f"*Top signals*\n{lines}", 3000)}})
    context = [f"ARR {_money(change.arr)}"]
    if change.segment:
        context.append(escape_mrkdwn(change.segment).replace("_", "-"))
    context.append(f"7-day change {_signed(change.change_7d)}")
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": _clip(" · ".join(context), 3000)}]})
    blocks.append({"type": "actions", "elements": [{
        "type": "button", "text": {"type": "plain_text", "text": "Open account"},
        "url": url, "action_id": "open_account",
    }]})
    # The fallback is what notifications and old clients show, and Slack parses it as
    # mrkdwn too: it is built from the same escaped parts as the blocks.
    text = f"{header}, {band_text}. {explanation}"
    return {"text": _clip(text.strip(), 3000), "blocks": blocks}


def digest_message(workspace: str, accounts: Sequence[Mapping[str, Any]],
                   public_url: str, limit: int = 10) -> dict[str, Any]:
    """"N accounts need attention today", one line per account (most urgent first)."""
    n = len(accounts)
    title = (f"{n} account{'s' if n != 1 else ''} need{'s' if n == 1 else ''} attention today"
             if n else "No account needs attention today")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150)}},
    ]
    for doc in accounts[:limit]:
        name = escape_mrkdwn(doc.get("account_name") or doc["account_id"])
        url = account_url(public_url, str(doc["account_id"]))
        line = (f"*<{url}|{name}>* · {escape_mrkdwn(doc.get('score'))} "
                f"({_label(BAND_LABELS, doc.get('band'))}) · {owner_mention(doc)}\n"
                f"{escape_mrkdwn(doc.get('explanation') or '')}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(line, 3000)}})
    return list_message(title, blocks, n - limit, public_url, workspace)


def list_message(title: str, blocks: list[dict[str, Any]], more: int, public_url: str,
                 workspace: str) -> dict[str, Any]:
    """A list of accounts as one Slack message: ``blocks``, then how many ``more`` are
    on the Today page (when any), then the workspace."""
    if more > 0:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"…and {more} more on the <{public_url.rstrip('/')}"
                                       f"/today|Today page>"}]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"Workspace {escape_mrkdwn(workspace)}"}]})
    return {"text": title, "blocks": blocks}


async def post(session: aiohttp.ClientSession, webhook_url: str, payload: Mapping[str, Any],
               timeout: float = 10.0) -> None:
    """POST a message to an incoming webhook; raises DeliveryError unless Slack says 200
    (a redirect is not followed: permanent failure)."""
    try:
        async with session.post(webhook_url, json=payload, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise status_error("slack", resp.status, body, resp.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"slack unreachable: {exc!r}") from exc

