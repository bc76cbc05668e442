from __future__ import annotations

import json

import aiohttp
import pytest
from slack_sdk.models.blocks import Block

from agents.sinks import DeliveryError, slack
from tests.fakes.changes import make_change, record, signal
from tests.fakes.http import Flaky, RecordingServer


def validated(blocks: list[dict]) -> list[dict]:
    """Round-trip through slack_sdk, which validates every block recursively."""
    parsed = [Block.parse(b) for b in blocks]
    assert all(p is not None for p in parsed), "slack_sdk did not recognise a block type"
    return [p.to_dict() for p in parsed if p is not None]


def test_change_message_carries_what_a_csm_acts_on() -> None:
    change = make_change(started=[signal("power_user_inactive", subject="acme-u0", days=22,
                                         text="Dana, your main power user, has been "
                                              "inactive for 22 days")])
    message = slack.change_message(record(change), "https://telltale.example.com/")
    blocks = validated(message["blocks"])
    text = str(blocks)
    assert blocks[0]["text"]["text"] == "Acme Corp: health 57 (−15)"
    assert "Health fell 15 points (72 → 57) because Dana" in blocks[1]["text"]["text"]
    assert "Watch (was Healthy)" in text and "<@U024BE7LH>" in text
    assert "Top signals" in text and "inactive for 22 days" in text
    button = blocks[-1]["elements"][0]
    assert button["url"] == "https://telltale.example.com/accounts/acme"
    assert message["text"].startswith("Acme Corp: health 57")


def test_long_and_hostile_text_stays_valid() -> None:
    change = make_change(account_name="<!channel> & " + "X" * 400,
                         explanation="Tickets <spiked> & " + "y" * 5000, owner_slack_id=None,
                         owner="A <b>", started=[signal("t", text="z" * 4000)] * 5)
    blocks = validated(slack.change_message(record(change), "http://x")["blocks"])
    assert len(blocks[0]["text"]["text"]) <= 150
    assert "&lt;spiked&gt; &amp;" in blocks[1]["text"]["text"]
    assert "A &lt;b&gt;" in str(blocks)


def test_digest_counts_and_links_accounts() -> None:
    docs = [{"account_id": f"a{i}", "account_name": f"Account {i}", "score": 30 + i,
             "band": "at_risk", "owner": "Riley", "owner_slack_id": None,
             "explanation": f"reason {i}"} for i in range(12)]
    message = slack.digest_message("demo", docs[:5], "http://h")
    blocks = validated(message["blocks"])
    assert message["text"] == "5 accounts need attention today"
    assert "<http://h/accounts/a0|Account 0>" in blocks[1]["text"]["text"]
    assert slack.digest_message("demo", docs[:1], "http://h")["text"] == (
        "1 account needs attention today")
    many = slack.digest_message("demo", docs, "http://h")
    assert "and 2 more" in str(validated(many["blocks"]))


async def test_post_classifies_answers() -> None:
    server = await RecordingServer(Flaky(failures=1, status=429, retry_after="7")).start()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(DeliveryError) as info:
                await slack.post(session, server.url + "/hook", {"text": "hi"})
            assert info.value.retryable and info.value.retry_after == 7.0
            await slack.post(session, server.url + "/hook", {"text": "hi"})
        assert [r.status for r in server.requests] == [429, 200]
        assert server.requests[1].json() == {"text": "hi"}
    finally:
        await server.stop()


async def test_post_treats_bad_payload_as_permanent() -> None:
    server = await RecordingServer(lambda r: (400, {}, b"invalid_blocks")).start()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(DeliveryError) as info:
                await slack.post(session, server.url, {"text": "hi"})
        assert not info.value.retryable and "invalid_blocks" in info.value.reason
    finally:
        await server.stop()


def test_first_assessment_has_no_delta() -> None:
    message = slack.change_message(record(make_change(previous_score=None)), "http://x")
    assert validated(message["blocks"])[0]["text"]["text"] == (
        "Acme Corp: health 57 (first assessment)")


def _french_payment_change() -> dict:
    """The change the real core emits for a failed payment in a French, euro workspace."""
    from dataclasses import replace

    from scoring.config import LocaleSettings, load_config
    from tests.scoring.story import Story

    config = replace(load_config(), locale=LocaleSettings("fr", "EUR", "Europe/Paris"))
    story = Story(config=config)
    story.group(0, name="Acme", seats=5, created_at=story.iso_day(-300), arr=12000,
                renewal_date=story.iso_day(60))
    story.daily(["ana", "ben"], range(0, 30))
    story.track(5, None, "Payment Failed", amount=1200)
    return story.run_to(5, hour=12)[-1].to_dict()


def test_a_french_workspace_is_alerted_in_french() -> None:
    change = _french_payment_change()
    blocks = validated(slack.change_message(record(change), "https://t.example")["blocks"])
    text = json.dumps(blocks, ensure_ascii=False)
    assert blocks[0]["text"]["text"] == "Acme\u00a0: santé 63 (−6)"
    assert blocks[1]["text"]["text"] == (
        "La santé a baissé de 6 points (69 → 63). En cause\u00a0: un paiement de "
        "1\u202f200\u00a0€ a échoué.")
    assert "*Statut*" in text and "À surveiller" in text and "*Responsable*" in text
    assert "Principaux signaux" in text and "ARR 12\u202f000\u00a0€" in text
    assert blocks[-1]["elements"][0]["text"]["text"] == "Ouvrir le compte"


def test_a_reader_in_another_language_gets_the_change_said_again() -> None:
    from scoring.i18n import translator

    change = _french_payment_change()
    blocks = validated(slack.change_message(record(change), "https://t.example",
                                            translator("en", "EUR"))["blocks"])
    assert blocks[0]["text"]["text"] == "Acme: health 63 (−6)"
    assert blocks[1]["text"]["text"] == (
        "Health fell 6 points (69 → 63) because a payment of €1,200 failed.")
    text = json.dumps(blocks, ensure_ascii=False)
    assert "a payment of €1,200 failed" in text and "ARR €12,000" in text


def test_digests_in_french_count_with_french_plurals() -> None:
    from agents.sinks import digest

    assert slack.digest_message("demo", [], "http://h", language="fr")["text"] == (
        "Aucun compte ne demande d'attention aujourd'hui")
    docs = [{"account_id": f"a{i}", "account_name": f"Compte {i}", "score": 30, "band":
             "at_risk", "owner": None, "owner_slack_id": None, "explanation": "x"}
            for i in range(12)]
    many = slack.digest_message("demo", docs, "http://h", language="fr")
    text = json.dumps(validated(many["blocks"]), ensure_ascii=False)
    assert many["text"] == "12 comptes demandent de l'attention aujourd'hui"
    assert "(À risque) · sans responsable" in text
    assert "…et 2 autres sur la <http://h/today|page Aujourd'hui>" in text
    assert "Espace demo" in text
    mine = digest.owner_digest("Riley", [], "http://h", slack_render, language="fr")
    assert mine["text"] == "0 compte a besoin de vous aujourd'hui"


def slack_render(reason: object, today: int) -> str:
    raise AssertionError("no reason to render")
