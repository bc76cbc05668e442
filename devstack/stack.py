"""Kafka and Redis together, as ``telltale dev up|down|status`` and the demo use them.

``up`` starts both detached and writes ``state.json`` (pids, addresses, folders) in the
run directory, so ``status`` and ``down`` work from later invocations. The run directory
is ``$TELLTALE_DEV_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/telltale/dev``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devstack.kafka import (
    KafkaBroker,
    broker_answers,
    cache_root,
    ensure_kafka_jars,
    find_java,
    start_kafka,
)
from devstack.process import DevstackError, pid_alive, stop_group
from devstack.redis import RedisServer, find_redis_server, ping, start_redis


def default_run_dir() -> Path:
    configured = os.environ.get("TELLTALE_DEV_DIR")
    return Path(configured) if configured else cache_root() / "dev"


@dataclass(frozen=True)
class ServiceState:
    name: str
    pid: int
    address: str  # Kafka: 127.0.0.1:PORT; Redis: redis://127.0.0.1:PORT/0
    work_dir: str
    log: str


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int
    running: bool
    answering: bool
    log: str

    @property
    def up(self) -> bool:
        return self.running and self.answering

    def line(self) -> str:
        state = "up" if self.up else ("running, not answering" if self.running else "down")
        return f"{self.name:<6} {state:<24} {self.address:<28} pid {self.pid}  log {self.log}"


class LocalStack:
    """The local Kafka broker and Redis server, started by Telltale itself."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir or default_run_dir()
        self.state_file = self.run_dir / "state.json"
        self._kafka: KafkaBroker | None = None
        self._redis: RedisServer | None = None

    # --- state file ---------------------------------------------------------------------

    def read_state(self) -> dict[str, ServiceState]:
        try:
            raw = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return {name: ServiceState(**entry) for name, entry in raw.items()}

    def _write_state(self, services: dict[str, ServiceState]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in services.items()}, indent=2))
        tmp.replace(self.state_file)

    # --- commands -------------------------------------------------------------------------

    def status(self) -> list[ServiceStatus]:
        result = []
        for name, service in self.read_state().items():
            running = pid_alive(service.pid)
            answering = running and _answers(name, service.address)
            result.append(ServiceStatus(name, service.address, service.pid, running,
                                        answering, service.log))
        return result

    def addresses(self) -> dict[str, str]:
        """{"kafka": "127.0.0.1:PORT", "redis": "redis://..."} of services that are up."""
        return {s.name: s.address for s in self.status() if s.up}

    def up(self, *, detached: bool = True, install: bool = True) -> dict[str, str]:
        """Start whatever is not already up; returns the addresses of both services."""
        current = {s.name: s for s in self.status()}
        if all(name in current and current[name].up for name in ("kafka", "redis")):
            return {name: current[name].address for name in ("kafka", "redis")}
        self.down()  # half-up or stale: start both afresh
        # Everything both need, checked before anything starts.
        find_java()
        ensure_kafka_jars()
        find_redis_server(install=install)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        services: dict[str, ServiceState] = {}
        try:
            redis_dir = self.run_dir / "redis"
            shutil.rmtree(redis_dir, ignore_errors=True)
            self._redis = start_redis(work_dir=redis_dir, detached=detached, install=install)
            services["redis"] = ServiceState("redis", self._redis.process.pid, self._redis.url,
                                             str(redis_dir), str(self._redis.process.log_path))
            self._write_state(services)
            kafka_dir = self.run_dir / "kafka"
            shutil.rmtree(kafka_dir, ignore_errors=True)
            self._kafka = start_kafka(work_dir=kafka_dir, detached=detached)
            services["kafka"] = ServiceState("kafka", self._kafka.process.pid,
                                             self._kafka.bootstrap, str(kafka_dir),
                                             str(self._kafka.log_path))
            self._write_state(services)
        except BaseException:
            self.down()
            raise
        return {name: services[name].address for name in ("kafka", "redis")}

    def down(self, timeout: float = 30.0) -> list[str]:
        """Stop every service named in the state file; returns the names stopped."""
        stopped = []
        for name, service in self.read_state().items():
            if pid_alive(service.pid):
                stop_group(service.pid, timeout=timeout)
                stopped.append(name)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        self._kafka = self._redis = None
        return stopped

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def _answers(name: str, address: str) -> bool:
    if name == "redis":
        port = int(address.rsplit(":", 1)[1].split("/", 1)[0])
        return ping(port)
    if name == "kafka":
        return broker_answers(address, timeout=5.0)
    raise DevstackError(f"unknown service {name!r} in the state file")


def export_lines(addresses: dict[str, Any]) -> list[str]:
    """Shell lines that point Telltale at the local services."""
    return [
        f"export TELLTALE_BROKER=kafka://{addresses['kafka']}",
        f"export TELLTALE_REDIS_URL={addresses['redis']}",
    ]
