from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from streams.dlq import DeadLetter, decode_dead_letter


def test_json_payload_is_kept_as_json() -> None:
    record = decode_dead_letter(DeadLetter("missing_identity", "no id", "segment", "acme",
                                           1.5, payload={"type": "track"}).to_bytes())
    assert record == {"v": 1, "reason": "missing_identity", "detail": "no id",
                      "source": "segment", "workspace": "acme", "received_at": 1.5,
                      "payload": {"type": "track"}}


def test_raw_bytes_are_kept_as_text_or_base64() -> None:
    text = decode_dead_letter(DeadLetter("not_json", "", "kafka", None, 0.0,
                                         raw=b"{oops").to_bytes())
    assert text["payload_text"] == "{oops"
    binary = decode_dead_letter(DeadLetter("not_json", "", "kafka", None, 0.0,
                                           raw=b"\xff\xfe").to_bytes())
    assert base64.b64decode(binary["payload_b64"]) == b"\xff\xfe"


def test_a_payload_json_cannot_write_is_kept_as_text() -> None:
    record = decode_dead_letter(DeadLetter("bad_event", "", "kafka", "w", 0.0,
                                           payload={"n": 2**70}).to_bytes())
    assert "1180591620717411303424" in record["payload_text"]


def test_key_is_the_workspace() -> None:
    assert DeadLetter("r", "", "s", "acme", 0.0).key() == b"acme"
    assert DeadLetter("r", "", "s", None, 0.0).key() is None


def test_decode_refuses_other_records() -> None:
    with pytest.raises(ValueError):
        decode_dead_letter(b"[1]")


def test_a_large_payload_is_cut_to_a_prefix_with_its_size() -> None:
    payload = {"type": "track", "blob": "é" * 10_000}
    raw = DeadLetter("message_too_large", "", "segment", "acme", 0.0, payload=payload,
                     message_id="m-1").to_bytes(payload_max_bytes=1001)
    record = decode_dead_letter(raw)
    assert len(raw) < 1300
    assert "payload" not in record
    assert record["message_id"] == "m-1"
    assert record["truncated"] is True
    assert record["payload_bytes"] == len(orjson.dumps(payload))
    assert record["payload_prefix"].startswith('{"type":"track","blob":"éé')
    assert len(record["payload_prefix"].encode()) <= 1001


def test_raw_bytes_are_cut_too_and_an_allowance_of_zero_keeps_only_the_size() -> None:
    record = decode_dead_letter(DeadLetter("not_json", "", "kafka", None, 0.0,
                                           raw=b"\xff" * 5000).to_bytes(100))
    assert len(base64.b64decode(record["payload_b64"])) == 100
    assert record["payload_bytes"] == 5000
    bare = decode_dead_letter(DeadLetter("not_json", "", "kafka", None, 0.0,
                                         raw=b"x" * 5000).to_bytes(0))
    assert (bare["payload_bytes"], bare["truncated"]) == (5000, True)
    assert not {"payload_prefix", "payload_text", "payload_b64"} & set(bare)


def test_a_payload_too_deep_to_write_back_does_not_fail_the_record() -> None:
    deep: Any = []
    for _ in range(1000):
        deep = [deep]
    record = decode_dead_letter(DeadLetter("too_deep", "", "segment", "w", 0.0,
                                           payload=deep).to_bytes())
    assert record["reason"] == "too_deep"
    assert len(orjson.dumps(record)) < 4096 + 300
