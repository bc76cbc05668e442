"""The backtest and calibration reports and the commands' summaries, in French and English:
every sentence from the catalogues, every figure as the locale writes it, nothing left in
English in the French ones, and the machine-readable JSON the same in both."""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents import cli
from history.backtest import ProfitParams, replay_snapshots, result_dict
from history.business import compute, format_summary
from history.calibrate import BandEvidence, Story, calibrate, explain, split_date
from history.importers import OutcomeRecord, segment_events
from history.report import terminal_summary, verdict, write_html
from history.simulate import simulate, write_simulation
from scoring.config import load_config
from scoring.i18n import translator
from streams.events import Event

NBSP, NNBSP = "\u00a0", "\u202f"
FRENCH = translator("fr", "EUR", "Europe/Paris")
ENGLISH = translator("en", "USD")
HORIZONS = (60, 30)

#: Headings and sentences of the English reports: none may be left in a French one.
ENGLISH_TEXT = (
    "Backtest of", "days before the outcome", "accounts with an outcome", "Profit assumes",
    "against the best baseline", "Warning", "not computable", "Baseline:", "churned (",
    "what preceded churn", "churn by band", "Churn backtest", "At a glance",
    "Churners in the riskiest", "Lift in the riskiest", "Expected profit", "What preceded churn",
    "By type of churn", "Band at the time", "How to read this", "Telltale health score",
    "Each account is scored", "the dashed diagonal", "Churn rate", "Accounts", "Ranking",
    "Learnt from", "checked on the", "The fitted weights", "Bands", "points:",
    "On this history", "maps to a churn probability", "renewals", "Monthly churn rate",
    "Renewals:", "gross revenue retention", "Customer lifetime value", "Cohort retention",
    "month ", "customers", "share of accounts", "share of churners", "random pick",
    "health score", "average churn", "churn rate", "JSON:", "Report:",
)
#: What the French verdict may be, as a CS lead would say it.
FRENCH_VERDICTS = (
    "Le score de santé sépare mieux les clients perdus que la meilleure référence simple.",
    f"La meilleure référence simple sépare mieux les clients perdus que le score de santé{NBSP}: "
    "revoyez les poids avant de vous y fier.",
    "Sur cet historique, le score de santé ne sépare pas plus nettement les clients perdus que "
    "la meilleure référence simple.",
)


@pytest.fixture(scope="module")
def history() -> tuple[list[Event], list[OutcomeRecord]]:
    sim = simulate(accounts=30, days=160, seed=21)
    events = list(segment_events(sim.events(), "demo"))
    outcomes = [OutcomeRecord(o.account_id, o.date, o.outcome, o.arr, o.new_arr, o.segment)
                for o in sim.outcomes]
    return events, outcomes


@pytest.fixture(scope="module")
def backtest(history: tuple[list[Event], list[OutcomeRecord]]) -> dict[str, Any]:
    events, outcomes = history
    config = load_config(None)
    run = replay_snapshots(events, outcomes, config, HORIZONS)
    result = result_dict(run, outcomes, config, HORIZONS, ProfitParams())
    result["_snapshots"] = run.snapshots  # for the calibration below; not part of a report
    return result


def _report(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "_snapshots"}


def _text_of_page(folder: Path) -> str:
    """What a reader sees of the report: the page's text and every chart's labels."""
    page = (folder / "index.html").read_text(encoding="utf-8")
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    charts = [re.sub(r"<[^>]+>", "\n", svg.read_text(encoding="utf-8"))
              for svg in sorted(folder.glob("*.svg"))]
    return html.unescape("\n".join([re.sub(r"<[^>]+>", "\n", page), *charts]))


def _no_english_left(text: str) -> None:
    left = [phrase for phrase in ENGLISH_TEXT if phrase in text]
    assert left == [], left
    assert "%(" not in text and "%s" not in text, "a placeholder was left unfilled"


