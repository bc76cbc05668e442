"""Just enough PromQL reading to check that dashboards and rules only use real metrics.

Not a parser: it strips strings, numbers, ranges and grouping clauses, then whatever
identifier is not a function call or keyword is a metric name. Label matchers and
grouping labels are collected so tests can check them against the metric's labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.metrics import MetricWrapperBase

from agents import metrics

KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2",
})
# Labels Prometheus attaches to every scraped series (target labels from our scrape
# config), plus `le` of histogram buckets.
TARGET_LABELS = frozenset({"job", "instance", "service"})
# Series Prometheus makes itself, not the worker.
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)?\s*\{(?P<matchers>[^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\((?P<labels>[^)]*)\)")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:.])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(
    r"label_values\(\s*(?P<metric>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(?P<m>[^}]*)\})?\s*,"
    r"\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)")


@dataclass
class Usage:
    """Metric names, label matchers per metric, and grouping labels of one expression."""

    metrics: set[str] = field(default_factory=set)
    matchers: dict[str, set[str]] = field(default_factory=dict)
    grouping: set[str] = field(default_factory=set)


def usage(expr: str) -> Usage:
    found = Usage()
    label_values = _LABEL_VALUES.fullmatch(expr.strip())
    if label_values:
        name = label_values["metric"]
        found.metrics.add(name)
        found.matchers[name] = set(_MATCHER.findall(label_values["m"] or ""))
        found.grouping.add(label_values["label"])
        return found
    text = _STRING.sub('""', expr)
    for selector in _SELECTOR.finditer(text):
        labels = set(_MATCHER.findall(selector["matchers"]))
        if selector["name"] and selector["name"] not in KEYWORDS:
            found.matchers.setdefault(selector["name"], set()).update(labels)
        elif "__name__" not in labels:
            found.grouping.update(labels)
    text = _SELECTOR.sub(lambda m: (m["name"] or "") + " ", text)
    for grouping in _GROUPING.finditer(text):
        found.grouping.update(
            label.strip() for label in grouping["labels"].split(",") if label.strip())
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    for match in _IDENT.finditer(text):
        name = match.group()
        rest = text[match.end():].lstrip()
        if name in KEYWORDS or rest.startswith("("):
            continue
        found.metrics.add(name)
    return found


def exported_labels() -> dict[str, frozenset[str]]:
    """Sample name → label names, for every series ``agents.metrics.REGISTRY`` exports."""
    labels: dict[str, frozenset[str]] = {}
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            names = frozenset(obj._labelnames)
            base = obj._name
            kind = obj._type
            if kind == "counter":
                labels[base + "_total"] = names
            elif kind == "histogram":
                for suffix in ("_sum", "_count"):
                    labels[base + suffix] = names
                labels[base + "_bucket"] = names | {"le"}
            else:
                labels[base] = names
    for name, (_help, category) in metrics.PORTFOLIO.items():
        labels[name] = frozenset({"workspace", category})
    for name in metrics.metric_names():
        labels.setdefault(name, frozenset({"generation", "implementation", "major", "minor",
                                           "patchlevel", "version"}))
    return labels
