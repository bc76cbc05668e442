"""No event-derived text becomes Slack markup: names, explanations, signal texts, owners
and labels arrive at a local Slack stand-in escaped, in the blocks and in the fallback
text, and only a strict Slack user id is ever mentioned."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.models.blocks import Block

from agents.sinks import slack
from streams.health_change import HealthChangeError
from tests.fakes.changes import make_change, record, signal
from tests.fakes.http import RecordingServer

PUBLIC = "https://telltale.example.com"
INJECTIONS = ["<!channel>", "<!here>", "<!everyone>", "<@U0BOSS|the boss>",
              "<https://evil.example|click me>", "<#C0GENERAL>", "<!subteam^S0CS>",
              "<!date^0^{date}|x>", "&lt;!channel&gt;"]
MARKUP = re.compile(r"<[^<>]*>")


@pytest.fixture
async def slack_hook() -> AsyncIterator[RecordingServer]:
    server = await RecordingServer().start()
    yield server
    await server.stop()


def texts(node: Any) -> Iterator[str]:
    """Every text Slack renders in a payload (URLs of buttons are fields, not text)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            elif key != "url":
                yield from texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts(item)


def markup(payload: dict[str, Any]) -> set[str]:
    """Every <...> token Slack would interpret anywhere in the payload."""
    return {token for text in texts(payload) for token in MARKUP.findall(text)}


async def deliver(server: RecordingServer, payload: dict[str, Any]) -> dict[str, Any]:
    """Send through the real sink and return what the Slack stand-in received."""
    async with aiohttp.ClientSession() as session:
        await slack.post(session, server.url + "/services/T/B/X", payload)
    received: dict[str, Any] = server.requests[-1].json()
    parsed = [Block.parse(b) for b in received["blocks"]]
    assert all(b is not None for b in parsed), "slack_sdk did not recognise a block"
    assert [b.to_dict() for b in parsed if b is not None] == received["blocks"]
    return received


@pytest.mark.parametrize("injection", INJECTIONS)
async def test_a_hostile_change_reaches_slack_as_plain_text(
        slack_hook: RecordingServer, injection: str) -> None:
    change = make_change(
        account_name=f"Acme {injection}", owner=f"Riley {injection}",
        owner_slack_id=injection.strip("<>"),
        explanation=f"Health fell 15 points because {injection} & co.",
        started=[signal("power_user_inactive", text=f"Dana {injection} went quiet")],
        days_to_renewal=75)
    received = await deliver(slack_hook, slack.change_message(record(change), PUBLIC))
    assert markup(received) == set()  # no mention, link, channel or command at all
    rendered = " ".join(texts(received))
    assert slack.escape_mrkdwn(injection) in rendered  # shown, as the text it is
    assert slack.escape_mrkdwn(injection) in received["text"]  # the fallback too
    assert received["blocks"][-1]["elements"][0]["url"] == f"{PUBLIC}/accounts/acme"
    # Closed vocabularies never reach the sink carrying markup: decoding refuses them.
    for forged in ({"segment": f"smb {injection}"},
                   {"current": {**change["current"], "lifecycle": f"mature {injection}"}},
                   {"previous": {**change["previous"], "band": f"healthy {injection}"}}):
        with pytest.raises(HealthChangeError):
            record({**change, **forged})


async def test_only_a_strict_slack_user_id_is_mentioned(slack_hook: RecordingServer) -> None:
    for owner_id, mentioned in [("U024BE7LH", True), ("W0123ABCD", True),
                                ("U024BE7LH|everyone", False), ("!channel", False),
                                ("u024be7lh", False), ("U024BE7LH\n", False),
                                ("C0GENERAL", False), ("U" + "1" * 21, False)]:
        change = make_change(owner="Riley Chen", owner_slack_id=owner_id)
        received = await deliver(slack_hook, slack.change_message(record(change), PUBLIC))
        assert markup(received) == ({f"<@{owner_id}>"} if mentioned else set()), owner_id
        if not mentioned:
            assert "Riley Chen" in " ".join(texts(received))


async def test_the_digest_escapes_every_account_line(slack_hook: RecordingServer) -> None:
    docs = [{"account_id": f"a{i}/<!here>", "account_name": f"<!channel> {i}",
             "score": "<!here>", "band": "<@U0BOSS>", "owner": "<!everyone>",
             "owner_slack_id": "<!channel>", "explanation": "<https://evil|win>"}
            for i in range(3)]
    docs.append({"account_id": "ok", "account_name": "Fine & Co", "score": 40,
                 "band": "watch", "owner": "Riley", "owner_slack_id": "U024BE7LH",
                 "explanation": "steady"})
    received = await deliver(slack_hook, slack.digest_message("ws <!here>", docs, PUBLIC))
    # Only Telltale's own links (account pages, quoted ids) and the valid mention remain.
    assert markup(received) == {
        *(f"<{PUBLIC}/accounts/a{i}%2F%3C%21here%3E|&lt;!channel&gt; {i}>" for i in range(3)),
        f"<{PUBLIC}/accounts/ok|Fine &amp; Co>", "<@U024BE7LH>"}
    assert "Workspace ws &lt;!here&gt;" in " ".join(texts(received))


def test_clipping_never_leaves_half_an_entity() -> None:
    for pad in range(140, 150):
        change = make_change(account_name="x" * pad + "<&>" * 10)
        header = slack.change_message(record(change), PUBLIC)["blocks"][0]["text"]["text"]
        assert len(header) <= 150
        body = header.removesuffix("…")
        assert re.fullmatch(r"(?:[^&]|&amp;|&lt;|&gt;)*", body), header[-12:]
