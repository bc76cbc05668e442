"""The learned reference (optional ``ml`` extra): fitted on some accounts, it ranks
others, and finds the signal where there is one."""

from __future__ import annotations

import pytest

from history.evaluation import roc_auc
from history.learned import available, learned_models
from tests.history.test_baselines import _recency_is_the_truth, _signals_are_the_truth

pytestmark = pytest.mark.skipif(not available(), reason="needs the ml extra (scikit-learn)")


@pytest.mark.parametrize("history", [_signals_are_the_truth, _recency_is_the_truth])
def test_the_learned_reference_finds_what_the_history_knows(history: object) -> None:
    from history.backtest import replay_snapshots
    from history.importers import segment_events
    from scoring.config import load_config

    h = history()  # type: ignore[operator]
    ordered = [m for _, m in sorted(h.messages, key=lambda x: (x[0], x[1]["messageId"]))]
    run = replay_snapshots(list(segment_events(ordered, "demo")), h.outcomes,
                           load_config(None), (30,))
    train = [s for s in run.snapshots if int(s.account_id[-2:]) < 40]
    test = [s for s in run.snapshots if int(s.account_id[-2:]) >= 40]
    models = learned_models(train, test)
    assert set(models) == {"learned_logistic", "learned_boosting"}
    churned = [s.churned for s in test]
    for name, fn in models.items():
        auc = roc_auc([fn(s) for s in test], churned)
        assert auc is not None and auc > 0.9, name
    assert learned_models([s for s in train if not s.churned], test) == {}
