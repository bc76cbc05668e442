"""The CDNOW purchase history (69,659 purchases by 23,570 customers who first bought
in the first quarter of 1997, followed to the end of June 1998) as a Telltale history.

The data ships in the PyPI wheel ``Lifetimes==0.11.3`` as
``lifetimes/datasets/CDNOW_master.txt``; it is read straight from the wheel (a zip file),
the package itself is never imported. Lines are ``customer_id YYYYMMDD cds dollars``.

Mapping, and what it means for the figures:

- every customer is a one-person "account" (user id = account id = customer id); a
  ``group`` call on the day of the first purchase carries ``created_at`` and one seat;
- every purchase is a ``Transaction Completed`` track event (a core event in the
  default vocabulary) with ``amount`` and ``quantity``, at noon UTC of its day;
- there are no renewals: the outcome of a customer is judged at ``cutoff`` (1997-12-31
  in the original dates): churned when there is no purchase in the following ``churn_days`` (180),
  retained otherwise. The outcome date is ``cutoff + churn_days``, so a backtest at a
  horizon of ``churn_days`` looks at each customer exactly at the cut-off, with no
  knowledge of what came after. ``arr`` is the customer's spend in the 365 days before the
  cut-off (a stand-in for what is at stake).

Dates are moved forward by ``SHIFT_YEARS`` (28) years, which keeps every weekday where
it was: Telltale refuses event times before 2000 as client clock bugs, and 1997 is
before that. The cut-off 1997-12-31 therefore appears as 2025-12-31.

Support, billing, NPS and meetings do not exist in this data, so only the usage-based
components of the score (active seats, power users, engagement, core features) carry
information; the others sit at their defaults for everybody.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from history.simulate import Outcome, write_outcomes

CDNOW_MEMBER = "lifetimes/datasets/CDNOW_master.txt"
SHIFT_YEARS = 28  # a multiple of the 28-year calendar cycle between 1901 and 2099
DEFAULT_CUTOFF = date(1997 + SHIFT_YEARS, 12, 31)
DEFAULT_CHURN_DAYS = 180


@dataclass(frozen=True, slots=True)
class Purchase:
    customer: str
    day: date
    quantity: int
    amount: float


def read_wheel_text(wheel: Path, member: str = CDNOW_MEMBER) -> str:
    """The text of one file inside a wheel (zip), without installing or importing it."""
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member).decode("utf-8")


def parse_purchases(text: str, shift_years: int = SHIFT_YEARS) -> list[Purchase]:
    """CDNOW_master lines → purchases in file order (a header line is skipped), dated
    ``shift_years`` later than recorded."""
    purchases: list[Purchase] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4 or not parts[1].isdigit():
            continue
        stamp = parts[1]
        purchases.append(Purchase(
            customer=parts[0],
            day=date(int(stamp[:4]) + shift_years, int(stamp[4:6]), int(stamp[6:8])),
            quantity=int(parts[2]),
            amount=float(parts[3]),
        ))
    return purchases


def _iso(day: date, hour: int = 12, second: int = 0) -> str:
    return f"{day.isoformat()}T{hour:02d}:{second // 60:02d}:{second % 60:02d}.000Z"


def segment_messages(purchases: list[Purchase]) -> Iterator[dict[str, Any]]:
    """Segment-spec messages in time order: a group call at each customer's first
    purchase, then one track call per purchase."""
    ordered = sorted(enumerate(purchases), key=lambda ip: (ip[1].day, ip[0]))
    announced: set[str] = set()
    for index, p in ordered:
        if p.customer not in announced:
            announced.add(p.customer)
            yield {
                "type": "group",
                "messageId": f"cdnow-group-{p.customer}",
                "userId": p.customer,
                "groupId": p.customer,
                "traits": {"name": f"Customer {p.customer}", "seats": 1,
                           "created_at": p.day.isoformat() + "T00:00:00Z"},
                "timestamp": _iso(p.day, 11),
            }
        yield {
            "type": "track",
            "messageId": f"cdnow-{index + 1}",
            "userId": p.customer,
            "event": "Transaction Completed",
            "properties": {"amount": p.amount, "quantity": p.quantity},
            "context": {"groupId": p.customer},
            "timestamp": _iso(p.day, 12, index % 3600),
        }


def outcomes(
    purchases: list[Purchase], cutoff: date = DEFAULT_CUTOFF,
    churn_days: int = DEFAULT_CHURN_DAYS,
) -> list[Outcome]:
    """One outcome per customer who bought on or before ``cutoff``: churned when no
    purchase in the ``churn_days`` after it."""
    end = cutoff + timedelta(days=churn_days)
    year_before = cutoff - timedelta(days=365)
    first: dict[str, date] = {}
    later: set[str] = set()
    spend: dict[str, float] = {}
    for p in purchases:
        if p.day <= cutoff:
            first[p.customer] = min(first.get(p.customer, p.day), p.day)
            if p.day > year_before:
                spend[p.customer] = spend.get(p.customer, 0.0) + p.amount
        elif p.day <= end:
            later.add(p.customer)
    return [
        Outcome(
            account_id=c,
            date=end,
            outcome="renewed" if c in later else "churned",
            arr=round(spend.get(c, 0.0), 2),
            new_arr=round(spend.get(c, 0.0), 2) if c in later else 0.0,
            segment="smb",
        )
        for c in sorted(first)
    ]


def write_history(
    purchases: list[Purchase], events_path: Path, outcomes_path: Path,
    cutoff: date = DEFAULT_CUTOFF, churn_days: int = DEFAULT_CHURN_DAYS,
) -> tuple[int, int]:
    """Write the Segment JSON lines and the outcomes CSV; returns (events, outcomes)."""
    count = 0
    with open(events_path, "wb") as fh:
        for message in segment_messages(purchases):
            fh.write(orjson.dumps(message) + b"\n")
            count += 1
    rows = outcomes(purchases, cutoff, churn_days)
    with open(outcomes_path, "w", newline="", encoding="utf-8") as out:
        write_outcomes(rows, out)
    return count, len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m history.cdnow",
        description="Turn CDNOW_master.txt (read from the Lifetimes 0.11.3 wheel) into a "
        "Telltale history: Segment JSON lines and an outcomes CSV.",
    )
    parser.add_argument("wheel", type=Path, help="Lifetimes-0.11.3-py3-none-any.whl, or the "
                        "CDNOW_master.txt file itself")
    parser.add_argument("--events", type=Path, default=Path("cdnow.jsonl"))
    parser.add_argument("--outcomes", type=Path, default=Path("cdnow_outcomes.csv"))
    parser.add_argument("--cutoff", type=date.fromisoformat, default=DEFAULT_CUTOFF)
    parser.add_argument("--churn-days", type=int, default=DEFAULT_CHURN_DAYS)
    args = parser.parse_args(argv)
    text = (read_wheel_text(args.wheel) if args.wheel.suffix == ".whl"
            else args.wheel.read_text(encoding="utf-8"))
    purchases = parse_purchases(text)
    n_events, n_outcomes = write_history(
        purchases, args.events, args.outcomes, args.cutoff, args.churn_days)
    print(f"{len(purchases):,} purchases -> {n_events:,} events in {args.events}; "
          f"{n_outcomes:,} outcomes in {args.outcomes} (horizon for the cut-off: "
          f"{args.churn_days} days)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
