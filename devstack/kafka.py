"""A single-node Apache Kafka broker (KRaft) from the jars on Maven Central.

The jars are resolved once with Maven into ``${XDG_CACHE_HOME:-~/.cache}/telltale/
kafka-<version>/libs`` (outside the repository; about 60 MB), under a file lock so two
processes starting at once download them only once. Each broker gets fresh ports on
127.0.0.1 and a freshly formatted log directory; it counts as ready only once an admin
call succeeds, and it is stopped with SIGTERM.

A broker can also listen for clients that log in (:class:`SaslListeners`, opt-in so the
default start stays as quick as it is): SASL_PLAINTEXT, and SASL_SSL when given a
certificate, with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, the SCRAM users written into the
metadata log when the storage is formatted. The PLAINTEXT listener stays, for the
broker's own traffic and the readiness probe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from devstack.process import (
    DevstackError,
    LocalServer,
    ManagedProcess,
    free_port,
    pid_alive,
    port_is_free,
    run_checked,
    spawn,
    tail,
)
from streams.kafka_security import KafkaSecurity

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
# The broker's POM brings no logging backend; without one it logs nothing at all.
EXTRA_ARTIFACTS = (
    ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ("ch.qos.reload4j", "reload4j", "1.2.25"),
)
DEPENDENCY_PLUGIN_VERSION = "3.6.1"

JVM_OPTIONS = (
    "-Xmx512m",
    "-Xms128m",
    # Serial GC and the C1 compiler only: a much faster start on two busy cores.
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)

_COMPLETE_MARKER = ".complete"
T = TypeVar("T")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "telltale"


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    return cache_root() / f"kafka-{version}"


def _pom(version: str) -> str:
    extra = "".join(
        f"""
    <dependency>
      <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{ver}</version>
    </dependency>"""
        for group, artifact, ver in EXTRA_ARTIFACTS
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>telltale.devstack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{version}</version>
    </dependency>{extra}
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise DevstackError(
            "Java was not found (no `java` on PATH and no JAVA_HOME). The local Kafka broker "
            "needs Java 17 or newer: on Debian/Ubuntu `apt-get install -y "
            "openjdk-17-jre-headless`."
        )
    return java


def ensure_kafka_jars(version: str = KAFKA_VERSION, *, timeout: float = 900.0) -> Path:
    """The folder holding every runtime jar of Kafka ``version``, downloading it once."""
    home = kafka_home(version)
    libs = home / "libs"
    if (libs / _COMPLETE_MARKER).is_file():
        return libs
    with _file_lock(home / ".lock"):
        if (libs / _COMPLETE_MARKER).is_file():  # another process finished meanwhile
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise DevstackError(
                "Maven was not found (no `mvn` on PATH). It fetches the Kafka jars from Maven "
                f"Central once into {libs}: on Debian/Ubuntu `apt-get install -y maven`."
            )
        find_java()  # Maven needs it too; say so clearly rather than through Maven
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        (home / "pom.xml").write_text(_pom(version))
        started = time.monotonic()
        run_checked(
            "maven (Kafka jar download)",
            [mvn, "-q", "-B", "-f", str(home / "pom.xml"),
             "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={staging}"],
            log_path=home / "maven.log",
            timeout=timeout,
            cwd=home,
        )
        jars = list(staging.glob("*.jar"))
        if not any(j.name.startswith(f"kafka_{SCALA_VERSION}-{version}") for j in jars):
            raise DevstackError(f"Maven finished but {staging} holds no Kafka jar; see "
                                f"{home / 'maven.log'}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (libs / _COMPLETE_MARKER).write_text(
            f"{len(jars)} jars in {time.monotonic() - started:.1f} s\n")
        return libs


def new_cluster_id() -> str:
    """16 random bytes, url-safe base64 without padding, as KRaft wants it; never one
    starting with "-", which the storage tool would read as an option (Kafka's own ids
    avoid it the same way)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.log=WARN
