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
from scoring import explain
from scoring.i18n import (
    DEFAULT_CURRENCY,
    DEFAULT_LANGUAGE,
    Translator,
    as_translator,
    check_currency,
    check_language,
    translator,
)
from scoring.labels import BAND_LABELS, STAGE_LABELS, SignalSeverity, band_label, stage_label
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


def _money(amount: float | None, t: Translator) -> str:
    if amount is None:
        return t.pgettext("slack", "n/a")
    return t.money(round(float(amount)))


def reader(record: HealthChangeRecord | Mapping[str, Any],
           language: str | Translator | None = None) -> Translator:
    """Who the message is written for: ``language`` when given (a code, or a translator
    with its own currency), else the language the change was written in (its
    ``language``; English when it has none); amounts in the record's ``currency``."""
    if isinstance(language, Translator):
        return language
    wire = record.wire if isinstance(record, HealthChangeRecord) else record
    code = language or str(wire.get("language") or DEFAULT_LANGUAGE)
    currency = str(wire.get("currency") or DEFAULT_CURRENCY)
    if check_language(code) or check_currency(currency):
        return translator()
    return translator(code, currency)


def owner_mention(record: HealthChangeRecord | Mapping[str, Any],
                  t: Translator | None = None) -> str:
    """``<@U…>`` for a change or read-model document whose ``owner_slack_id`` is a Slack
    user id, else the owner's name, escaped."""
    if isinstance(record, HealthChangeRecord):
        slack_id, owner = record.owner_slack_id, record.owner
    else:
        slack_id, owner = record.get("owner_slack_id"), record.get("owner")
    if is_slack_user_id(slack_id):
        return f"<@{slack_id}>"
    return escape_mrkdwn(owner or reader(record, t).pgettext("slack", "no owner"))


def _label(labels: Mapping[str, str], value: object, t: Translator | None = None) -> str:
    """The display label of a known band or stage, in ``t``'s language; an unknown
    value, escaped."""
    if str(value) not in labels:
        return escape_mrkdwn(value)
    if labels is BAND_LABELS:
        return band_label(str(value), t or as_translator("en"))
    if labels is STAGE_LABELS:
        return stage_label(str(value), t or as_translator("en"))
    return labels[str(value)]


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


def _written_in(change: HealthChangeRecord) -> str:
    return str(change.wire.get("language") or DEFAULT_LANGUAGE)


def _explanation(change: HealthChangeRecord, t: Translator) -> str:
    """The change's explanation in ``t``'s language: as written, or said again from
    the change's structured fields when it was written in another language."""
    written = change.explanation or ""
    if not written or t.language == _written_in(change):
        return written
    try:
        return explain.retell(change.wire, t)
    except (KeyError, TypeError, ValueError):
        return written


