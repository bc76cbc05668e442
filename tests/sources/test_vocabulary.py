"""The documented event vocabulary (docs/events.md, streams/schemas/events.v1.json) says
exactly what the scoring core reads: the event names of scoring/vocabulary.py and, for
each, the properties scoring/apply.py reads under that event's branch."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import jsonschema

from scoring import vocabulary as v
from scoring.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "streams/schemas/events.v1.json").read_text())
DOC = (ROOT / "docs/events.md").read_text()
_CONSTANTS = {name: value for name, value in vars(v).items()
              if name.isupper() and isinstance(value, str)}


def _constant(node: ast.AST) -> str | None:
    """The value of ``v.NAME``; None for anything else."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id == "v":
        return _CONSTANTS.get(node.attr)
    return None


def _branch_event(test: ast.AST) -> str | None:
    """The event an ``if name == v.EVENT`` branch is for."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 \
            and isinstance(test.ops[0], ast.Eq):
        return _constant(test.comparators[0])
    return None


def _property_reads(body: list[ast.stmt]) -> tuple[set[str], list[str]]:
    """(constants read with ``.get(v.X)`` on properties, literal keys read instead)."""
    names: set[str] = set()
    literals: list[str] = []
    for stmt in body:
        for node in ast.walk(stmt):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get" and node.args):
                continue
            owner = node.func.value
            on_properties = (isinstance(owner, ast.Name) and owner.id == "props") or (
                isinstance(owner, ast.Attribute) and owner.attr == "properties")
            if not on_properties:
                continue
            key = node.args[0]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                literals.append(key.value)
            elif (value := _constant(key)) is not None:
                names.add(value)
    return names, literals


def _reads_by_event() -> tuple[dict[str, set[str]], list[str]]:
    tree = ast.parse((ROOT / "scoring/apply.py").read_text())
    reads: dict[str, set[str]] = {}
    literals: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (event := _branch_event(node.test)) is not None:
            names, found = _property_reads(node.body)
            reads.setdefault(event, set()).update(names)
            literals += found
    return reads, literals


def test_apply_reads_properties_only_through_the_vocabulary() -> None:
    reads, literals = _reads_by_event()
    assert literals == []
    for event, names in reads.items():
        assert names == set(v.EVENT_PROPERTIES[event]), event


def test_every_recognised_event_is_in_the_vocabulary() -> None:
    reads, _ = _reads_by_event()
    assert set(reads) <= set(v.EVENT_PROPERTIES)
    assert set(v.EVENT_PROPERTIES) >= v.NON_ACTIVITY
    assert set(v.MEETING_KINDS) <= set(v.EVENT_PROPERTIES)


def test_the_schema_lists_each_event_with_exactly_its_properties() -> None:
    defs: dict[str, Any] = SCHEMA["$defs"]
    assert set(defs) == set(v.EVENT_PROPERTIES)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for name, definition in defs.items():
        assert definition["properties"]["event"] == {"const": name}
        documented = set(definition["properties"]["properties"]["properties"])
        assert documented == set(v.EVENT_PROPERTIES[name]), name
        assert definition["examples"], name
        for example in definition["examples"]:
            validator.validate(example)
            assert set(example["properties"]) == documented, name


def test_the_schema_refuses_values_the_core_would_ignore() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert not validator.is_valid({"type": "track", "event": v.CSAT_SUBMITTED,
                                   "properties": {"score": 9}})
    assert not validator.is_valid({"type": "track", "event": v.NPS_SUBMITTED,
                                   "properties": {"score": 11}})


def test_the_page_documents_every_event_and_property() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| (?:`([^`]+)`|\(none\)) \|", DOC, re.M)
    documented: dict[str, set[str]] = {}
    for event, prop in rows:
        documented.setdefault(event, set())
        if prop:
            documented[event].add(prop)
    # milestone rows name milestones, not events
    milestones = {m.name for m in load_config(None).milestones}
    for name in milestones:
        documented.pop(name, None)
    assert documented == {name: set(props) for name, props in v.EVENT_PROPERTIES.items()}


def test_the_page_lists_the_default_milestones() -> None:
    for milestone in load_config(None).milestones:
        assert re.search(rf"^\| `{milestone.name}` \| `{milestone.event}` \| "
                         rf"{milestone.due_days} days \|$", DOC, re.M), milestone.name
