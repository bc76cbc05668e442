from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from streams.dlq import DEAD_LETTERS, DeadLetter


def test_json_payload_is_kept_as_json() -> None:
    record = DEAD_LETTERS.decode(DEAD_LETTERS.encode(DeadLetter(
        "missing_identity", "no id", "segment", "acme", 1.5, payload={"type": "track"})))
    assert record == {"v": 1, "reason": "missing_identity", "detail": "no id",
                      "source": "segment", "workspace": "acme", "received_at": 1.5,
                      "payload": {"type": "track"}}


def test_raw_bytes_are_kept_as_text_or_base64() -> None:
    text = DEAD_LETTERS.decode(DEAD_LETTERS.encode(
        DeadLetter("not_json", "", "kafka", None, 0.0, raw=b"{oops")))
    assert text["payload_text"] == "{oops"
    binary = DEAD_LETTERS.decode(DEAD_LETTERS.encode(
        DeadLetter("not_json", "", "kafka", None, 0.0, raw=b"\xff\xfe")))
    assert base64.b64decode(binary["payload_b64"]) == b"\xff\xfe"


def test_a_payload_json_cannot_write_is_kept_as_text() -> None:
    record = DEAD_LETTERS.decode(DEAD_LETTERS.encode(
        DeadLetter("bad_event", "", "kafka", "w", 0.0, payload={"n": 2**70})))
    assert "1180591620717411303424" in record["payload_text"]


def test_key_is_the_workspace() -> None:
    assert DEAD_LETTERS.key(DeadLetter("r", "", "s", "acme", 0.0)) == b"acme"
    assert DEAD_LETTERS.key(DeadLetter("r", "", "s", None, 0.0)) is None


def test_decode_refuses_other_records() -> None:
    with pytest.raises(ValueError):
        DEAD_LETTERS.decode(b"[1]")


def test_a_large_payload_is_cut_to_a_prefix_with_its_size() -> None:
    payload = {"type": "track", "blob": "é" * 10_000}
    raw = DEAD_LETTERS.encode(DeadLetter("message_too_large", "", "segment", "acme", 0.0,
                                         payload=payload, message_id="m-1"), 1001)
    record = DEAD_LETTERS.decode(raw)
    assert len(raw) < 1300
    assert "payload" not in record
    assert record["message_id"] == "m-1"
    assert record["truncated"] is True
    assert record["payload_bytes"] == len(orjson.dumps(payload))
    assert record["payload_prefix"].startswith('{"type":"track","blob":"éé')
    assert len(record["payload_prefix"].encode()) <= 1001


def test_raw_bytes_are_cut_too_and_an_allowance_of_zero_keeps_only_the_size() -> None:
    record = DEAD_LETTERS.decode(DEAD_LETTERS.encode(DeadLetter("not_json", "", "kafka", None, 0.0,
                                           raw=b"\xff" * 5000), 100))
    assert len(base64.b64decode(record["payload_b64"])) == 100
    assert record["payload_bytes"] == 5000
    bare = DEAD_LETTERS.decode(DEAD_LETTERS.encode(DeadLetter("not_json", "", "kafka", None, 0.0,
                                         raw=b"x" * 5000), 0))
    assert (bare["payload_bytes"], bare["truncated"]) == (5000, True)
    assert not {"payload_prefix", "payload_text", "payload_b64"} & set(bare)


def test_a_payload_too_deep_to_write_back_does_not_fail_the_record() -> None:
    deep: Any = []
    for _ in range(1000):
        deep = [deep]
    record = DEAD_LETTERS.decode(DEAD_LETTERS.encode(DeadLetter("too_deep", "", "segment", "w", 0.0,
                                           payload=deep)))
    assert record["reason"] == "too_deep"
    assert len(orjson.dumps(record)) < 4096 + 300
