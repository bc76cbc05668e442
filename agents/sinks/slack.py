"""Slack incoming webhooks: Block Kit messages for health changes and the daily digest.

A message carries the account, score and delta, band, the plain-language reason, the top
signals, the owner mention and a button to the account page. Limits follow Block Kit
(header text 150 characters, section text 3,000, button text 75, URL 3,000).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from agents.sinks import DeliveryError, status_error

BAND_LABELS = {"healthy": "Healthy", "watch": "Watch", "at_risk": "At risk"}
BAND_ICONS = {"healthy": ":large_green_circle:", "watch": ":large_yellow_circle:",
              "at_risk": ":red_circle:"}
STAGE_LABELS = {"commit": "Commit", "best_case": "Best case", "at_risk": "At risk",
                "onboarding": "Onboarding", "adopting": "Adopting", "mature": "Mature",
                "renewal_window": "In renewal window", "churned": "Churned",
                "reactivated": "Reactivated"}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Slack mrkdwn control characters (&, <, >) escaped as Slack documents."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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


def owner_mention(change: Mapping[str, Any]) -> str:
    slack_id = change.get("owner_slack_id")
    if slack_id:
        return f"<@{slack_id}>"
    return _escape(str(change.get("owner") or "no owner"))


def top_signals(change: Mapping[str, Any], limit: int = 3) -> list[Mapping[str, Any]]:
    """Newly started signals first, then other active ones; risk before the rest."""
    seen: set[str] = set()
    ordered: list[Mapping[str, Any]] = []
    for group in (change.get("signals_started") or [], change.get("active_signals") or []):
        for sig in sorted(group, key=lambda s: s.get("severity") != "risk"):
            key = str(sig.get("key") or sig.get("type"))
            if key not in seen:
                seen.add(key)
                ordered.append(sig)
    return ordered[:limit]


def change_message(change: Mapping[str, Any], public_url: str) -> dict[str, Any]:
    """The incoming-webhook payload (``text`` fallback plus ``blocks``) for one change."""
    current = change["current"]
    previous = change.get("previous") or {}
    name = str(change.get("account_name") or change["account_id"])
    score, band = int(current["score"]), str(current["band"])
    delta = int(change.get("delta") or 0)
    band_text = BAND_LABELS.get(band, band)
    if previous and previous.get("band") and previous.get("band") != band:
        band_text += f" (was {BAND_LABELS.get(previous['band'], previous['band'])})"
    url = account_url(public_url, str(change["account_id"]))
    header = (f"{name}: health {score} ({_signed(delta)})" if previous
              else f"{name}: health {score} (first assessment)")
    fields = [
        f"*Band*\n{BAND_ICONS.get(band, '')} {band_text}".replace("\n ", "\n"),
        f"*Owner*\n{owner_mention(change)}",
    ]
    if current.get("forecast"):
        renewal = change.get("days_to_renewal")
        when = f", renews in {renewal} days" if renewal is not None else ""
        fields.append(f"*Forecast*\n{STAGE_LABELS.get(current['forecast'], current['forecast'])}"
                      f"{when}")
    if current.get("lifecycle"):
        fields.append(f"*Stage*\n{STAGE_LABELS.get(current['lifecycle'], current['lifecycle'])}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(header, 150),
                                    "emoji": True}},
        {"type": "section",
         "text": {"type": "mrkdwn", "text": _clip(_escape(str(change.get("explanation") or "")),
                                                  3000) or "Health changed."}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _clip(f, 2000)}
                                       for f in fields]},
    ]
    signals = top_signals(change)
    if signals:
        lines = "\n".join(f"• {_escape(str(s.get('text') or s.get('type')))}" for s in signals)
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": _clip(f"*Top signals*\n{lines}", 3000)}})
    context = [f"ARR {_money(change.get('arr'))}"]
    if change.get("segment"):
        context.append(str(change["segment"]).replace("_", "-"))
    context.append(f"7-day change {_signed(int(change.get('change_7d') or 0))}")
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": _clip(" · ".join(context), 3000)}]})
    blocks.append({"type": "actions", "elements": [{
        "type": "button", "text": {"type": "plain_text", "text": "Open account"},
        "url": url, "action_id": "open_account",
    }]})
    explanation = change.get("explanation") or ""
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
        name = _escape(str(doc.get("account_name") or doc["account_id"]))
        url = account_url(public_url, str(doc["account_id"]))
        owner = (f"<@{doc['owner_slack_id']}>" if doc.get("owner_slack_id")
                 else _escape(str(doc.get("owner") or "no owner")))
        line = (f"*<{url}|{name}>* · {doc.get('score')} "
                f"({BAND_LABELS.get(str(doc.get('band')), doc.get('band'))}) · {owner}\n"
                f"{_escape(str(doc.get('explanation') or ''))}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(line, 3000)}})
    if n > limit:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"…and {n - limit} more on the <{public_url.rstrip('/')}"
                                       f"/today|Today page>"}]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"Workspace {_escape(workspace)}"}]})
    return {"text": title, "blocks": blocks}


async def post(session: aiohttp.ClientSession, webhook_url: str, payload: Mapping[str, Any],
               timeout: float = 10.0) -> None:
    """POST a message to an incoming webhook; raises DeliveryError unless Slack says 200."""
    try:
        async with session.post(webhook_url, json=payload,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise status_error("slack", resp.status, body, resp.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"slack unreachable: {exc!r}") from exc


def escape_mrkdwn(text: str) -> str:
    """``&``, ``<`` and ``>`` escaped as Slack's mrkdwn wants, so that text from events can
    never become a link, a mention or markup."""
    return _escape(text)