"""


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SCRAM_ITERATIONS = 4096  # Kafka's minimum; a test broker needs no more
_SAFE_CREDENTIAL = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class SaslListeners:
    """Listeners that take only clients that log in, with any of :data:`SASL_MECHANISMS`.

    ``users`` maps each user name to its password, for every mechanism. ``tls`` is a PEM
    certificate (chain) and its unencrypted PKCS#8 key: with it the broker also listens
    for SASL_SSL (a throwaway CA made by a test is enough). Users named in ``restricted``
    may do only what ACLs allow them (:meth:`KafkaBroker.run_tool` with
    ``kafka.admin.AclCommand`` grants them); everyone else, the broker itself and
    PLAINTEXT clients included, is a super user.
    """

    users: Mapping[str, str]
    tls: tuple[Path, Path] | None = None
    restricted: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Names and passwords end up inside JAAS strings and storage-tool arguments.
        unsafe = [text for pair in self.users.items() for text in pair
                  if not _SAFE_CREDENTIAL.fullmatch(text)]
        if not self.users or unsafe:
            raise DevstackError("SASL users need names and passwords of 1-64 letters, "
                                "digits, '.', '_' or '-'")

    @property
    def protocols(self) -> tuple[str, ...]:
        return ("SASL_PLAINTEXT", "SASL_SSL") if self.tls else ("SASL_PLAINTEXT",)

    def format_arguments(self) -> list[str]:
        """``kafka-storage format`` options that create every SCRAM credential."""
        return [argument for name, password in self.users.items()
                for mechanism in SASL_MECHANISMS if mechanism.startswith("SCRAM-")
                for argument in ("--add-scram", f"{mechanism}=[name={name},password="
                                 f"{password},iterations={_SCRAM_ITERATIONS}]")]

    def properties(self, keystore: Path | None) -> dict[str, str]:
        """Broker settings of these listeners; ``keystore`` from :meth:`write_keystore`."""
        plain_users = " ".join(f'user_{name}="{password}"'
                               for name, password in self.users.items())
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        jaas = {
            "plain": "org.apache.kafka.common.security.plain.PlainLoginModule required "
                     f"{plain_users};",
            "scram-sha-256": scram,
            "scram-sha-512": scram,
        }
        found = {"sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS)}
        if self.restricted:
            found["authorizer.class.name"] = \
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            found["super.users"] = ";".join(
                ["User:ANONYMOUS", *(f"User:{name}" for name in self.users
                                     if name not in self.restricted)])
        for protocol in self.protocols:
            prefix = f"listener.name.{protocol.lower()}"
            found.update({f"{prefix}.{mechanism}.sasl.jaas.config": config
                          for mechanism, config in jaas.items()})
            if protocol == "SASL_SSL":
                if keystore is None:
                    raise DevstackError("a SASL_SSL listener needs its PEM keystore")
                found[f"{prefix}.ssl.keystore.type"] = "PEM"
                found[f"{prefix}.ssl.keystore.location"] = str(keystore)
        return found

    def write_keystore(self, path: Path) -> Path | None:
        """The PEM keystore Kafka reads (the key, then the certificates); None without TLS."""
        if self.tls is None:
            return None
        cert, key = self.tls
        path.write_text(key.read_text().strip() + "\n" + cert.read_text())
        return path


def server_properties(*, broker_port: int, controller_port: int, log_dir: Path,
                      partitions: int, sasl: SaslListeners | None = None,
                      sasl_ports: Mapping[str, int] | None = None,
                      keystore: Path | None = None) -> str:
    """``server.properties`` of a single-node broker; ``sasl_ports`` maps each of
    ``sasl.protocols`` to its port."""
    listeners = {"PLAINTEXT": broker_port, **(sasl_ports or {})}
    advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
    protocol_map = ",".join(f"{name}:{name}" for name in listeners)
    settings = {

        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"{advertised},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": advertised,
        "listener.security.protocol.map": f"{protocol_map},CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": str(partitions),
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "offsets.topic.replication.factor": "1",
        # The default 50 partitions make the first consumer-group join slow.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "min.insync.replicas": "1",
        "group.initial.rebalance.delay.ms": "0",
        # The default dedupe buffer allocates 128 MiB for compacted topics.
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.hours": "168",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "socket.request.max.bytes": str(100 * 1024 * 1024),
        "message.max.bytes": str(8 * 1024 * 1024),
        "replica.fetch.max.bytes": str(8 * 1024 * 1024),
    }
    if sasl is not None:
        settings.update(sasl.properties(keystore))
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner, name="kafka-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _admin_probe(bootstrap: str, timeout: float) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout * 1000)),
        client_id="telltale-devstack-probe",
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        topics = await asyncio.wait_for(admin.list_topics(), timeout)
        return list(topics)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when an admin call to ``bootstrap`` succeeds within ``timeout`` seconds."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    # A plain TCP connect first: the admin client logs every refused connection.
    if not _port_open(int(port), host or "127.0.0.1"):
        return False
    try:
        _run_coroutine(_admin_probe(bootstrap, timeout))
    except Exception:
        return False
    return True


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


@dataclass
class KafkaBroker(LocalServer):
    """A running broker. ``bootstrap`` is ``127.0.0.1:PORT`` (PLAINTEXT);
    ``sasl_bootstraps`` maps SASL_PLAINTEXT and SASL_SSL to theirs, when started with
    :class:`SaslListeners`."""

    bootstrap: str
    controller_port: int
    work_dir: Path
    process: ManagedProcess
    cluster_id: str
    owns_work_dir: bool = field(default=True)
    sasl_bootstraps: dict[str, str] = field(default_factory=dict)
    stop_timeout: ClassVar[float] = 30.0

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def login(self, user: str, password: str, *, protocol: str = "SASL_PLAINTEXT",
              mechanism: str = "SCRAM-SHA-512",
              cafile: Path | None = None) -> tuple[str, KafkaSecurity]:
        """(bootstrap, security) of a client logging in to the ``protocol`` listener;
        ``cafile`` is the certificate the SASL_SSL listener was started with."""
        security = KafkaSecurity(protocol=protocol, sasl_mechanism=mechanism,
                                 sasl_username=user, sasl_password=password,
                                 ssl_cafile=cafile)
        return self.sasl_bootstraps[protocol], security

    def run_tool(self, main_class: str, *arguments: str, timeout: float = 120.0) -> None:
        """Run one of Kafka's command-line tools (``kafka.admin.AclCommand``...) against
        this broker's PLAINTEXT listener, whose clients are super users."""
        jvm = _jvm(find_java(), ensure_kafka_jars(), self.work_dir)
        run_checked(main_class, [*jvm, main_class, "--bootstrap-server", self.bootstrap,
                                 *arguments],
                    log_path=self.work_dir / "tools.log", timeout=timeout)