def change_message(change: HealthChangeRecord, public_url: str,
                   language: str | Translator | None = None) -> dict[str, Any]:
    """The incoming-webhook payload (``text`` fallback plus ``blocks``) for one change,
    in ``language`` (default: the change's own, see :func:`reader`)."""
    t = reader(change, language)
    current = change.current
    previous = change.previous
    name = escape_mrkdwn(change.account_name or change.account_id)
    score, band = current.score, current.band
    delta = change.delta
    band_text = _label(BAND_LABELS, band, t)
    if previous and previous.band != band:
        band_text += t.pgettext("slack", " (was %(band)s)",
                                band=_label(BAND_LABELS, previous.band, t))
    url = account_url(public_url, change.account_id)
    header = (t.pgettext("slack", "%(name)s: health %(score)s (%(delta)s)", name=name,
                         score=score, delta=_signed(delta)) if previous
              else t.pgettext("slack", "%(name)s: health %(score)s (first assessment)",
                              name=name, score=score))
    explanation = escape_mrkdwn(_explanation(change, t))
    band_title, owner_title = t.pgettext("slack", "Band"), t.pgettext("slack", "Owner")
    fields = [
        f"*{band_title}*\n{BAND_ICONS.get(band, '')} {band_text}".replace("\n ", "\n"),
        f"*{owner_title}*\n{owner_mention(change, t)}",
    ]
    if current.forecast:
        renewal = change.days_to_renewal
        when = ""
        if isinstance(renewal, int) and not isinstance(renewal, bool):
            when = t.npgettext("slack", ", renews in %(count)s day", ", renews in %(count)s days",
                               renewal)
        elif renewal is not None:
            when = t.pgettext("slack", ", renews in %(days)s days", days=escape_mrkdwn(renewal))
        forecast_title = t.pgettext("slack", "Forecast")
        fields.append(f"*{forecast_title}*\n{_label(STAGE_LABELS, current.forecast, t)}{when}")
    if current.lifecycle:
        stage_title = t.pgettext("slack", "Stage")
        fields.append(f"*{stage_title}*\n{_label(STAGE_LABELS, current.lifecycle, t)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(header, 150),
                                    "emoji": True}},
        {"type": "section",
         "text": {"type": "mrkdwn", "text": _clip(explanation, 3000)
                  or t.pgettext("slack", "Health changed.")}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _clip(f, 2000)}
                                       for f in fields]},
    ]
    signals = top_signals(change)
    if signals:
        said = (
            (s.text or s.type) if t.language == _written_in(change)
            else explain.signal_again({"type": s.type, "detail": s.detail, "text": s.text}, t)
            for s in signals)
        lines = "\n".join(f"• {escape_mrkdwn(text)}" for text in said)
        top = t.pgettext("slack", "Top signals")
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": _clip(f"*{top}*\n{lines}", 3000)}})
    context = [t.pgettext("slack", "ARR %(amount)s", amount=_money(change.arr, t))]
    if change.segment:
        context.append(escape_mrkdwn(change.segment).replace("_", "-"))
    context.append(t.pgettext("slack", "7-day change %(delta)s",
                              delta=_signed(change.change_7d)))
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": _clip(" · ".join(context), 3000)}]})
    blocks.append({"type": "actions", "elements": [{
        "type": "button", "text": {"type": "plain_text",
                                   "text": t.pgettext("slack", "Open account")},
        "url": url, "action_id": "open_account",
    }]})
    # The fallback is what notifications and old clients show, and Slack parses it as
    # mrkdwn too: it is built from the same escaped parts as the blocks.
    text = f"{header}, {band_text}. {explanation}"
    return {"text": _clip(text.strip(), 3000), "blocks": blocks}


def attention_title(n: int, t: Translator) -> str:
    """"N accounts need attention today" (or that none does)."""
    if not n:
        return t.pgettext("slack", "No account needs attention today")
    return t.npgettext("slack", "%(count)s account needs attention today",
                       "%(count)s accounts need attention today", n)


def digest_message(workspace: str, accounts: Sequence[Mapping[str, Any]],
                   public_url: str, limit: int = 10,
                   language: str | Translator = "en") -> dict[str, Any]:
    """"N accounts need attention today", one line per account (most urgent first)."""
    t = as_translator(language)
    n = len(accounts)
    title = attention_title(n, t)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150)}},
    ]
    for doc in accounts[:limit]:
        name = escape_mrkdwn(doc.get("account_name") or doc["account_id"])
        url = account_url(public_url, str(doc["account_id"]))
        line = (f"*<{url}|{name}>* · {escape_mrkdwn(doc.get('score'))} "
                f"({_label(BAND_LABELS, doc.get('band'), t)}) · {owner_mention(doc, t)}\n"
                f"{escape_mrkdwn(doc.get('explanation') or '')}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(line, 3000)}})
    return list_message(title, blocks, n - limit, public_url, workspace, t)


def list_message(title: str, blocks: list[dict[str, Any]], more: int, public_url: str,
                 workspace: str, language: str | Translator = "en") -> dict[str, Any]:
    """A list of accounts as one Slack message: ``blocks``, then how many ``more`` are
    on the Today page (when any), then the workspace."""
    t = as_translator(language)
    if more > 0:
        page = t.pgettext("slack", "Today page")
        link = f"<{public_url.rstrip('/')}/today|{page}>"
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": t.npgettext("slack", "…and %(count)s more on the %(link)s",
                                                   "…and %(count)s more on the %(link)s", more,
                                                   link=link)}]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": t.pgettext("slack", "Workspace %(workspace)s",
                                              workspace=escape_mrkdwn(workspace))}]})
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

