"""The shell that bench/peers.py runs the scoring core in on Quix Streams and on a bare
consumer: the same health changes whether state stays live objects or goes through the
records' bytes, and due accounts re-evaluated between their envelopes."""

from __future__ import annotations

import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import peers
import pipeline

from scoring.driver import AccountKey, MemoryDueIndex
from streams.envelope import ENVELOPES, Envelope, kafka_key


class BytesTransaction:
    """A Quix partition transaction's byte calls over a dict: the records' bytes as the
    Quix peer writes them, without a broker."""

    def __init__(self) -> None:
        self.data: dict[tuple[bytes, bytes], bytes] = {}

    def get_bytes(self, key: bytes, prefix: bytes) -> bytes | None:
        return self.data.get((prefix, key))

    def set_bytes(self, key: bytes, value: bytes, prefix: bytes) -> None:
        self.data[(prefix, key)] = value


def run(shell: peers.Shell, stores: list[Any]) -> list[bytes]:
    """The generator's envelopes through ``shell``, partitioned by account as Kafka would
    (one store per partition, as Quix has one transaction per partition), in one
    interleaved order; offsets count per partition."""
    partitions = len(stores)
    offsets = [0] * partitions
    changes: list[bytes] = []
    for account, batch in pipeline.generate(3_000, 12, 6, 8):
        partition = int(account.rsplit("-", 1)[1]) % partitions
        raw = ENVELOPES.encode(Envelope(pipeline.WORKSPACE, account, batch))
        changes += shell.process(stores[partition], partition, offsets[partition], raw)
        offsets[partition] += 1
    return changes


def test_records_in_bytes_give_the_same_changes_as_live_objects() -> None:
    live = run(peers.shell_from_settings(), [peers.MemoryStore()] * 2)
    stored = run(peers.shell_from_settings(),
                 [peers.QuixStore(BytesTransaction(), kafka_key) for _ in range(2)])
    assert live
    assert stored == live


def test_due_accounts_are_re_evaluated_between_their_envelopes() -> None:
    class NothingDue(MemoryDueIndex):
        def pop_until(self, until: int, arriving: Collection[AccountKey]) -> list[AccountKey]:
            return []

    shell = peers.shell_from_settings()
    with_due = run(shell, [peers.MemoryStore()] * 2)
    blind = peers.shell_from_settings()
    blind.due = {p: NothingDue() for p in range(2)}
    # Days pass between an account's envelopes: what changes at midnight is only seen
    # through the due index.
    assert run(blind, [peers.MemoryStore()] * 2) != with_due