def start_kafka(
    *,
    work_dir: Path | None = None,
    port: int | None = None,
    partitions: int = 8,
    ready_timeout: float = 120.0,
    detached: bool = False,
    version: str = KAFKA_VERSION,
    sasl: SaslListeners | None = None,
) -> KafkaBroker:
    """Format a fresh log dir and start a broker on free (or the given) 127.0.0.1 ports.

    Returns once an admin call succeeds. ``ready_timeout`` is in seconds; on failure the
    error carries the last 40 lines of the broker's log. ``sasl`` adds listeners that
    need a login, each on a free port of its own.
    """
    java = find_java()
    libs = ensure_kafka_jars(version)
    owns_dir = work_dir is None
    if owns_dir:
        _sweep_abandoned_dirs()
    work = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX)) if work_dir is None else work_dir
    work.mkdir(parents=True, exist_ok=True)
    if port is not None and not port_is_free(port):
        raise DevstackError(f"cannot start Kafka: port {port} on 127.0.0.1 is already in use")
    attempts = 1 if port is not None else 3
    last_error: DevstackError | None = None
    listeners = ("CONTROLLER", *(sasl.protocols if sasl else ()))
    for _ in range(attempts):
        broker_port = port if port is not None else free_port()
        ports = {"PLAINTEXT": broker_port}
        for name in listeners:
            ports[name] = free_port()
            while ports[name] in list(ports.values())[:-1]:
                ports[name] = free_port()
        try:
            return _start_once(java, libs, work, ports, partitions, ready_timeout,
                               detached, owns_dir, sasl)
        except _PortTaken as exc:  # someone grabbed the port between pick and bind
            last_error = DevstackError(str(exc))
    assert last_error is not None
    raise last_error


