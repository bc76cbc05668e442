"""Read Telltale's health changes from Kafka and act on each one once.

    pip install aiokafka
    python examples/consume_health_changes.py --bootstrap localhost:9092 \
        --topic telltale.health-changes --group my-crm-sync

Each message's value is one ``telltale.health-change/1`` JSON record
(streams/schemas/health-change.v1.json); its headers carry the same change as a
CloudEvent (binary content mode: ``ce_id``, ``ce_source``, ``ce_type``, ``ce_time``).
Delivery is at least once, so a change can arrive twice (after a crash or a rebalance,
on either side): dedup on ``ce_source`` + ``ce_id`` (or the record's ``id``), which is
the same every time a change is sent. Offsets are committed only after a batch was
handled, so a crash re-reads rather than loses. Unknown fields are to be ignored: new
optional ones may appear.

This example prints one JSON line per new change; replace ``handle`` with your own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import OrderedDict
from typing import Any

from aiokafka import AIOKafkaConsumer

HEALTH_CHANGE_TYPE = "io.telltale.health-change.v1"
#: Ids remembered for dedup; a redelivery comes within the last commit interval.
SEEN_IDS = 100_000


def cloudevent_attributes(headers: list[tuple[str, bytes]] | tuple[Any, ...]
                          ) -> dict[str, str]:
    """The ``ce_*`` headers of a message, as CloudEvents attributes."""
    return {name.removeprefix("ce_"): value.decode() for name, value in headers
            if name.startswith("ce_")}


def handle(change: dict[str, Any], event: dict[str, str]) -> None:
    current, previous = change["current"], change.get("previous") or {}
    print(json.dumps({"id": event["id"], "source": event["source"], "time": event["time"],
                      "account_id": change["account_id"], "score": current["score"],
                      "band": current["band"], "previous_band": previous.get("band"),
                      "explanation": change["explanation"]}), flush=True)


async def consume(bootstrap: str, topic: str, group: str, *,
                  idle_seconds: float | None = None) -> int:
    """Handle every new health change; return the count once ``idle_seconds`` pass
    with no message (None: run until interrupted)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    seen: OrderedDict[tuple[str, str], None] = OrderedDict()
    handled = 0
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                if idle_seconds is not None:
                    idle_seconds -= 1.0
                    if idle_seconds <= 0:
                        return handled
                continue
            for records in batches.values():
                for record in records:
                    event = cloudevent_attributes(record.headers)
                    if event.get("type") != HEALTH_CHANGE_TYPE or record.value is None:
                        continue  # not a health change: skip, never fail
                    key = (event["source"], event["id"])
                    if key in seen:
                        continue
                    handle(json.loads(record.value), event)
                    handled += 1
                    seen[key] = None
                    if len(seen) > SEEN_IDS:
                        seen.popitem(last=False)
            await consumer.commit()
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--topic", default="telltale.health-changes")
    parser.add_argument("--group", default="health-change-example")
    parser.add_argument("--idle-seconds", type=float, default=None,
                        help="stop after this long without a message (default: never)")
    args = parser.parse_args(argv)
    try:
        count = asyncio.run(consume(args.bootstrap, args.topic, args.group,
                                    idle_seconds=args.idle_seconds))
    except KeyboardInterrupt:
        return 0
    print(f"{count} health changes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
