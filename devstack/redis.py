"""A throw-away Redis from Debian's ``redis-server`` package: 127.0.0.1, a free port, no
persistence (``--save '' --appendonly no``), ready once it answers PING."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from devstack.process import (
    DevstackError,
    LocalServer,
    ManagedProcess,
    free_port,
    port_is_free,
    spawn,
    tail,
)

_SEARCH_PATH = ("/usr/bin", "/usr/local/bin", "/usr/sbin", "/opt/homebrew/bin")


def find_redis_server(*, install: bool = False) -> str:
    """Path of ``redis-server``; with ``install=True`` and root, apt-get installs it."""
    found = shutil.which("redis-server")
    if found:
        return found
    if install and _can_apt_install():
        _apt_install_redis()
        found = shutil.which("redis-server") or _first_existing("redis-server")
        if found:
            return found
    raise DevstackError(
        "redis-server was not found on PATH. Install Debian's package as root with "
        "`apt-get update && apt-get install -y redis-server` (scripts/bootstrap does this "
        "when run as root), or point TELLTALE_TEST_REDIS / TELLTALE_REDIS_URL at a running "
        "Redis."
    )


def _first_existing(name: str) -> str | None:
    for folder in _SEARCH_PATH:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _can_apt_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_install_redis() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevstackError(f"`{' '.join(argv)}` failed:\n{result.stderr[-2000:]}")


def ping(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True when Redis at ``host:port`` answers PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer(LocalServer):
    """A running redis-server; ``url`` is ``redis://127.0.0.1:PORT/0``."""

    port: int
    work_dir: Path
    process: ManagedProcess
    owns_work_dir: bool = True
    stop_timeout: ClassVar[float] = 10.0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(*, work_dir: Path | None = None, port: int | None = None,
                ready_timeout: float = 20.0, detached: bool = False,
                install: bool = False) -> RedisServer:
    """Start redis-server on a free (or the given) 127.0.0.1 port; returns once it PONGs."""
    binary = find_redis_server(install=install)
    owns_dir = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="telltale-redis-")) if work_dir is None else work_dir
    work.mkdir(parents=True, exist_ok=True)
    if port is not None and not port_is_free(port):
        raise DevstackError(f"cannot start Redis: port {port} on 127.0.0.1 is already in use")
    attempts = 1 if port is not None else 3
    message = ""
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        log_path = work / "redis.log"
        argv = [binary, "--port", str(chosen), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(work), "--logfile", "", "--protected-mode", "yes"]
        process = spawn("redis", argv, log_path=log_path, cwd=work, detached=detached)
        deadline = time.monotonic() + ready_timeout
        while process.alive and time.monotonic() < deadline:
            if ping(chosen):
                return RedisServer(chosen, work, process, owns_dir)
            time.sleep(0.05)
        log = tail(log_path)
        process.stop(timeout=2)
        if "Address already in use" in log:
            message = f"Redis could not bind port {chosen}:\n{log}"
            continue
        raise DevstackError(
            f"Redis did not answer PING on 127.0.0.1:{chosen} within {ready_timeout:.0f} s; "
            f"last lines of {log_path}:\n{log}"
        )
    raise DevstackError(message)