def start_kafka_with_login(*, mechanism: str = "SCRAM-SHA-512",
                           **options: Any) -> tuple[KafkaBroker, str, KafkaSecurity]:
    """A broker (``start_kafka(**options)``) with a SASL_PLAINTEXT listener, and the
    bootstrap and security of a client logging in to it with ``mechanism``: for measuring
    what the login and SASL framing cost."""
    user, password = "telltale", uuid.uuid4().hex
    broker = start_kafka(sasl=SaslListeners({user: password}), **options)
    return broker, *broker.login(user, password, mechanism=mechanism)


class _PortTaken(DevstackError):
    pass


_TEMP_PREFIX = "telltale-kafka-"


def _sweep_abandoned_dirs() -> None:
    """Remove log dirs of brokers whose process is gone (a parent killed with SIGKILL
    takes its broker down but cannot delete the broker's temporary folder)."""
    for pid_file in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*/kafka.pid"):
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(pid_file.parent, ignore_errors=True)


def _jvm(java: str, libs: Path, work: Path) -> list[str]:
    """The ``java`` command line, up to the main class, of a broker or tool in ``work``."""
    return [java, *JVM_OPTIONS, f"-Dlog4j.configuration=file:{work / 'log4j.properties'}",
            f"-Dkafka.logs.dir={work}", "-cp", f"{libs}/*"]


def _start_once(java: str, libs: Path, work: Path, ports: Mapping[str, int],
                partitions: int, ready_timeout: float, detached: bool,
                owns_dir: bool, sasl: SaslListeners | None) -> KafkaBroker:
    broker_port, controller_port = ports["PLAINTEXT"], ports["CONTROLLER"]
    sasl_ports = {name: ports[name] for name in (sasl.protocols if sasl else ())}
    log_dir = work / "data"
    shutil.rmtree(log_dir, ignore_errors=True)  # the formatter refuses a formatted dir
    log_dir.mkdir(parents=True)
    config = work / "server.properties"
    keystore = sasl.write_keystore(work / "keystore.pem") if sasl else None
    config.write_text(server_properties(broker_port=broker_port, controller_port=controller_port,
                                        log_dir=log_dir, partitions=partitions, sasl=sasl,
                                        sasl_ports=sasl_ports, keystore=keystore))
    (work / "log4j.properties").write_text(_LOG4J)
    jvm = _jvm(java, libs, work)
    cluster_id = new_cluster_id()
    run_checked(
        "Kafka storage format",
        [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
         *(sasl.format_arguments() if sasl else ())],
        log_path=work / "format.log",
        timeout=120,
    )
    log_path = work / "kafka.log"
    log_path.write_bytes(b"")
    process = spawn("kafka", [*jvm, "kafka.Kafka", str(config)], log_path=log_path,
                    cwd=work, detached=detached)
    (work / "kafka.pid").write_text(str(process.pid))
    bootstrap = f"127.0.0.1:{broker_port}"
    broker = KafkaBroker(bootstrap, controller_port, work, process, cluster_id, owns_dir,
                         {name: f"127.0.0.1:{port}" for name, port in sasl_ports.items()})
    deadline = time.monotonic() + ready_timeout
    while True:
        if not process.alive:
            log = tail(log_path)
            process.stop(timeout=1)
            if "Address already in use" in log or "BindException" in log:
                taken = "/".join(str(port) for port in ports.values())
                raise _PortTaken(f"Kafka could not bind its ports {taken}:\n{log}")
            raise DevstackError(
                f"Kafka exited with code {process.returncode} during start-up; last lines "
                f"of {log_path}:\n{log}"
            )
        if broker_answers(bootstrap, timeout=3.0):
            return broker
        if time.monotonic() >= deadline:
            log = tail(log_path)
            broker.stop(timeout=10)
            raise DevstackError(
                f"Kafka did not answer an admin call on {bootstrap} within "
                f"{ready_timeout:.0f} s; last lines of {log_path}:\n{log}"
            )
        time.sleep(0.5)
