"""The Helm chart renders, every object is valid Kubernetes, and it says what a worker needs.

``helm template`` renders without a cluster; each object is checked offline against the
Kubernetes JSON schemas that the ``kubernetes-validate`` package ships (strict: an unknown
field is an error). The ServiceMonitor is a Prometheus Operator CRD, outside those
schemas: :data:`SERVICE_MONITOR_SCHEMA` holds the part of its CRD the chart uses.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from devstack.helm import ensure_helm, find_go
from streams.settings import ENV_PREFIX, Settings
from tests.deploy.conftest import REPO

CHART = REPO / "deploy" / "helm" / "telltale"
# The first run without scripts/bootstrap builds helm (minutes on two busy cores).
pytestmark = pytest.mark.timeout(1500)
#: The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest shipped.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")
SECRET_SETTINGS = {"write_keys", "api_tokens", "kafka_sasl_password", "slack_webhook_url"}

#: From the Prometheus Operator's ServiceMonitor CRD (monitoring.coreos.com/v1): the
#: fields the chart sets, with their types, and no others.
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"],
                     "properties": {"name": {"type": "string"},
                                    "labels": {"type": "object",
                                               "additionalProperties": {"type": "string"}}}},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "additionalProperties": False,
                             "properties": {"matchLabels": {
                                 "type": "object",
                                 "additionalProperties": {"type": "string"}}}},
                "namespaceSelector": {"type": "object", "additionalProperties": False,
                                      "properties": {
                                          "any": {"type": "boolean"},
                                          "matchNames": {"type": "array",
                                                         "items": {"type": "string"}}}},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["port"],
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string", "pattern": "^/"},
                        "interval": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                        "scrapeTimeout": {"type": "string",
                                          "pattern": "^([0-9]+(ms|s|m|h))+$"},
                    }}},
            },
        },
    },
}


@pytest.fixture(scope="module")
def helm() -> Path:
    if find_go() is None:
        pytest.skip("no Go toolchain to build helm from the Go module proxy")
    return ensure_helm()


def _render(helm: Path, *values: dict[str, Any],
            kubernetes: str = KUBERNETES_VERSIONS[-1]) -> list[dict[str, Any]]:
    """The chart's objects, rendered as release ``tt`` in namespace ``cs``."""
    argv = [str(helm), "template", "tt", str(CHART), "--namespace", "cs",
            "--kube-version", kubernetes]
    with tempfile.TemporaryDirectory() as folder:
        for index, extra in enumerate(values):
            path = Path(folder) / f"values-{index}.yaml"
            path.write_text(yaml.safe_dump(extra), encoding="utf-8")
            argv += ["--values", str(path)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RenderError(done.stderr.strip())
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


class RenderError(Exception):
    pass


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def _worker(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [statefulset] = _by_kind(objects)["StatefulSet"]
    container: dict[str, Any] = statefulset["spec"]["template"]["spec"]["containers"][0]
    return container


def _environment(container: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """What the worker process sees: plain values, and ``secrets`` by the Secret's key."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = secrets[item["valueFrom"]["secretKeyRef"]["key"]]
    return env


SECRET_VALUES = {"write-keys": "wk-0123456789abcdef=acme", "api-tokens":
                 "tok-0123456789abcdef=acme", "kafka-sasl-password": "",
                 "slack-webhook-url": ""}


def test_every_object_is_valid_kubernetes(helm: Path) -> None:
    import kubernetes_validate

    for version in KUBERNETES_VERSIONS:
        objects = _render(helm, {"configFiles": {"notifications.toml": "# none\n"},
                                 "sourcesSecret": "telltale-sources",
                                 "workspaces": {"files": {"acme.toml": ACME}}},
                          kubernetes=version)
        kinds = _by_kind(objects)
        assert set(kinds) == {"StatefulSet", "Service", "PodDisruptionBudget",
                              "ServiceMonitor", "ConfigMap", "ServiceAccount"}
        for obj in objects:
            if obj["kind"] == "ServiceMonitor":
                jsonschema.validate(obj, SERVICE_MONITOR_SCHEMA)
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']} {obj['metadata']['name']} on Kubernetes "
                            f"{version}: {exc.message} at {list(exc.path)}")


ACME = 'time_zone = "Europe/Paris"\n[scoring]\nversion = "acme-1"\n'


def test_workspace_files_are_mounted_where_the_setting_points_and_roll_nothing(
        helm: Path, tmp_path: Path) -> None:
    from agents.workspaces import load_workspaces

    objects = _render(helm, {"workspaces": {"files": {"acme.toml": ACME}}})
    [statefulset] = _by_kind(objects)["StatefulSet"]
    [configmap] = [c for c in _by_kind(objects)["ConfigMap"]
                   if c["metadata"]["name"] == "tt-telltale-workspaces"]
    env = _environment(_worker(objects), SECRET_VALUES)
    [mount] = [m for m in _worker(objects)["volumeMounts"] if m["name"] == "workspaces"]
    assert mount == {"name": "workspaces", "mountPath": env["TELLTALE_WORKSPACES_DIR"],
                     "readOnly": True}, "the whole directory: a subPath is never refreshed"
    [volume] = [v for v in statefulset["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "workspaces"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    # What the pods would read is a valid workspaces directory.
    for name, text in configmap["data"].items():
        (tmp_path / name).write_text(text)
    assert load_workspaces(tmp_path)["acme"].scoring.version == "acme-1"
    # A changed file is applied by the running workers: the pod template stays the same.
    changed = _render(helm, {"workspaces": {"files": {"acme.toml": ACME + "# edited\n"}}})
    [again] = _by_kind(changed)["StatefulSet"]
    assert again["spec"]["template"] == statefulset["spec"]["template"]
    # Files with credentials come from a Secret instead; and nothing without either.
    from_secret = _render(helm, {"workspaces": {"existingSecret": "telltale-workspaces"}})
    [statefulset] = _by_kind(from_secret)["StatefulSet"]
    [volume] = [v for v in statefulset["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "workspaces"]
    assert volume == {"name": "workspaces", "secret": {"secretName": "telltale-workspaces"}}
    assert "TELLTALE_WORKSPACES_DIR" not in _environment(_worker(_render(helm)), SECRET_VALUES)
    with pytest.raises(RenderError, match="one of files"):
        _render(helm, {"workspaces": {"existingSecret": "a", "existingConfigMap": "b"}})
    with pytest.raises(RenderError, match=r"<workspace>\.toml"):
        _render(helm, {"workspaces": {"files": {"acme corp.toml": ACME}}})


def test_the_schema_check_catches_a_broken_object(helm: Path) -> None:
    import kubernetes_validate

    [statefulset] = _by_kind(_render(helm))["StatefulSet"]
    statefulset["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[-1], strict=True)
    [monitor] = _by_kind(_render(helm))["ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["interval"] = "fifteen"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)


def test_workers_keep_state_on_their_own_volume_with_standby_replicas(helm: Path) -> None:
    objects = _render(helm)
    [statefulset] = _by_kind(objects)["StatefulSet"]
    container = _worker(objects)
    env = _environment(container, SECRET_VALUES)
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert mount["mountPath"] == env["TELLTALE_DATA_DIR"]
    assert int(env["TELLTALE_STANDBY_REPLICAS"]) >= 1
    assert statefulset["spec"]["replicas"] >= 2  # a standby needs another worker


def test_probes_resources_and_disruption_budget(helm: Path) -> None:
    objects = _render(helm)
    container = _worker(objects)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # Above the 240-300 MiB measured per worker with 100,000 accounts.
    request = container["resources"]["requests"]["memory"]
    assert request.endswith("Mi") and int(request[:-2]) > 300
    [pdb] = _by_kind(objects)["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_services_and_service_monitor_select_the_workers(helm: Path) -> None:
    objects = _render(helm)
    kinds = _by_kind(objects)
    [statefulset] = kinds["StatefulSet"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in _worker(objects)["ports"]}
    env = _environment(_worker(objects), SECRET_VALUES)
    assert ports == {"http": int(env["TELLTALE_WEB_PORT"]),
                     "metrics": int(env["TELLTALE_METRICS_PORT"])}
    assert env["TELLTALE_WEB_HOST"] == env["TELLTALE_METRICS_HOST"] == "0.0.0.0"
    services = {s["metadata"]["name"]: s for s in kinds["Service"]}
    for service in services.values():
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    assert services["tt-telltale"]["spec"]["ports"][0]["targetPort"] == "http"
    assert statefulset["spec"]["serviceName"] in services
    [monitor] = kinds["ServiceMonitor"]
    scraped = [s for s in services.values() if monitor["spec"]["selector"]["matchLabels"]
               .items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in scraped] == ["tt-telltale-workers"]
    assert {p["name"] for p in scraped[0]["spec"]["ports"]} >= {
        e["port"] for e in monitor["spec"]["endpoints"]}


def test_credentials_come_only_from_the_secret(helm: Path) -> None:
    container = _worker(_render(helm))
    from_secret = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in container["env"]
                   if "valueFrom" in item}
    assert set(from_secret) == {ENV_PREFIX + name.upper() for name in SECRET_SETTINGS}
    assert {ref["name"] for ref in from_secret.values()} == {"telltale"}
    assert Settings.secret_fields() <= SECRET_SETTINGS | {"redis_url"}
    with pytest.raises(RenderError, match="credential"):
        _render(helm, {"settings": {"api_tokens": "t=acme"}})


def test_every_setting_passes_through_values_unchanged(helm: Path) -> None:
    """Each setting at its default, through YAML, the template and the environment, comes
    back as the same value (large numbers too, which YAML reads as floats)."""
    defaults = Settings()
    values = {f.name: _yaml_value(getattr(defaults, f.name)) for f in dataclasses.fields(Settings)
              if f.name not in SECRET_SETTINGS}
    env = _environment(_worker(_render(helm, {"settings": values})), SECRET_VALUES)
    passed = {name.removeprefix(ENV_PREFIX).lower() for name in env}
    assert passed == {f.name for f in dataclasses.fields(Settings)}
    settings = Settings.from_env(env)
    assert settings == defaults.replace(write_keys=SECRET_VALUES["write-keys"],
                                        api_tokens=SECRET_VALUES["api-tokens"],
                                        kafka_sasl_password=None, slack_webhook_url=None)


def test_the_default_chart_starts_a_valid_worker(helm: Path) -> None:
    env = _environment(_worker(_render(helm)), SECRET_VALUES)
    settings = Settings.from_env(env)
    assert settings.web_host == "0.0.0.0" and settings.partitions == 8


def test_more_workers_than_partitions_is_refused(helm: Path) -> None:
    with pytest.raises(RenderError, match=r"more than settings\.partitions"):
        _render(helm, {"replicaCount": 9})
    with pytest.raises(RenderError, match="lower case"):
        _render(helm, {"settings": {"PARTITIONS": 4}})


def _yaml_value(value: Any) -> Any:
    if value is None:
        return ""
    return str(value) if isinstance(value, Path) else value
