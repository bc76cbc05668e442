"""How every Kafka client Telltale creates authenticates and encrypts: TLS and SASL.

:class:`KafkaSecurity` holds the ``TELLTALE_KAFKA_*`` settings (``Settings.kafka_security``
builds it). From it come, in one place each:

- :meth:`KafkaSecurity.aiokafka_options`, the keyword arguments of every aiokafka
  producer, consumer and admin client (``security_protocol``, ``sasl_mechanism``,
  ``sasl_plain_username``, ``sasl_plain_password``, ``ssl_context``);
- :meth:`KafkaSecurity.faust_credentials`, the ``broker_credentials`` of the Faust app,
  which Faust turns into the same aiokafka arguments for its own clients;
- :func:`check_access`, a start-up probe that fails in one sentence (wrong password,
  untrusted certificate, unreachable broker) instead of leaving clients retrying.

OAUTHBEARER is not offered: aiokafka and Faust take it only as a token-provider object
(``aiokafka.abc.AbstractTokenProvider``, ``faust.OAuthCredentials(oauth_cb=...)``) that
fetches and refreshes tokens, which is code, not a setting.

This module sits just above the settings: it imports nothing of Telltale's.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaAccessError(ConnectionError):
    """The broker refused or could not be reached; the message is one line for people."""


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """TLS and SASL options shared by every Kafka client (the default is plaintext)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def problems(self) -> list[str]:
        """Every inconsistency, one phrase each, named by setting (empty when usable)."""
        if self.protocol not in PROTOCOLS:
            return [f"kafka_security_protocol {self.protocol!r} is not one of "
                    f"{', '.join(PROTOCOLS)}"]
        found: list[str] = []
        if self.uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                found.append(f"kafka_sasl_mechanism {self.sasl_mechanism!r} is not one of "
                             f"{', '.join(SASL_MECHANISMS)}")
            for name in ("sasl_username", "sasl_password"):
                if not getattr(self, name):
                    found.append(f"kafka_{name} is required with {self.protocol}")
        else:
            # Credentials that are silently not sent would look like working security.
            for name in ("sasl_username", "sasl_password"):
                if getattr(self, name):
                    found.append(f"kafka_{name} is set but {self.protocol} does not use SASL")
        files = {"ssl_cafile": self.ssl_cafile, "ssl_certfile": self.ssl_certfile,
                 "ssl_keyfile": self.ssl_keyfile}
        if not self.uses_ssl:
            found.extend(f"kafka_{name} is set but {self.protocol} does not use TLS"
                         for name, path in files.items() if path is not None)
            return found
        missing = [f"kafka_{name} {path} does not exist"
                   for name, path in files.items() if path is not None and not path.is_file()]
        found.extend(missing)
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            found.append("kafka_ssl_keyfile needs kafka_ssl_certfile (the client certificate)")
        elif not missing:
            try:
                self.ssl_context()
            except (ssl.SSLError, OSError) as exc:
                found.append(f"the kafka_ssl_* files do not make a TLS context: {exc}")
        return found

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context (system CAs unless ``ssl_cafile``); None without TLS."""
        if not self.uses_ssl:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=None if self.ssl_cafile is None else str(self.ssl_cafile))
        if self.ssl_certfile is not None:
            context.load_cert_chain(
                str(self.ssl_certfile),
                None if self.ssl_keyfile is None else str(self.ssl_keyfile))
        # The chain is verified either way; only the name check against the broker's
        # address can be turned off (brokers reached through a tunnel or an IP).
        context.check_hostname = self.ssl_check_hostname
        return context

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``/``Consumer``/``AdminClient``."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_ssl:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        return options

    def faust_credentials(self) -> CredentialsT | None:
        """``broker_credentials`` for ``faust.App``; None for plaintext."""
        import faust

        context = self.ssl_context()
        if self.uses_sasl:
            # With a context Faust says SASL_SSL, without one SASL_PLAINTEXT.
            return faust.SASLCredentials(username=self.sasl_username,
                                         password=self.sasl_password,
                                         ssl_context=context, mechanism=self.sasl_mechanism)
        if context is not None:
            return faust.SSLCredentials(context)
        return None

    def describe(self) -> str:
        """How clients connect, for messages: ``SASL_SSL SCRAM-SHA-512 as user 'x'``."""
        if self.uses_sasl:
            return f"{self.protocol} {self.sasl_mechanism} as user {self.sasl_username!r}"
        return self.protocol


#: No TLS, no SASL: the local broker of ``telltale dev`` and the tests.
PLAINTEXT = KafkaSecurity()


async def check_access(bootstrap: str, security: KafkaSecurity, *,
                       timeout: float = 15.0) -> None:
    """Connect to each bootstrap server in turn, as every client will, until one answers
    a metadata request; raise :class:`KafkaAccessError` naming why none did.

    aiokafka clients log a refused login and retry (Faust's forever), so a wrong password
    would otherwise show as a worker that never becomes ready. ``timeout`` is in seconds
    per server.
    """
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    options = security.aiokafka_options()
    reasons: list[str] = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(timeout):
                conn = await create_conn(host, int(port), client_id="telltale-access-check",
                                         request_timeout_ms=int(timeout * 1000), **options)
                try:
                    await conn.send(MetadataRequest([]))
                finally:
                    conn.close()
            return
        except TimeoutError:
            reasons.append(f"{server}: no answer within {timeout:.0f} s")
        except ssl.SSLCertVerificationError as exc:
            if "mismatch" in str(exc.verify_message):
                reasons.append(f"{server}: the broker's certificate is for another name "
                               f"({exc.verify_message}); connect by a name it holds, or set "
                               "TELLTALE_KAFKA_SSL_CHECK_HOSTNAME=false")
            else:
                reasons.append(f"{server}: the broker's certificate is not trusted "
                               f"({exc.verify_message}); set TELLTALE_KAFKA_SSL_CAFILE")
        except Exception as exc:  # aiokafka's own errors and socket errors alike
            reasons.append(f"{server}: {_reason(exc)}")
    raise KafkaAccessError(f"cannot use Kafka ({security.describe()}): " + "; ".join(reasons))


def _reason(exc: BaseException) -> str:
    from aiokafka import errors

    if isinstance(exc, errors.SaslAuthenticationFailed | errors.AuthenticationFailedError):
        return "authentication failed (check TELLTALE_KAFKA_SASL_USERNAME, _PASSWORD and " \
               "_MECHANISM)"
    if isinstance(exc, errors.UnsupportedSaslMechanismError):
        return f"the broker does not offer this SASL mechanism ({exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, errors.KafkaConnectionError):
        # What a broker does to a client speaking another protocol than its listener's.
        return ("the broker closed the connection (does TELLTALE_KAFKA_SECURITY_PROTOCOL "
                "match the listener of this address?)")
    text = " ".join(str(exc).split())  # aiokafka messages can span lines
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name
