"""Actions shaped like the wire contract (``telltale.action/1``), for tests of what reads
the actions topic or writes to it."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from scoring.attention import Severity
from streams.actions import Action, ActionType

_ids = itertools.count(1)


def make_action(type_: str, *, account_id: str = "acme", workspace: str = "demo",
                actor: str = "riley@vendor.example", at: float = 1_780_000_000.0,
                id: str | None = None, **fields: Any) -> Action:
    """One action; ``until`` may be given as an ISO date and ``reasons`` as key → severity
    names."""
    if isinstance(fields.get("until"), str):
        fields["until"] = date.fromisoformat(fields["until"])
    if "reasons" in fields:
        fields["reasons"] = {k: Severity(v) for k, v in fields["reasons"].items()}
    return Action(id=id or f"action-{next(_ids)}", workspace=workspace, account_id=account_id,
                  type=ActionType(type_), actor=actor, at=at, **fields)
