"""The flagship stories told to a French-speaking team: the same events as the English
stories beside this file, in a workspace whose ``[locale]`` is French, euros and Paris
time, with the full sentences a French CSM would write."""

from __future__ import annotations

from dataclasses import replace

from scoring.attention import render
from scoring.config import LocaleSettings, load_config
from streams.health_change import validate
from tests.scoring.story import Story, saturated_account, small_account, upgrade_curious_account

NBSP, NNBSP = "\u00a0", "\u202f"
FRENCH = replace(load_config(), locale=LocaleSettings("fr", "EUR", "Europe/Paris"))
OTHERS = [f"u{i:02d}" for i in range(1, 25)]


def french() -> Story:
    return Story(config=FRENCH)


def all_valid(story: Story) -> None:
    for change in story.changes:
        record = change.to_dict()
        validate(record)
        assert record["language"] == "fr"


def test_champion_loss_names_her_with_elision() -> None:
    """Élodie Martin, the power user, stops after day 10: the fall names her, and the
    worklist says so a week later."""
    s = french()
    s.group(0, name="Acme", seats=30, segment="mid_market", created_at=s.iso_day(-200),
            owner="Kim Lee")
    s.identify(0, "elo", "Élodie Martin", "elodie@acme.test")
    for u in OTHERS:
        s.identify(0, u, f"User {u}")
    s.daily(["elo"], range(0, 11), "Report Published", times=6)
    s.daily(OTHERS, range(0, 41))
    changes = s.run_to(24, hour=1)
    fall = [c for c in changes if c.delta < 0][-1]
    assert fall.explanation == (
        f"La santé a baissé de 14 points (87 → 73). En cause{NBSP}: aucune activité "
        "d'Élodie Martin, power user, depuis 14 jours."
    )
    assert fall.attention is not None
    assert [render(r, fall.day, "fr") for r in fall.attention.reasons] == [
        "La santé a baissé de 14 points en 7 jours (87 → 73)"]
    s.run_to(31, hour=1)
    quiet = s.assessment.attention
    assert render(quiet.reasons[0], s.assessment.day, "fr") == (
        "Aucune connexion d'Élodie Martin, power user, depuis 21 jours")
    all_valid(s)


def test_seat_drop_in_french_numbers() -> None:
    s = french()
    s.group(0, name="Acme", seats=30, segment="mid_market", created_at=s.iso_day(-200))
    team = [f"u{i:02d}" for i in range(25)]
    s.daily(team[:5], range(0, 60))
    s.daily(team[5:], range(0, 100))
    s.run_to(88, hour=23)
    changes = s.run_to(89)
    assert [x.text for x in s.started(changes, "seat_utilisation_drop")] == [
        f"l'utilisation des sièges a baissé de 20{NBSP}% (25 → 20 sur 30 sièges)"]
    assert changes[-1].explanation == (
        f"La santé a baissé de 5 points (77 → 72). En cause{NBSP}: l'utilisation des sièges a "
        f"baissé de 20{NBSP}% (25 → 20 sur 30 sièges) et l'engagement pondéré est de 9,4 "
        f"points par siège et par semaine, en baisse de 19{NBSP}% par rapport aux 60 jours "
        f"précédents (auparavant en baisse de 8{NBSP}%)."
    )
    all_valid(s)


def test_failed_payment_in_euros_then_settled() -> None:
    s = french()
    small_account(s)
    s.track(5, None, "Payment Failed", amount=1200)
    changes = s.run_to(5, hour=12)
    assert [x.text for x in s.started(changes, "payment_failed")] == [
        f"un paiement de 1{NNBSP}200{NBSP}€ a échoué"]
    assert changes[-1].explanation == (
        f"La santé a baissé de 6 points (69 → 63). En cause{NBSP}: un paiement de "
        f"1{NNBSP}200{NBSP}€ a échoué."
    )
    attention = changes[-1].attention
    assert attention is not None
    assert render(attention.reasons[0], changes[-1].day + 1, FRENCH.locale.translator()) == (
        f"Un paiement de 1{NNBSP}200{NBSP}€ a échoué hier")
    s.track(7, None, "Payment Succeeded", amount=1200)
    changes = s.run_to(7, hour=12)
    assert changes[-1].explanation == (
        f"La santé a progressé de 7 points (63 → 70). En cause{NBSP}: le paiement en échec a "
        "été régularisé."
    )
    all_valid(s)