def test_the_backtest_summary_in_french(backtest: dict[str, Any]) -> None:
    result = _report(backtest)
    text = terminal_summary(result, FRENCH)
    events = f"{result['events']:,}".replace(",", NNBSP)
    assert text.startswith(f"Backtest de la configuration de score 'default-2'{NBSP}: "
                           f"{events} événements, ")
    assert (f"Le profit suppose 500{NBSP}€ par compte contacté, 30{NBSP}% des clients sur le "
            f"départ sauvés une fois contactés et une marge de 80{NBSP}%.") in text
    h60 = result["horizons"][0]
    rate = f"{100 * h60['base_rate']:.1f}".replace(".", ",")
    assert (f"60 jours avant l'issue{NBSP}: {h60['accounts']} comptes, {h60['churned']} perdus "
            f"({rate}{NBSP}%)") in text
    auc = f"{h60['models']['score']['auc']:.3f}".replace(".", ",")
    assert re.search(rf"Score de santé Telltale +{auc} ", text)
    said = verdict(h60, FRENCH)
    assert said is not None and said in FRENCH_VERDICTS and said in text
    assert f"churn par zone{NBSP}: En bonne santé " in text
    _no_english_left(text)


def test_the_backtest_summary_in_english_is_as_it_was(backtest: dict[str, Any]) -> None:
    result = _report(backtest)
    text = terminal_summary(result)
    assert text == terminal_summary(result, ENGLISH)
    assert text.startswith(f"Backtest of scoring config 'default-2': {result['events']:,} "
                           "events, ")
    assert ("Profit assumes $500 per account contacted, 30% of contacted churners saved, "
            "80% margin.") in text
    h60 = result["horizons"][0]
    assert (f"60 days before the outcome: {h60['accounts']} accounts, {h60['churned']} churned "
            f"({h60['base_rate']:.1%})") in text
    assert f"{h60['models']['score']['auc']:.3f}" in text
    assert "jours" not in text and NBSP not in text


def test_the_backtest_page_and_its_charts_in_french(backtest: dict[str, Any],
                                                    tmp_path: Path) -> None:
    result = _report(backtest)
    before = orjson.dumps(result)
    write_html(result, tmp_path / "fr", t=FRENCH)
    write_html(result, tmp_path / "en", t=ENGLISH)
    assert orjson.dumps(result) == before, "the report never changes the result it says"
    page = (tmp_path / "fr" / "index.html").read_text(encoding="utf-8")
    assert "<html lang='fr'>" in page and "<title>Backtest du churn</title>" in page
    text = _text_of_page(tmp_path / "fr")
    for heading in ("En bref", "Ce qui a précédé le churn", "Comment lire ce rapport",
                    "Clients perdus parmi les 10\u00a0% les plus à risque", "Zone à ce moment",
                    "Taux de churn par zone de santé, 60 jours avant",
                    "part des comptes contactés (les plus à risque d'abord)"):
        assert heading in text, heading
    start, end = (date.fromisoformat(d) for d in result["period"].split(" to "))
    assert f"(du {start.day} janvier 2025 au {end.day} " in text
    assert re.search(rf"\d+{NNBSP}\d{{3}}{NBSP}€", text), "amounts as 12 500 €"
    assert re.search(r"\b0,\d{3}\b", text), "an AUC as 0,503"
    assert re.search(rf"\d{NBSP}%", text) and not re.search(r"\d%", text)
    _no_english_left(text)
    english = _text_of_page(tmp_path / "en")
    assert "What preceded churn" in english and "How to read this" in english
    assert "Ce qui a précédé" not in english


def test_the_calibration_says_what_it_learnt_in_french(
        backtest: dict[str, Any], history: tuple[list[Event], list[OutcomeRecord]]) -> None:
    _, outcomes = history
    calibration = calibrate(backtest["_snapshots"], load_config(None), split_date(outcomes))
    english = calibration.explain()
    assert english == calibration.explanation and english.startswith("Learnt from")
    assert calibration.to_dict()["explanation"] == english, "the JSON keeps the English"
    french = calibration.explain(FRENCH)
    split = calibration.split_date
    months = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août")
    assert french.startswith(f"Appris sur {calibration.train_renewals} renouvellements et "
                             f"départs jusqu'au {split.day} {months[split.month - 1]} "
                             f"{split.year} (")
    assert f"Sur cet historique, le score calibré correspond aux probabilités de churn " \
           f"suivantes{NBSP}: 20 → " in french
    assert re.search(rf"\d{NBSP}%", french)
    _no_english_left(french)


