"""Throughput of the pure scoring core: events/s through ``step`` for a realistic mix in
per-account batches, and serialised state bytes per user and per account.

    .venv/bin/python bench/core.py [--accounts 200] [--batch 200] [--days 30] [--language fr]

Prints figures; asserts nothing (timings depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.config import load_config
from scoring.engine import step
from scoring.i18n import translator
from state.aggregates import AccountState, UserState
from streams.events import Event, EventType, Source

DAY = 86400.0
START = 20_000 * DAY

# (name, relative frequency) of a product-usage mix; support/billing/relationship events
# are rare, identify/group calls occasional.
MIX = [
    ("Logged In", 30),
    ("Dashboard Viewed", 35),
    ("Report Published", 8),
    ("Workflow Completed", 8),
    ("Transaction Completed", 6),
    ("Teammate Invited", 1),
    ("Export Created", 3),
    ("API Key Created", 1),
    ("Automation Created", 2),
    ("Feature Gated Clicked", 1),
    ("Some Other Thing", 3),
    ("Ticket Opened", 0.05),
    ("Ticket Resolved", 0.05),
    ("NPS Submitted", 0.01),
]


def make_batches(
    accounts: int, users_per_account: int, batch: int, days: int, seed: int = 7
) -> list[tuple[str, float, list[Event]]]:
    """Per-account batches, in time order: each account gets one batch per day."""
    rng = random.Random(seed)
    names = [n for n, _ in MIX]
    weights = [w for _, w in MIX]
    out: list[tuple[str, float, list[Event]]] = []
    n = 0
    for day in range(days):
        for a in range(accounts):
            acc = f"acc-{a}"
            base = START + day * DAY
            evs: list[Event] = []
            if day == 0:
                evs.append(Event("bench", f"g-{acc}", EventType.GROUP, base, base,
                                 Source.SEGMENT, user_id=f"{acc}-u0", account_id=acc,
                                 traits={"name": acc, "seats": users_per_account + 5,
                                         "arr": 30_000, "renewal_date": "2025-06-01"}))
            for name in rng.choices(names, weights, k=batch - len(evs)):
                n += 1
                ts = base + rng.random() * (DAY - 1)
                uid = f"{acc}-u{int(rng.paretovariate(1.2)) % users_per_account}"
                props: dict[str, object] = {}
                if name.startswith("Ticket"):
                    props = {"ticket_id": f"t{rng.randrange(50)}"}
                elif name == "NPS Submitted":
                    props = {"score": rng.randrange(11)}
                elif name == "Feature Gated Clicked":
                    props = {"feature": "sso"}
                evs.append(Event("bench", f"m{n}", EventType.TRACK, ts, ts, Source.SEGMENT,
                                 name=name, user_id=uid, account_id=acc, properties=props))
            out.append((acc, base + DAY - 1, evs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--users", type=int, default=25)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--language", default="en",
                    help="the workspace's language (sentences are written in it)")
    args = ap.parse_args()
    config = load_config()
    config = replace(config, locale=replace(config.locale, language=args.language,
                                            currency="EUR" if args.language == "fr"
                                            else config.locale.currency)).validate()
    batches = make_batches(args.accounts, args.users, args.batch, args.days)
    total_events = sum(len(b[2]) for b in batches)
    accounts: dict[str, AccountState] = {}
    users: dict[tuple[str, str], UserState] = {}

    # A worker reads its catalogues once, at the first sentence: not part of the rate.
    config.locale.translator().gettext("today")
    translator().gettext("today")

    changes = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for acc, now, evs in batches:
        ids = {e.user_id for e in evs if e.user_id}
        mine = {u: users[(acc, u)] for u in ids if (acc, u) in users}
        r = step(accounts.get(acc), mine, evs, now, config, "bench", acc)
        accounts[acc] = r.account
        for u, s in r.users.items():
            users[(acc, u)] = s
        changes += len(r.changes)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0

    # apply-only path (no per-batch assessment) for comparison
    from scoring.apply import apply_events

    acc2: dict[str, AccountState] = {}
    users2: dict[str, dict[str, UserState]] = {}
    c1 = time.process_time()
    for acc, now, evs in batches:
        a = acc2.setdefault(acc, AccountState("bench", acc))
        apply_events(a, users2.setdefault(acc, {}), evs, now, config)
    apply_cpu = time.process_time() - c1

    # serialisation round trip cost and sizes
    acc_bytes = [len(a.to_bytes()) for a in accounts.values()]
    user_bytes = [len(u.to_bytes()) for u in users.values()]
    t2 = time.perf_counter()
    for a in accounts.values():
        AccountState.from_bytes(a.to_bytes())
    ser = (time.perf_counter() - t2) / len(accounts)

    print(f"events: {total_events:,} in {len(batches):,} batches of ~{args.batch} "
          f"({args.accounts} accounts x {args.days} days, {args.users} users/account)")
    print(f"step (apply + assess once per batch): {total_events / cpu:,.0f} events/s per core "
          f"(CPU time; {cpu * 1e6 / len(batches):,.0f} us per batch; wall-clock "
          f"{total_events / elapsed:,.0f} events/s), {changes:,} health changes")
    print(f"apply only: {total_events / apply_cpu:,.0f} events/s per core (CPU time)")
    print(f"account state: mean {sum(acc_bytes) / len(acc_bytes):,.0f} bytes, "
          f"max {max(acc_bytes):,} bytes (serialised, orjson)")
    print(f"user state: mean {sum(user_bytes) / len(user_bytes):,.0f} bytes, "
          f"max {max(user_bytes):,} bytes; account to_bytes+from_bytes {ser * 1e6:,.0f} us")


if __name__ == "__main__":
    main()
