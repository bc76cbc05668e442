"""The scoring core stays pure: no broker, store, network or wall-clock access."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = [*sorted((ROOT / "scoring").glob("*.py")), ROOT / "state" / "aggregates.py"]
FORBIDDEN_MODULES = {
    "faust", "aiokafka", "kafka", "redis", "aiohttp", "socket", "urllib", "http",
    "requests", "httpx", "asyncio", "rocksdict", "subprocess",
}
WALL_CLOCK = {("time", "time"), ("time", "time_ns"), ("datetime", "now"),
              ("datetime", "utcnow"), ("date", "today"), ("datetime", "today")}


def problems(source: str, name: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    out.append(f"{name}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES:
                out.append(f"{name}:{node.lineno} imports from {node.module}")
            for alias in node.names:
                if (root, alias.name) in WALL_CLOCK or (node.module, alias.name) in WALL_CLOCK:
                    out.append(f"{name}:{node.lineno} imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Attribute):
            base = node.value
            base_name = base.id if isinstance(base, ast.Name) else (
                base.attr if isinstance(base, ast.Attribute) else None
            )
            if base_name is not None and (base_name, node.attr) in WALL_CLOCK:
                out.append(f"{name}:{node.lineno} calls {base_name}.{node.attr}")
    return out


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert problems(path.read_text(), path.name) == []


def test_the_scan_catches_what_it_should() -> None:
    bad = (
        "import redis\nfrom aiokafka import AIOKafkaConsumer\nimport time\n"
        "from datetime import datetime, date\nimport datetime as dt\n"
        "x = time.time()\ny = datetime.now()\nz = date.today()\nw = dt.datetime.utcnow()\n"
        "from time import time\nimport urllib.request\n"
    )
    found = problems(bad, "bad.py")
    assert len(found) == 8, found


def test_core_modules_exist() -> None:
    names = {p.name for p in CORE}
    assert {"engine.py", "config.py", "replay.py", "aggregates.py"} <= names
