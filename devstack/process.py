"""Child processes that never outlive the program that started them.

Every server the devstack starts runs in its own process group (so a terminal's Ctrl-C
does not hit it half-way through a graceful stop) and is stopped in three ways, whichever
comes first: an explicit ``stop()``, the ``atexit`` hook or a SIGTERM/SIGHUP handler of the
parent, and - when the parent is killed with SIGKILL and no Python code runs at all - the
kernel's parent-death signal (``PR_SET_PDEATHSIG``), set in the child before ``exec``.

The parent-death signal belongs to the *thread* that forked: start servers from a
long-lived thread (the main thread, as pytest fixtures and the CLI do), never from a
short-lived helper thread, or they die with it.

``detached=True`` (used by ``telltale dev up``) skips all three: that server is meant to
outlive the command and is stopped later by ``telltale dev down`` through its pid.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any, ClassVar, Self


class DevstackError(RuntimeError):
    """A local service could not be provided; the message says why and what to do."""


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:  # not Linux: the atexit and signal hooks still apply
        pass


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel picks it).

    The kernel may offer a port again as soon as the probe closes, so two calls in a row
    (a web port and a metrics port for one worker) could agree; a port is never handed
    out twice by one process.
    """
    for _ in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise DevstackError("the kernel kept offering ports this process has already used")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in {"Z", "X"}


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A server process in its own process group, stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes] | None, pid: int,
                 log_path: Path, detached: bool) -> None:
        self.name = name
        self._popen = popen
        self.pid = pid
        self.log_path = log_path
        self.detached = detached

    @property
    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return pid_alive(self.pid)

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, wait up to ``timeout`` seconds, then SIGKILL it."""
        _forget(self)
        stop_group(self.pid, timeout, popen=self._popen)


class LocalServer:
    """What a server started here (Kafka, Redis) shares: stopping it stops its process and
    removes its work dir when it made that dir; as a context manager it stops on exit."""

    process: ManagedProcess
    work_dir: Path
    owns_work_dir: bool
    #: Seconds a stop waits for SIGTERM to work before it sends SIGKILL.
    stop_timeout: ClassVar[float] = 20.0

    def stop(self, timeout: float | None = None) -> None:
        self.process.stop(timeout=self.stop_timeout if timeout is None else timeout)
        if self.owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_group(pid: int, timeout: float = 20.0,
               popen: subprocess.Popen[bytes] | None = None) -> None:
    """Stop the process group led by ``pid``: SIGTERM, wait, SIGKILL after ``timeout`` s."""
    if not _signal_group(pid, signal.SIGTERM):
        _reap(popen)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                break
        elif not pid_alive(pid):
            break
        time.sleep(0.1)
    else:
        _signal_group(pid, signal.SIGKILL)
    # Whatever else lives in the group (helpers the server forked) goes too.
    _signal_group(pid, signal.SIGKILL)
    _reap(popen)


def _signal_group(pid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False


def _reap(popen: subprocess.Popen[bytes] | None) -> None:
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)


def spawn(name: str, argv: Sequence[str], *, log_path: Path, cwd: Path | None = None,
          env: dict[str, str] | None = None, detached: bool = False) -> ManagedProcess:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log: IO[bytes]
    with open(log_path, "ab") as log:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=None if detached else _die_with_parent,
                close_fds=True,
            )
        except FileNotFoundError as exc:
            raise DevstackError(f"cannot start {name}: {argv[0]} not found") from exc
        except OSError as exc:
            if exc.errno == errno.EACCES:
                raise DevstackError(f"cannot start {name}: {argv[0]} is not executable") from exc
            raise
    proc = ManagedProcess(name, popen, popen.pid, log_path, detached)
    if not detached:
        _remember(proc)
    return proc


def run_checked(name: str, argv: Sequence[str], *, log_path: Path, timeout: float,
                cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run a short helper command to completion (in its own group, killed on timeout)."""
    proc = spawn(name, argv, log_path=log_path, cwd=cwd, env=env)
    try:
        assert proc._popen is not None
        code = proc._popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.stop(timeout=2)
        raise DevstackError(
            f"{name} did not finish within {timeout:.0f} s; last lines of {log_path}:\n"
            f"{tail(log_path)}"
        ) from None
    finally:
        _forget(proc)
    if code != 0:
        raise DevstackError(
            f"{name} failed with exit code {code}; last lines of {log_path}:\n{tail(log_path)}"
        )


# --- dying with the parent --------------------------------------------------------------

_lock = threading.Lock()
_children: dict[int, ManagedProcess] = {}
_hooks_installed = False
_previous_handlers: dict[int, Any] = {}


def _remember(proc: ManagedProcess) -> None:
    global _hooks_installed
    with _lock:
        _children[proc.pid] = proc
        if _hooks_installed:
            return
        _hooks_installed = True
    atexit.register(stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(sig)
            _previous_handlers[sig] = previous
            signal.signal(sig, _on_signal)


def _forget(proc: ManagedProcess) -> None:
    with _lock:
        _children.pop(proc.pid, None)


def stop_all() -> None:
    """Stop every non-detached child still running (called at exit and on SIGTERM)."""
    with _lock:
        children = list(_children.values())
        _children.clear()
    for proc in children:
        with contextlib.suppress(Exception):
            stop_group(proc.pid, timeout=10, popen=proc._popen)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stop_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # Default action: die of the same signal, as if no handler had been installed.
    signal.signal(signum, signal.SIG_DFL)
    sys.stdout.flush()
    os.kill(os.getpid(), signum)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
