"""The opt-in SASL listeners of the local broker, as configuration: what the broker and
its storage formatter are told (the live broker is exercised in tests/security/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.kafka import SaslListeners, server_properties
from devstack.process import DevstackError
from tests.fakes.tls import self_signed


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_the_default_broker_has_no_sasl_listener(tmp_path: Path) -> None:
    props = _props(server_properties(broker_port=1111, controller_port=2222,
                                     log_dir=tmp_path, partitions=1))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1111,CONTROLLER://127.0.0.1:2222"
    assert not any("sasl" in key for key in props)


def test_sasl_plaintext_listener_with_every_mechanism(tmp_path: Path) -> None:
    sasl = SaslListeners({"alice": "alice-pw", "bob": "bob-pw"})
    props = _props(server_properties(broker_port=1111, controller_port=2222,
                                     log_dir=tmp_path, partitions=1, sasl=sasl,
                                     sasl_ports={"SASL_PLAINTEXT": 3333}))
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:1111,SASL_PLAINTEXT://127.0.0.1:3333,"
                                  "CONTROLLER://127.0.0.1:2222")
    assert props["advertised.listeners"] == \
        "PLAINTEXT://127.0.0.1:1111,SASL_PLAINTEXT://127.0.0.1:3333"
    assert props["listener.security.protocol.map"] == \
        "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    plain = props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert 'user_alice="alice-pw"' in plain and 'user_bob="bob-pw"' in plain
    scram = props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert "ScramLoginModule" in scram
    assert not any(key.startswith("listener.name.sasl_ssl") for key in props)


def test_sasl_ssl_listener_reads_a_pem_keystore_of_key_then_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    sasl = SaslListeners({"alice": "alice-pw"}, tls=(cert, key))
    assert sasl.protocols == ("SASL_PLAINTEXT", "SASL_SSL")
    keystore = sasl.write_keystore(tmp_path / "keystore.pem")
    assert keystore is not None
    text = keystore.read_text()
    assert text.index("PRIVATE KEY") < text.index("BEGIN CERTIFICATE")
    props = _props(server_properties(broker_port=1, controller_port=2, log_dir=tmp_path,
                                     partitions=1, sasl=sasl, keystore=keystore,
                                     sasl_ports={"SASL_PLAINTEXT": 3, "SASL_SSL": 4}))
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(keystore)
    assert "SASL_SSL://127.0.0.1:4" in props["advertised.listeners"]


def test_scram_users_are_created_when_the_storage_is_formatted() -> None:
    arguments = SaslListeners({"alice": "alice-pw"}).format_arguments()
    assert arguments == [
        "--add-scram", "SCRAM-SHA-256=[name=alice,password=alice-pw,iterations=4096]",
        "--add-scram", "SCRAM-SHA-512=[name=alice,password=alice-pw,iterations=4096]",
    ]


@pytest.mark.parametrize("users", [{}, {"alice": 'pw"; evil'}, {"a b": "pw"}, {"alice": ""}])
def test_credentials_that_would_break_the_broker_config_are_refused(
        users: dict[str, str]) -> None:
    with pytest.raises(DevstackError, match="SASL users need"):
        SaslListeners(users)