def test_renewal_checkpoint_is_said_with_its_playbook_name() -> None:
    s = french()
    s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300), renewal_date=s.iso_day(200))
    s.daily(["ana", "ben"], range(0, 120))
    s.run_to(19, hour=23)
    changes = s.run_to(20)
    assert [(x.severity, x.text) for x in s.started(changes, "renewal_checkpoint")] == [
        ("info", f"renouvellement dans 180 jours{NBSP}: T-180, bilan de santé")]
    assert changes[-1].explanation == (
        f"La santé a progressé de 2 points (69 → 71). En cause{NBSP}: l'engagement pondéré "
        f"est de 3,7 points par siège et par semaine (auparavant 1,3). Nouveau{NBSP}: "
        f"renouvellement dans 180 jours{NBSP}: T-180, bilan de santé."
    )
    all_valid(s)


def test_expansion_signals_in_french() -> None:
    s = saturated_account(french(), 24)
    assert [x.text for x in s.active("seat_saturation")] == [
        f"24 sièges sur 30 sont occupés (80{NBSP}%) et les fonctionnalités avancées sont "
        "utilisées"]
    assert s.changes[-1].explanation.endswith(
        f"Nouveau{NBSP}: 24 sièges sur 30 sont occupés (80{NBSP}%) et les fonctionnalités "
        "avancées sont utilisées.")
    g = upgrade_curious_account(french())
    assert [x.text for x in g.active("gated_feature_clicked")] == [
        "des utilisateurs ont cliqué sur une fonctionnalité hors offre (sso)"]
    assert [x.text for x in g.active("upgrade_interest")] == [
        "des utilisateurs ont consulté les offres supérieures"]
    all_valid(s)
    all_valid(g)


def test_the_same_events_make_the_same_changes_in_either_language() -> None:
    """The language is only how changes are said: the same events make the same
    decisions (change ids), and English says what it said before."""
    s = french()
    small_account(s)
    s.track(5, None, "Payment Failed", amount=1200)
    s.run_to(5, hour=12)
    english = Story()
    small_account(english)
    english.track(5, None, "Payment Failed", amount=1200)
    english.run_to(5, hour=12)
    assert [c.id for c in s.changes] == [c.id for c in english.changes]
    assert english.changes[-1].explanation == (
        "Health fell 6 points (69 → 63) because a payment of $1,200 failed.")


def test_any_change_said_again_in_the_other_language_is_what_that_language_says() -> None:
    """A reader in another language gets, from the wire record's structured fields
    (``explain.retell``), exactly the sentence a workspace in that language was sent:
    over a simulated portfolio, both ways."""
    from history.importers import segment_events
    from history.simulate import simulate
    from scoring.explain import retell
    from scoring.replay import Replay

    events = list(segment_events(simulate(accounts=6, days=100, seed=5).events(),
                                 workspace="demo"))
    said: dict[str, list[tuple[str, dict[str, object]]]] = {}
    for name, config in (("en", load_config()), ("fr", FRENCH)):
        replay = Replay(config)
        changes = replay.run(events) + replay.finish()
        said[name] = [(c.explanation, c.to_dict()) for c in changes]
    assert len(said["en"]) == len(said["fr"]) > 50
    french = FRENCH.locale.translator()
    for (english_text, english), (french_text, in_french) in zip(
            said["en"], said["fr"], strict=True):
        assert english["id"] == in_french["id"]
        assert retell(in_french, "en") == english_text
        assert retell(english, french) == french_text
