"""Kafka TLS and SASL settings: validation that lists every problem, the client options
built from them, a password that is never printed, and the start-up check's words for a
certificate of another name."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import faust
import pytest

from streams.kafka_security import KafkaAccessError, KafkaSecurity, check_access
from streams.settings import Settings, SettingsError
from tests.fakes.tls import self_signed, server_context

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def pem(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


def _problems(**environ: str) -> str:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({f"TELLTALE_{name.upper()}": value for name, value in environ.items()})
    return str(raised.value)


def test_plaintext_is_the_default_and_needs_nothing() -> None:
    security = Settings().kafka_security
    assert security == KafkaSecurity()
    assert security.aiokafka_options() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


def test_sasl_without_credentials_and_an_unknown_mechanism_are_listed_together() -> None:
    message = _problems(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI")
    assert "kafka_sasl_mechanism 'GSSAPI' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512" \
        in message
    assert "kafka_sasl_username is required with SASL_SSL" in message
    assert "kafka_sasl_password is required with SASL_SSL" in message


def test_oauthbearer_is_refused_as_a_setting() -> None:
    message = _problems(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER",
                        kafka_sasl_username="u", kafka_sasl_password="p")
    assert "kafka_sasl_mechanism 'OAUTHBEARER' is not one of" in message


def test_an_unknown_protocol_is_named() -> None:
    message = _problems(kafka_security_protocol="TLS")
    assert "kafka_security_protocol 'TLS' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, " \
           "SASL_SSL" in message


def test_tls_files_that_do_not_exist_are_each_named(tmp_path: Path) -> None:
    message = _problems(kafka_security_protocol="SSL",
                        kafka_ssl_cafile=str(tmp_path / "ca.pem"),
                        kafka_ssl_certfile=str(tmp_path / "client.pem"),
                        kafka_ssl_keyfile=str(tmp_path / "client.key"),
                        partitions="0")
    for name in ("cafile ", "certfile ", "keyfile "):
        assert f"kafka_ssl_{name}{tmp_path}" in message and "does not exist" in message
    assert "partitions must be at least 1" in message, "Kafka problems join the others"


def test_a_file_that_is_not_a_certificate_is_refused_at_start_up(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    message = _problems(kafka_security_protocol="SSL", kafka_ssl_cafile=str(bogus))
    assert "the kafka_ssl_* files do not make a TLS context" in message


def test_a_key_without_its_certificate_is_refused(pem: tuple[Path, Path]) -> None:
    _cert, key = pem
    message = _problems(kafka_security_protocol="SSL", kafka_ssl_keyfile=str(key))
    assert "kafka_ssl_keyfile needs kafka_ssl_certfile" in message


def test_credentials_a_protocol_would_not_send_are_refused(pem: tuple[Path, Path]) -> None:
    cert, _key = pem
    message = _problems(kafka_sasl_username="u", kafka_sasl_password="p",
                        kafka_ssl_cafile=str(cert))
    assert "kafka_sasl_username is set but PLAINTEXT does not use SASL" in message
    assert "kafka_sasl_password is set but PLAINTEXT does not use SASL" in message
    assert "kafka_ssl_cafile is set but PLAINTEXT does not use TLS" in message


def test_sasl_ssl_options_for_aiokafka_and_faust(pem: tuple[Path, Path]) -> None:
    cert, _key = pem
    settings = Settings.from_env({
        "TELLTALE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TELLTALE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TELLTALE_KAFKA_SASL_USERNAME": "telltale",
        "TELLTALE_KAFKA_SASL_PASSWORD": "s3cret",
        "TELLTALE_KAFKA_SSL_CAFILE": str(cert),
    })
    options = settings.kafka_security.aiokafka_options()
    context = options.pop("ssl_context")
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "telltale", "sasl_plain_password": "s3cret"}
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs(), "the CA file is loaded"

    credentials = settings.kafka_security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("telltale", "s3cret")


def test_sasl_plaintext_sends_no_tls_context() -> None:
    security = KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    assert "ssl_context" not in security.aiokafka_options()
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.mechanism.value == "PLAIN"


def test_tls_with_a_client_certificate_and_no_name_check(pem: tuple[Path, Path]) -> None:
    cert, key = pem
    security = KafkaSecurity(protocol="SSL", ssl_cafile=cert, ssl_certfile=cert,
                             ssl_keyfile=key, ssl_check_hostname=False)
    assert security.problems() == []
    options = security.aiokafka_options()
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    context = options["ssl_context"]
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"


def test_the_password_never_shows_in_repr_or_settings_check() -> None:
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="telltale",
                        kafka_sasl_password="hunter2-very-secret")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(settings.kafka_security)
    assert "hunter2" not in repr(settings.kafka_security.faust_credentials())
    shown = dict(settings.effective_values())
    assert shown["TELLTALE_KAFKA_SASL_PASSWORD"] == "***"
    assert shown["TELLTALE_KAFKA_SASL_USERNAME"] == "telltale"

    result = subprocess.run(
        [sys.executable, "-m", "agents.cli", "settings", "--check"], cwd=REPO,
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
             "TELLTALE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
             "TELLTALE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
             "TELLTALE_KAFKA_SASL_USERNAME": "telltale",
             "TELLTALE_KAFKA_SASL_PASSWORD": "hunter2-very-secret"})
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "TELLTALE_KAFKA_SASL_PASSWORD=***" in result.stdout.splitlines()
    assert "TELLTALE_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in result.stdout.splitlines()


def test_an_unset_password_is_shown_as_unset() -> None:
    assert dict(Settings().effective_values())["TELLTALE_KAFKA_SASL_PASSWORD"] == "None"


async def test_a_certificate_for_another_name_is_told_apart_from_an_untrusted_one(
        pem: tuple[Path, Path]) -> None:
    """The test certificate names 127.0.0.1 only; reached as localhost it is trusted (the
    CA file holds it) but names another host."""
    cert, key = pem
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0,
                                        ssl=server_context(cert, key))
    port = server.sockets[0].getsockname()[1]
    try:
        checked = KafkaSecurity(protocol="SSL", ssl_cafile=cert)
        with pytest.raises(KafkaAccessError, match=r"for another name .*CHECK_HOSTNAME=false"):
            await check_access(f"localhost:{port}", checked, timeout=5)
        with pytest.raises(KafkaAccessError, match=r"not trusted .*TELLTALE_KAFKA_SSL_CAFILE"):
            await check_access(f"127.0.0.1:{port}", KafkaSecurity(protocol="SSL"), timeout=5)
    finally:
        server.close()
        await server.wait_closed()
