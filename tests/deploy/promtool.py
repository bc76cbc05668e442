"""``promtool`` for the tests, from Debian's ``prometheus`` package without the daemon.

The first use runs ``apt-get download prometheus`` and ``dpkg -x`` into a scratch folder
and keeps only the ``promtool`` binary under ``~/.cache/telltale/promtool/`` (or
``$XDG_CACHE_HOME/telltale/promtool/``); later runs reuse it. ``$TELLTALE_PROMTOOL`` or a
``promtool`` on ``PATH`` wins over both.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DOWNLOAD_TIMEOUT_SECONDS = 300


class PromtoolUnavailable(RuntimeError):
    """promtool could not be found or fetched; the message says what was tried."""


@dataclass(frozen=True)
class PromtoolResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "telltale" / "promtool"


def ensure_promtool() -> Path:
    """Path of a working promtool binary, downloading it once if needed."""
    configured = os.environ.get("TELLTALE_PROMTOOL")
    if configured:
        return Path(configured)
    on_path = shutil.which("promtool")
    if on_path:
        return Path(on_path)
    target = cache_dir() / "promtool"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise PromtoolUnavailable(
            "promtool is not installed and apt-get/dpkg are missing to fetch Debian's "
            "'prometheus' package; install promtool or set TELLTALE_PROMTOOL")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Several test processes may start at once: one downloads, the others wait.
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            _download_into(target)
    return target


def _download_into(target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="promtool-") as scratch:
        work = Path(scratch)
        # apt's sandbox user cannot write into a private temp dir; allow it to read/write.
        work.chmod(0o777)
        download = ["apt-get", "download", "prometheus"]
        result = _run(download, work)
        if result.returncode != 0:
            # Fresh containers have no package lists yet.
            _run(["apt-get", "update"], work)
            result = _run(download, work)
        debs = sorted(work.glob("prometheus_*.deb"))
        if result.returncode != 0 or not debs:
            raise PromtoolUnavailable(f"apt-get download prometheus failed:\n{result.output}")
        extracted = work / "root"
        unpack = _run(["dpkg", "-x", str(debs[-1]), str(extracted)], work)
        binary = extracted / "usr" / "bin" / "promtool"
        if unpack.returncode != 0 or not binary.is_file():
            raise PromtoolUnavailable(f"dpkg -x did not yield usr/bin/promtool:\n{unpack.output}")
        partial = target.with_suffix(".partial")
        shutil.copy2(binary, partial)
        partial.chmod(0o755)
        partial.replace(target)


def _run(argv: Sequence[str], cwd: Path) -> PromtoolResult:
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True,
                          timeout=DOWNLOAD_TIMEOUT_SECONDS, check=False)
    return PromtoolResult(proc.returncode, proc.stdout, proc.stderr)


def promtool(binary: Path, *args: str, stdin: bytes | None = None,
             timeout: float = 60.0) -> PromtoolResult:
    """Run ``promtool args...`` and capture its result (never raises on a failed check)."""
    proc = subprocess.run([str(binary), *args], input=stdin, capture_output=True,
                          timeout=timeout, check=False)
    return PromtoolResult(proc.returncode, proc.stdout.decode(errors="replace"),
                          proc.stderr.decode(errors="replace"))
