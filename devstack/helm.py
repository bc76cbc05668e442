"""The ``helm`` binary, built once from the Go module proxy.

``go install helm.sh/helm/v3/cmd/helm@<version>`` puts it in
``${XDG_CACHE_HOME:-~/.cache}/telltale/helm-<version>/`` (about two minutes on two cores,
once): the chart's tests render it with ``helm template``, which needs no cluster.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devstack.kafka import _file_lock, cache_root
from devstack.process import DevstackError, run_checked

HELM_VERSION = "v3.19.0"


def helm_home(version: str = HELM_VERSION) -> Path:
    return cache_root() / f"helm-{version}"


def find_go() -> str | None:
    """``go`` on PATH, or where the official Go tarball installs it."""
    return shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")


def ensure_helm(version: str = HELM_VERSION, *, timeout: float = 1200.0) -> Path:
    """The path of ``helm`` ``version``, building it with ``go install`` the first time."""
    home = helm_home(version)
    binary = home / "helm"
    if binary.is_file():
        return binary
    with _file_lock(home / ".lock"):
        if binary.is_file():  # another process built it meanwhile
            return binary
        go = find_go()
        if go is None:
            raise DevstackError(
                "Go was not found (no `go` on PATH). It builds helm from the Go module proxy "
                f"once into {home}: install Go 1.24 or later (https://go.dev/dl/).")
        staging = home / "bin.partial"
        shutil.rmtree(staging, ignore_errors=True)
        run_checked("go install (helm)",
                    [go, "install", f"helm.sh/helm/v3/cmd/helm@{version}"],
                    log_path=home / "go-install.log", timeout=timeout, cwd=home,
                    env={**os.environ, "GOBIN": str(staging)})
        built = staging / "helm"
        if not built.is_file():
            raise DevstackError(f"go install finished but built no helm; see "
                                f"{home / 'go-install.log'}")
        built.rename(binary)
        shutil.rmtree(staging, ignore_errors=True)
    return binary