def _story(**changes: Any) -> Story:
    fields: dict[str, Any] = {
        "names": ("active_seats", "support", "relationship"), "before": (40, 30, 30),
        "after": (52, 30, 18),
        "share_means": {"active_seats": {"churned": 0.42, "retained": 0.7},
                        "support": {"churned": 0.8, "retained": 0.8},
                        "relationship": {"churned": 0.5, "retained": 0.505}},
        "train_accounts": 1250, "train_churned_rows": 310, "train_rows": 3750,
        "split": date(2026, 12, 3), "alpha": 0.85, "bands_before": (50, 70),
        "bands_after": (45, 72),
        "bands_why": BandEvidence("separated", 0.384, 212, 0.12, 0.05),
        "probability": ({"score": 20.0, "churn_probability": 0.61},
                        {"score": 80.0, "churn_probability": 0.04}),
        "test_accounts": 830,
    }
    return Story(**(fields | changes))


def test_the_calibration_paragraph_reads_as_a_french_analyst_would_write_it() -> None:
    said = explain(_story(), FRENCH)
    n = NBSP
    assert said == (
        f"Appris sur 1{NNBSP}250 renouvellements et départs jusqu'au 3 décembre 2026 "
        f"(3{NNBSP}750 évaluations, dont 310 de comptes partis ensuite), puis vérifié sur les "
        "830 suivants, que l'ajustement n'a jamais vus. "
        f"Les poids ajustés comptent pour 85{n}% et les poids actuels pour le reste (moins il y "
        "a de clients perdus dont apprendre, plus les poids actuels pèsent). "
        f"Poids de «{n}Part des sièges utilisés{n}» (active_seats) relevé de 40 à 52 points{n}: "
        f"les comptes partis obtenaient 42{n}% de ces points, contre 70{n}% pour ceux restés. "
        f"Poids de «{n}NPS et réunions{n}» (relationship) abaissé de 30 à 18 points{n}: cette "
        "composante ne distinguait pas mieux que le hasard les clients perdus de ceux qui ont "
        f"renouvelé (50{n}% contre 50{n}% de ses points). "
        f"Zones{n}: à risque sous 45 (contre 50), en bonne santé à partir de 72 (contre 70), "
        "car sur la période d'apprentissage, les comptes notés sous 45 sont partis à "
        f"38{n}% (212 évaluations), contre 12{n}% au total, et ceux à 72 ou plus à 5{n}%. "
        "Sur cet historique, le score calibré correspond aux probabilités de churn "
        f"suivantes{n}: 20 → 61{n}%, 80 → 4{n}%.")
    assert explain(_story()).startswith(
        "Learnt from 1,250 renewals and churns up to 2026-12-03 (3,750 assessments, 310 of "
        "them of accounts that churned); checked on the 830 that came after")


def test_one_renewal_and_unmoved_bands_are_said_in_the_singular() -> None:
    story = _story(train_accounts=1, train_rows=1, train_churned_rows=1, alpha=0.0,
                   after=(40, 30, 30), bands_after=(50, 70), bands_why=BandEvidence("few"))
    said = explain(story, FRENCH)
    assert said.startswith("Appris sur 1 renouvellement ou départ jusqu'au 3 décembre 2026 "
                           "(1 évaluation, dont 1 de comptes partis ensuite)")
    assert ("Zones inchangées (trop peu d'issues connues pour déplacer les zones).") in said
    assert "Poids de" not in said
    assert explain(story).startswith("Learnt from 1 renewal or churn up to 2026-12-03 "
                                     "(1 assessment, ")


