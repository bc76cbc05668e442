from __future__ import annotations

import base64

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
