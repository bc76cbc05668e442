"""The local services: clear errors, clean stops, and `telltale dev up|status|down`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.kafka import (
    ensure_kafka_jars,
    find_java,
    new_cluster_id,
    server_properties,
    start_kafka,
)
from devstack.process import DevstackError, free_port, pid_alive, wait_until
from devstack.redis import find_redis_server, ping, start_redis
from devstack.workers import settings_env
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding only an empty folder, and no JAVA_HOME."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return empty


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_cluster_ids_never_look_like_an_option() -> None:
    """One base64 id in 64 starts with "-", which the storage tool takes for an option."""
    ids = [new_cluster_id() for _ in range(5_000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids) and len(set(ids)) == len(ids)


def test_missing_java_is_named_with_the_fix(bare_path: Path) -> None:
    with pytest.raises(DevstackError, match=r"Java was not found.*openjdk-17"):
        find_java()


def test_missing_maven_is_named_when_jars_are_not_cached(
    bare_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DevstackError, match=r"Maven was not found.*apt-get install -y maven"):
        ensure_kafka_jars()


def test_missing_redis_server_is_named_with_the_fix(bare_path: Path) -> None:
    with pytest.raises(DevstackError, match=r"redis-server was not found.*apt-get"):
        find_redis_server(install=False)


def test_redis_refuses_a_port_in_use(taken_port: int) -> None:
    with pytest.raises(DevstackError, match=f"port {taken_port} .* already in use"):
        start_redis(port=taken_port)


def test_kafka_refuses_a_port_in_use(taken_port: int) -> None:
    with pytest.raises(DevstackError, match=f"port {taken_port} .* already in use"):
        start_kafka(port=taken_port)


def test_broker_config_is_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    text = server_properties(broker_port=1111, controller_port=2222, log_dir=tmp_path,
                             partitions=3)
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:2222"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1111,CONTROLLER://127.0.0.1:2222"
    assert props["offsets.topic.num.partitions"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "3"


def test_settings_round_trip_through_environment(tmp_path: Path) -> None:
    settings = Settings(topic_prefix="x1", data_dir=tmp_path, web_port=7001, replay=True,
                        tick_interval=0.25, scoring_config=None)
    assert Settings.from_env(settings_env(settings)) == settings


@pytest.fixture
def parent_of_a_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A Python process that spawned a server (``sleep 120``) through devstack, and the
    server's pid."""
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from devstack.process import spawn
        proc = spawn("sleeper", ["sleep", "120"], log_path=Path({str(tmp_path / 'log')!r}))
        Path({str(pid_file)!r}).write_text(str(proc.pid))
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        assert wait_until(pid_file.exists, timeout=20)
        yield parent, int(pid_file.read_text())
    finally:
        parent.kill()
        parent.wait()


def test_children_die_with_a_parent_killed_by_sigkill(
        parent_of_a_server: tuple[subprocess.Popen[bytes], int]) -> None:
    """Even SIGKILL of the parent (no atexit, no handler) takes its servers down."""
    parent, child = parent_of_a_server
    assert pid_alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    assert wait_until(lambda: not pid_alive(child), timeout=10)


def test_children_stop_when_the_parent_gets_sigterm(
        parent_of_a_server: tuple[subprocess.Popen[bytes], int]) -> None:
    parent, child = parent_of_a_server
    parent.terminate()
    assert parent.wait(timeout=15) == -signal.SIGTERM
    assert wait_until(lambda: not pid_alive(child), timeout=10)


@pytest.mark.integration
def test_redis_starts_answers_and_stops() -> None:
    server = start_redis()
    pid, work_dir = server.process.pid, server.work_dir
    assert ping(server.port)
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    server.stop()
    assert not pid_alive(pid)
    assert not ping(server.port)
    assert not work_dir.exists()


@pytest.mark.integration
@pytest.mark.slow
def test_kafka_that_is_not_ready_in_time_is_stopped_and_its_log_shown(tmp_path: Path) -> None:
    with pytest.raises(DevstackError, match=r"(?s)did not answer an admin call.*last lines"):
        start_kafka(work_dir=tmp_path / "kafka", ready_timeout=0.1)
    assert _processes_mentioning(str(tmp_path)) == []


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _telltale(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.integration
@pytest.mark.slow
def test_dev_up_status_down(tmp_path: Path) -> None:
    env = {**os.environ, "TELLTALE_DEV_DIR": str(tmp_path / "dev")}
    try:
        up = _telltale("dev", "up", env=env)
        assert up.returncode == 0, up.stderr
        exports = dict(line.removeprefix("export ").split("=", 1)
                       for line in up.stdout.splitlines())
        assert exports["TELLTALE_BROKER"].startswith("kafka://127.0.0.1:")
        assert exports["TELLTALE_REDIS_URL"].startswith("redis://127.0.0.1:")

        status = _telltale("dev", "status", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        assert any(line.startswith("kafka") and " up " in line and
                   exports["TELLTALE_BROKER"].removeprefix("kafka://") in line
                   for line in lines)
        assert any(line.startswith("redis") and " up " in line and
                   exports["TELLTALE_REDIS_URL"] in line for line in lines)
        pids = [int(line.split(" pid ")[1].split()[0]) for line in lines]

        down = _telltale("dev", "down", env=env)
        assert down.returncode == 0, down.stderr
        assert all(not pid_alive(pid) for pid in pids)
        after = _telltale("dev", "status", env=env)
        assert after.returncode == 3
        assert after.stdout.startswith("down")
    finally:
        _telltale("dev", "down", env=env)


@pytest.mark.integration
def test_dev_up_without_java_fails_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    redis_server = shutil.which("redis-server")
    assert redis_server is not None
    (bin_dir / "redis-server").symlink_to(redis_server)
    env = {**os.environ, "PATH": str(bin_dir), "TELLTALE_DEV_DIR": str(tmp_path / "dev")}
    env.pop("JAVA_HOME", None)
    result = _telltale("dev", "up", env=env)
    assert result.returncode == 1
    assert "Java was not found" in result.stderr
    assert not (tmp_path / "dev" / "state.json").exists()
    time.sleep(0.2)
    status = _telltale("dev", "status", env=env)
    assert status.returncode == 3


def test_free_port_never_hands_out_a_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker's web and metrics ports come from two calls in a row; the kernel may offer
    # the same port again once the probe closes, and the worker then refuses to start.
    offered = iter([41_001, 41_001, 41_001, 41_002])

    class Probe:
        def __init__(self, *_: object) -> None:
            self.port = next(offered)

        def __enter__(self) -> Probe:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def bind(self, _: object) -> None:
            pass

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    import devstack.process as process
    monkeypatch.setattr(process.socket, "socket", Probe)
    monkeypatch.setattr(process, "_HANDED_OUT", set())
    assert [free_port(), free_port()] == [41_001, 41_002]
