"""The worklist against score-only ranking on a small seeded simulation: at equal list
size, each owner's list by attention priority must catch more of the accounts that later
churn, 90 to 30 days before they do, than the lowest scores do.

The portfolio is small (120 accounts, so about 24 per owner) to run in well under a
minute; the list is two per owner per day so that it is about as selective as five out
of two hundred in a real book of business. ``bench/worklist.py`` prints the same figures
for larger portfolios and the shipped list size.
"""

from __future__ import annotations

import pytest

from history.worklist_eval import RANKINGS, churn_days, run_simulated
from scoring.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ACCOUNTS, DAYS, SEED, TOP = 120, 240, 1, 2


def test_the_worklist_catches_more_churners_than_the_score_alone() -> None:
    report = run_simulated(ACCOUNTS, DAYS, SEED, load_config(), TOP)
    print("\n" + "\n".join(report.lines()))
    worklist, score = report.rankings["worklist"], report.rankings["score"]
    assert set(report.rankings) == set(RANKINGS)
    assert worklist.churned == score.churned >= 10
    assert worklist.recall is not None and score.recall is not None
    assert worklist.recall > score.recall
    assert 0 < worklist.mean_list <= TOP
    # people are told less than every change, and what they are told is mostly a reason
    assert report.alerts < report.changes / 2
    assert report.attention_share is not None and report.attention_share > 0.5


def test_churn_days_are_epoch_days_of_churns_only() -> None:
    from datetime import date

    from history.simulate import Outcome

    outcomes = [Outcome("a", date(1970, 1, 11), "churned", 1.0),
                Outcome("b", date(1970, 1, 12), "renewed", 1.0)]
    assert churn_days(outcomes) == {"a": 10}
