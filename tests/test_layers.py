"""Dependencies point down: the project's real import graph against an allow-list of layers.

Every module of the project's packages is parsed (imports inside functions count; those
under ``if TYPE_CHECKING:`` do not, as they never run). Importing ``a.b.c`` also runs the
packages ``a`` and ``a.b``, so those are edges too. A module may import its own layer and
the layers below it, never one above; the graph has no cycles; and the worker's modules,
followed transitively, never reach the development stack or the history tools.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents.app import MODULES, SKELETON_MODULES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "scoring", "state", "agents", "devstack", "history")

#: Bottom first. A module belongs to the layer of its longest matching prefix.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("configuration", ("streams.settings", "streams.topics", "streams.kafka_security",
                       "streams.sources_config")),
    ("pure core and message formats", ("scoring", "streams", "state.aggregates",
                                       "state.keys", "state.identity")),
    ("state", ("state", "streams.kafka_admin")),
    ("app and metrics", ("agents.app", "agents.metrics", "agents.lag")),
    ("sinks", ("agents.sinks",)),
    ("workspace configuration", ("agents.workspaces",)),
    ("stream processors", ("agents.resolve", "agents.score", "agents.notify",
                           "agents.actions", "agents.skeleton")),
    ("web apps", ("agents.basic_auth", "agents.collector", "agents.sources", "agents.intake",
                  "agents.problems", "agents.health", "agents.api", "agents.page")),
    ("worker", ("agents.worker",)),
    ("development tools", ("devstack", "history")),
    ("commands", ("agents",)),
)

#: Never reached from the worker: they start local servers or read files of history.
DEV_ONLY = ("devstack", "history")

#: Client libraries the pure core and the message formats must not reach, even indirectly.
CLIENT_LIBRARIES = frozenset({"faust", "mode", "aiokafka", "kafka", "redis", "aiohttp",
                              "rocksdict", "prometheus_client", "requests", "httpx"})


@dataclass
class ImportGraph:
    """Project modules (dotted names) with the project modules and the third-party top-level
    packages each imports at run time."""

    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    external: dict[str, set[str]] = field(default_factory=dict)

    def reachable(self, start: Iterable[str]) -> set[str]:
        """``start`` and every module it imports, transitively."""
        seen: set[str] = set()
        todo = [name for name in start if name in self.modules]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.edges[name] - seen)
        return seen


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(nodes: Iterable[ast.AST]) -> Iterable[ast.Import | ast.ImportFrom]:
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from _runtime_imports(node.orelse)
        else:
            yield from _runtime_imports(ast.iter_child_nodes(node))


def build_graph(root: Path, packages: Iterable[str]) -> ImportGraph:
    graph = ImportGraph()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            graph.modules[_module_name(root, path)] = path

    def resolve(dotted: str) -> str | None:
        """The project module that ``dotted`` (a module, or a name inside one) lives in."""
        while dotted and dotted not in graph.modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def with_parents(name: str) -> set[str]:
        parts = name.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & graph.modules.keys()

    for name, path in graph.modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        external: set[str] = set()
        for node in _runtime_imports([ast.parse(path.read_text(), str(path))]):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[:len(here) - node.level + 1]
                    base = ".".join([*here, base] if base else here)
                wanted = [f"{base}.{alias.name}" for alias in node.names]
            for dotted in wanted:
                found = resolve(dotted)
                if found is None:
                    external.add(dotted.split(".")[0])
                else:
                    targets |= with_parents(found)
        # A module's own package runs before it, but that is not an import of its own.
        graph.edges[name] = targets - {name} - with_parents(name)
        graph.external[name] = external
    return graph


def layer_of(module: str, layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS) -> int:
    if "." not in module:
        return 0  # a top-level package only names its folder: any import in it is upward
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best < 0:
        raise KeyError(f"{module} is in no layer: add it to LAYERS")
    return best


def upward_imports(graph: ImportGraph,
                   layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS) -> list[str]:
    out = []
    for name in sorted(graph.edges):
        mine = layer_of(name, layers)
        for target in sorted(graph.edges[name]):
            theirs = layer_of(target, layers)
            if theirs > mine:
                out.append(f"{name} ({layers[mine][0]}) imports {target} ({layers[theirs][0]})")
    return out


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph(ROOT, PACKAGES)


def test_every_module_has_a_layer(graph: ImportGraph) -> None:
    for name in graph.modules:
        layer_of(name)


def test_imports_only_point_down(graph: ImportGraph) -> None:
    assert upward_imports(graph) == []


def test_no_import_cycles(graph: ImportGraph) -> None:
    assert cycles(graph.edges) == []


def test_the_worker_never_reaches_the_development_stack(graph: ImportGraph) -> None:
    worker = graph.reachable(["agents.worker", "agents.app", *MODULES, *SKELETON_MODULES])
    assert "agents.score" in worker and "agents.intake" in worker
    assert sorted(m for m in worker if m.split(".")[0] in DEV_ONLY) == []


def test_the_pure_core_reaches_no_client_library(graph: ImportGraph) -> None:
    core_layer = [index for index, (name, _) in enumerate(LAYERS)
                  if name == "pure core and message formats"]
    problems = []
    for name in sorted(graph.modules):
        if layer_of(name) in core_layer:
            reached = {lib for m in graph.reachable([name]) for lib in graph.external[m]}
            if reached & CLIENT_LIBRARIES:
                problems.append(f"{name} reaches {sorted(reached & CLIENT_LIBRARIES)}")
    assert problems == []


def test_the_scan_catches_what_it_should(tmp_path: Path) -> None:
    files = {
        "low/__init__.py": "",
        "low/a.py": "import redis\n",
        "low/b.py": "def f():\n    from high import views\n",
        "low/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from high import x\n",
        "high/__init__.py": "",
        "high/views.py": "from low import a\nfrom . import cyc\n",
        "high/cyc.py": "from high.views import page\n",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    mini = build_graph(tmp_path, ["low", "high"])
    layers = (("low", ("low",)), ("high", ("high",)))
    assert mini.edges["low.b"] == {"high", "high.views"}  # inside a function, with its package
    assert mini.edges["low.c"] == set()  # only for the type checker
    assert mini.external["low.a"] == {"redis"}
    assert upward_imports(mini, layers) == ["low.b (low) imports high.views (high)"]
    assert cycles(mini.edges) == [["high.cyc", "high.views"]]
    assert "low.a" in mini.reachable(["high.cyc"])
