"""The catalogues and the translator: every message in both languages with the same
placeholders and all plural forms, no placeholder ever left in a sentence, no silent
fallback, French plural and elision rules, locale formats, and the [locale] settings
refused at start-up when they are not a language, a currency or a time zone."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from devstack.catalogues import extract, problems, read
from scoring import explain
from scoring.attention import AttentionReason, ReasonType, Severity, reason_text, render
from scoring.config import ConfigError, LocaleSettings, ScoringConfig, config_from_dict
from scoring.i18n import LANGUAGES, MissingMessage, Translator, negotiate, translator
from scoring.labels import BAND_LABELS, STAGE_LABELS, band_label, stage_label

NBSP, NNBSP = "\u00a0", "\u202f"
LEFTOVER = re.compile(r"%\(|%[sd]\b|\{|\}")


def test_every_message_of_the_code_is_in_every_catalogue_with_the_same_placeholders(
) -> None:
    found = extract()
    assert len(found) > 150  # the extractor sees the code's messages
    assert problems(found) == []


def test_a_message_missing_from_the_catalogues_is_reported() -> None:
    found = extract()
    extra = replace(found[0], msgid="a message nobody translated %(x)s")
    lines = problems([*found, extra])
    assert any("a message nobody translated" in line and "missing" in line for line in lines)


def test_french_plural_forms_are_two_and_0_and_1_are_singular() -> None:
    fr = read("fr")
    assert fr.num_plurals == 2
    t = translator("fr")
    assert [explain._days(t, n) for n in (0, 1, 2, 10)] == [
        "0 jour", "1 jour", "2 jours", "10 jours"]
    en = translator("en")
    assert [explain._days(en, n) for n in (0, 1, 2)] == ["0 days", "1 day", "2 days"]


def _fill(text: str) -> str:
    return text % {name: "Ana" for name in re.findall(r"%\((\w+)\)s", text)}


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_catalogue_sentence_keeps_a_placeholder_once_filled(language: str) -> None:
    for message in read(language):
        if not message.id:
            continue
        forms = message.string if isinstance(message.string, tuple | list) else [
            message.string]
        for form in forms:
            assert not LEFTOVER.search(_fill(str(form))), (language, message.id, form)


SIGNALS = {
    "power_user_inactive": {"name": "Élodie", "days": 21},
    "user_inactive_14d": {"name": "Ana", "days": 14},
    "seat_utilisation_drop": {"previous": 25, "current": 20, "seats": 30},
    "core_feature_decline": {"previous": 100, "current": 60},
    "ticket_spike": {"count": 3, "days": 10},
    "ticket_open_long": {"ticket_id": "T-1", "days": 6},
    "payment_failed": {"amount": 12000},
    "plan_downgraded": {"from": "Enterprise", "to": "Pro"},
    "seats_reduced": {"from": 30, "to": 20},
    "nps_detractor": {"name": "Olivier", "score": 4},
    "meeting_missed": {"kind": "qbr_skipped"},
    "onboarding_milestone_missed": {"milestone": "first_report", "late_days": 2,
                                    "due_days": 14},
    "account_inactive": {"days": 45},
    "seat_saturation": {"active": 24, "seats": 30, "pct": 80},
    "gated_feature_clicked": {"count": 2, "features": ["sso", "audit"]},
    "upgrade_interest": {"count": 3},
    "renewal_checkpoint": {"checkpoint": 90, "days_to_renewal": 90},
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_signal_and_reason_renders_without_a_placeholder_or_a_missing_message(
        language: str) -> None:
    t = translator(language, "EUR", "Europe/Paris")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingMessage)
        for kind, detail in SIGNALS.items():
            for text in (explain.signal_text(kind, detail, t),
                         explain.signal_ended_text(kind, detail, t)):
                assert text and not LEFTOVER.search(text), (kind, text)
        params: dict[str, object] = {
            "name": "Ana", "previous": 25, "current": 20, "seats": 30, "points": 12,
            "from": 70, "to": 58, "days": 7, "score": 35, "amount": 900, "ticket_id": "T-9",
            "count": 3, "milestone": "first_report", "due_day": 100, "step": "Call",
            "playbook": "Save", "renewal_day": 130, "band": "at_risk", "fell_points": 12,
            "fell_days": 7, "active": 24, "pct": 80, "features": "sso", "kind": "meeting"}
        for kind in ReasonType:
            reason = AttentionReason(kind, Severity.HIGH, f"{kind}:1", 98, None,
                                     {k: v for k, v in params.items()
                                      if not (kind == "plan_downgraded" and k in ("from", "to"))})
            text = reason_text(reason, 101, lambda r, d: render(r, d, t), t)
            assert text and not LEFTOVER.search(text), (kind, text)


def test_a_missing_message_is_never_silent() -> None:
    t = translator("fr")
    with pytest.warns(MissingMessage, match="no fr message"):
        assert t.gettext("A sentence nobody wrote %(x)s", x=1) == "A sentence nobody wrote 1"
    with pytest.raises(MissingMessage):  # tests turn warnings into errors
        t.gettext("Another sentence nobody wrote")


def test_french_elides_before_a_vowel_only_where_a_value_begins() -> None:
    t = translator("fr")
    assert explain.signal_text("power_user_inactive", {"name": "Alice", "days": 22}, t) == (
        "aucune activité d'Alice, power user, depuis 22 jours")
    assert explain.signal_text("power_user_inactive", {"name": "Bruno", "days": 22}, t) == (
        "aucune activité de Bruno, power user, depuis 22 jours")
    assert explain.signal_text("plan_downgraded", {"from": "Enterprise", "to": "Pro"}, t) == (
        "l'abonnement est passé de l'offre Enterprise à l'offre Pro")
    two = explain.power_users_quiet([{"name": "Inès", "days": 21, "user_id": "a"},
                                     {"name": "Hugo", "days": 21, "user_id": "b"}], t)
    assert two == "aucune activité d'Inès ni de Hugo, power users, depuis 21 jours"
    assert explain.signal_text("nps_detractor", {"name": "Émile", "score": 3}, t) == (
        "Émile a donné une note NPS de 3")


def test_amounts_numbers_and_dates_follow_the_locale() -> None:
    fr = translator("fr", "EUR", "Europe/Paris")
    assert fr.money(12000) == f"12{NNBSP}000{NBSP}€"
    assert fr.money(99.5) == f"99,50{NBSP}€"
    assert fr.percent(20) == f"20{NBSP}%"
    assert fr.number(38.7) == "38,7"
    assert fr.day(20_000) == "4 oct. 2024"
    # 23:30 UTC on 3 October is already the 4th in Paris
    assert fr.date(datetime(2024, 10, 3, 23, 30, tzinfo=UTC)) == "4 oct. 2024"
    en = translator("en", "GBP")
    assert en.money(1234) == "£1,234" and en.money(1234.5) == "£1,234.50"
    assert translator().money(1200) == "$1,200"
    assert en.day(20_000) == "2024-10-04"


def test_labels_in_both_languages() -> None:
    assert [band_label(b) for b in BAND_LABELS] == ["Healthy", "Watch", "At risk"]
    assert [band_label(b, "fr") for b in BAND_LABELS] == [
        "En bonne santé", "À surveiller", "À risque"]
    assert stage_label("renewal_window", "fr") == "En période de renouvellement"
    assert stage_label("no_such_stage", "fr") == "no_such_stage"
    assert len({stage_label(s, "fr") for s in STAGE_LABELS}) == len(set(STAGE_LABELS.values()))


def test_accept_language_picks_the_best_language_we_speak() -> None:
    assert negotiate("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert negotiate("de-DE,de;q=0.9,en;q=0.5", "fr") == "en"
    assert negotiate("de-DE", "fr") == "fr"
    assert negotiate("en;q=0.2, fr;q=0.7") == "fr"
    assert negotiate("fr;q=0, en") == "en"
    assert negotiate(None, "fr") == "fr"
    assert negotiate("fr;q=abc", "en") == "en"


def test_the_locale_table_is_read_and_its_values_validated_at_start_up() -> None:
    config = config_from_dict({"locale": {"language": "fr", "currency": "EUR",
                                          "time_zone": "Europe/Paris"}})
    assert config.locale == LocaleSettings("fr", "EUR", "Europe/Paris")
    assert config.locale.translator() == Translator("fr", "EUR", "Europe/Paris")
    assert ScoringConfig().locale == LocaleSettings("en", "USD", "UTC")
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"locale": {"language": "de", "currency": "EURO",
                                     "time_zone": "Mars/Olympus_Mons"}})
    text = str(caught.value)
    assert "locale.language: must be one of ['en', 'fr'], got 'de'" in text
    assert "locale.currency: must be an ISO 4217 currency code" in text and "'EURO'" in text
    assert "locale.time_zone: must be an IANA time zone" in text
    for bad in ("eur", "XYZ", "", 12):
        with pytest.raises(ConfigError, match=r"locale\.currency"):
            config_from_dict({"locale": {"currency": bad}})
    for bad in ("../etc/passwd", "/UTC", "Europe/Nowhere", ""):
        with pytest.raises(ConfigError, match=r"locale\.time_zone"):
            config_from_dict({"locale": {"time_zone": bad}})
    with pytest.raises(ConfigError, match=r"locale.*unknown"):
        config_from_dict({"locale": {"lang": "fr"}})