def test_the_business_metrics_summary_in_french(
        history: tuple[list[Event], list[OutcomeRecord]]) -> None:
    events, outcomes = history
    metrics = compute(events, outcomes)
    text = format_summary(metrics, FRENCH)
    assert text.startswith("Historique du 1 janvier 2025 au ")
    assert f"Taux de churn mensuel (moyenne){NBSP}: " in text
    ret = metrics["retention"]
    arr = f"{ret['arr_up_for_renewal']:,.0f}".replace(",", NNBSP)
    grr = f"{100 * ret['grr']:.1f}".replace(".", ",")
    assert (f"Renouvellements{NBSP}: {ret['renewals']}, pour {arr}{NBSP}€ d'ARR{NNBSP}; "
            f"rétention brute du revenu (GRR) {grr}{NBSP}%") in text
    assert "Rétention par cohorte (part de la cohorte encore cliente en fin de mois)" in text
    assert "janv. 2025" in text and re.search(r"\nT[1-4] 20\d\d ", text), "months, quarters"
    _no_english_left(text)
    english = format_summary(metrics)
    assert english.startswith("History 2025-01-01 to ")
    assert f"Renewals: {ret['renewals']} worth ${ret['arr_up_for_renewal']:,.0f} ARR" in english
    assert "Cohort retention" in english and "Rétention" not in english


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    write_simulation(simulate(accounts=12, days=120, seed=5), folder / "events.jsonl",
                     folder / "outcomes.csv")
    french = folder / "workspaces"
    french.mkdir()
    (french / "demo.toml").write_text(
        '[scoring.locale]\nlanguage = "fr"\ncurrency = "EUR"\ntime_zone = "Europe/Paris"\n')
    return folder


def _run(files: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def test_the_commands_speak_the_language_asked_for_else_the_workspaces(
        files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TELLTALE_WORKSPACES_DIR", raising=False)
    events, outcomes = str(files / "events.jsonl"), str(files / "outcomes.csv")
    backtest = ["backtest", events, "--outcomes", outcomes, "--workspace", "demo",
                "--horizons", "30", "--jobs", "1", "--quiet", "--json",
                str(files / "b.json"), "--report", str(files / "report")]
    french = _run(files, capsys, *backtest, "--language", "fr")
    assert f"30 jours avant l'issue{NBSP}: " in french
    assert f"Rapport{NBSP}: {files / 'report' / 'index.html'}" in french
    assert f"Le profit suppose 500{NBSP}$US par compte contacté" in french, \
        "the shipped config's currency"
    _no_english_left(french.replace(str(files), ""))
    json_fr = orjson.loads((files / "b.json").read_bytes())
    # The workspace's own file says French and euros: its language without --language.
    workspace = _run(files, capsys, *backtest, "--workspaces-dir", str(files / "workspaces"))
    assert f"Le profit suppose 500{NBSP}€ par compte contacté" in workspace
    english = _run(files, capsys, *backtest, "--workspaces-dir", str(files / "workspaces"),
                   "--language", "en")
    assert "30 days before the outcome: " in english and "Profit assumes €500" in english
    json_en = orjson.loads((files / "b.json").read_bytes())
    for result in (json_fr, json_en):
        del result["replay"]
    assert json_fr == json_en, "the JSON does not depend on the language"

    metrics = ["metrics", events, "--outcomes", outcomes, "--workspace", "demo"]
    assert _run(files, capsys, *metrics).startswith("History ")
    said = _run(files, capsys, *metrics, "--workspaces-dir", str(files / "workspaces"))
    assert said.startswith("Historique du ") and f"{NBSP}€ d'ARR" in said
    _no_english_left(said)


@pytest.mark.parametrize("command", ["backtest", "calibrate", "metrics"])
def test_a_language_telltale_does_not_speak_is_one_line_and_exit_2(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "events.jsonl", "--outcomes", "outcomes.csv", "--language", "de"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"telltale {command}: argument --language: must be one of ['en', 'fr'], "
                   f"got 'de' (see telltale {command} --help)"]
