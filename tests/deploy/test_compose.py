"""docker-compose.yml is valid Compose, and everything it names exists in the repository.

No Docker engine runs here, so the file is checked against the Compose Specification's
JSON schema and against the repository instead of by ``docker compose config``.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from streams.settings import DEMO_API_TOKEN, DEMO_WRITE_KEY, ENV_PREFIX, Settings, SettingsError
from tests.deploy.conftest import REPO, load_schema

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "telltale.env.example"
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")
#: Variables that hold credentials; none may have a default anywhere in compose.
SECRETS = {"TELLTALE_WRITE_KEYS", "TELLTALE_API_TOKENS", "TELLTALE_SLACK_WEBHOOK_URL",
           "GRAFANA_ADMIN_PASSWORD"}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment."""
    return _INTERPOLATION.sub(
        lambda m: m["default"] or "" if (m["op"] or "").endswith("-") else "", value)


def _env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file, as compose reads them (comments skipped)."""
    pairs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def _worker_environment(service: dict[str, Any], env_file: dict[str, str]
                        ) -> dict[str, str]:
    """What a worker container sees: its env file, overridden by ``environment``."""
    environment = {key: _interpolate(str(value))
                   for key, value in service["environment"].items()}
    return {**env_file, **environment}


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _telltale_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _services().items() if "build" in svc}


def _host_ports(service: dict[str, Any]) -> list[str]:
    ports = []
    for port in service.get("ports", []):
        text = str(port["published"]) if isinstance(port, dict) else str(port)
        parts = text.split(":")
        if len(parts) > 1:
            ports.append(parts[-2])
    return ports


def _mount(service: dict[str, Any], source: str | None = None,
           target: str | None = None) -> tuple[str, str]:
    """(source, target) of the volume of ``service`` mounted from ``source`` or at
    ``target``."""
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if parts[0] == source or parts[1] == target:
            return parts[0], parts[1]
    raise AssertionError(f"{source} is not mounted" if source is not None
                         else f"nothing is mounted at {target}")


def test_compose_validates_against_the_compose_spec() -> None:
    validator = jsonschema.Draft7Validator(load_schema("compose-spec.schema.json"))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(_compose())]
    assert errors == []


def test_compose_schema_rejects_a_broken_file() -> None:
    validator = jsonschema.Draft7Validator(load_schema("compose-spec.schema.json"))
    broken = _compose()
    broken["services"]["worker"]["depends_on"] = {"kafka": {"condition": "when_ready"}}
    broken["services"]["redis"]["restrat"] = "always"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_the_whole_stack_is_there() -> None:
    services = _services()
    assert set(services) >= {"kafka", "redis", "worker", "web", "prometheus", "grafana"}
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "zookeeper" not in services


def test_worker_scales_without_host_port_or_shared_state() -> None:
    worker = _services()["worker"]
    # `--scale worker=N` would collide on a fixed host port or a shared RocksDB folder.
    assert _host_ports(worker) == []
    assert "container_name" not in worker
    assert not any(":/var/lib/telltale" in v for v in worker.get("volumes", []))


def test_host_ports_are_unique() -> None:
    published = [port for svc in _services().values() for port in _host_ports(svc)]
    assert len(published) == len(set(published))


def test_build_contexts_and_dockerfiles_exist() -> None:
    builds = [svc["build"] for svc in _telltale_services().values()]
    assert builds
    for build in builds:
        context = REPO / build["context"]
        assert context.is_dir(), context
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), dockerfile


def test_dockerfile_copies_what_the_package_build_needs() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    needed = ["pyproject.toml", "README.md", *re.findall(r'"(\w+)\*"', pyproject)]
    for name in needed:
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in ignored), name
    for source in re.findall(r"^COPY (?!--from)(\S+) ", dockerfile, flags=re.MULTILINE):
        assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert re.search(r'^CMD \["telltale", "worker"\]', dockerfile, flags=re.MULTILINE)
    assert "EXPOSE 6066" in dockerfile


def test_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    declared = set(_compose().get("volumes") or {})
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_environment_names_real_settings_and_validates() -> None:
    fields = {env for env, _type, _default, _desc in Settings.describe()}
    filled = {name: f"{name.lower()}-0123456789abcdef=acme" if name.endswith(("KEYS", "TOKENS"))
              else value for name, value in _env_file(ENV_EXAMPLE).items()}
    for name, service in _telltale_services().items():
        environment = _on_the_host(service, _worker_environment(service, filled))
        unknown = {key for key in environment if key.startswith(ENV_PREFIX)} - fields
        assert unknown == set(), f"{name}: not settings: {unknown}"
        settings = Settings.from_env(environment)
        assert settings.kafka_bootstrap == "kafka:9092"
        assert settings.redis_url.startswith("redis://redis:")
        assert settings.web_host == "0.0.0.0"


def _on_the_host(service: dict[str, Any], environment: dict[str, str]) -> dict[str, str]:
    """``environment`` with each path inside a bind mount of the repository replaced by
    the host path it shows (so that settings naming files can be checked here)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = REPO / source
    out = dict(environment)
    for key, value in environment.items():
        for target, source in mounts.items():
            if value == target or value.startswith(target + "/"):
                out[key] = str(source) + value[len(target):]
    return out


def test_every_worker_reads_the_workspaces_directory_it_mounts() -> None:
    from agents.workspaces import load_workspaces

    for name, service in _telltale_services().items():
        directory = service["environment"]["TELLTALE_WORKSPACES_DIR"]
        source = _mount(service, target=directory)[0]
        assert source == "./deploy/workspaces", name
        assert not [v for v in service["volumes"] if v.startswith(source)
                    and not v.endswith(":ro")], f"{name}: the workers only read it"
    folder = REPO / "deploy" / "workspaces"
    # Workspace files hold credentials: never committed.
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/deploy/workspaces/*.toml" in ignored
    # The committed sample is a valid workspace file.
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(folder / "example.toml.sample", Path(scratch) / "acme.toml")
        assert load_workspaces(Path(scratch))["acme"].scoring.version == "acme-1"


def test_every_published_port_is_bound_to_loopback() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert str(port).startswith("127.0.0.1:"), (name, port)


def test_no_default_credential_anywhere_in_compose() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert DEMO_WRITE_KEY not in text and DEMO_API_TOKEN not in text
    for match in _INTERPOLATION.finditer(text):
        if match["name"] in SECRETS:
            assert (match["op"] or "").endswith("?"), f"{match[0]}: a secret needs no default"
    grafana = _services()["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    for name, service in _telltale_services().items():
        assert not SECRETS & set(service["environment"]), f"{name}: secrets come from .env"


def test_secrets_come_from_a_git_ignored_env_file_with_a_committed_example() -> None:
    for name, service in _telltale_services().items():
        paths = [entry["path"] if isinstance(entry, dict) else entry
                 for entry in service["env_file"]]
        assert paths == [".env"], name
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored
    example = _env_file(ENV_EXAMPLE)
    assert set(example) >= SECRETS
    assert all(example[name] == "" for name in SECRETS), "the example holds no credential"


def test_the_example_env_file_as_committed_does_not_start_a_worker() -> None:
    for service in _telltale_services().values():
        with pytest.raises(SettingsError) as refused:
            Settings.from_env(_worker_environment(service, _env_file(ENV_EXAMPLE)))
        assert any("write_keys is empty" in p for p in refused.value.problems)
        assert any("api_tokens is empty" in p for p in refused.value.problems)


def test_metrics_port_is_not_published() -> None:
    for name, service in _telltale_services().items():
        metrics_port = service["environment"]["TELLTALE_METRICS_PORT"]
        assert metrics_port not in _host_ports(service), name
        assert metrics_port in " ".join(service["healthcheck"]["test"]), name


def test_image_installs_with_the_test_pins() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    # One logical line per RUN: continuation lines joined, as the shell reads them.
    logical = dockerfile.replace("\\\n", " ")
    installs = re.findall(r"pip (?:wheel|install)[^\n]*", logical)
    assert len(installs) == 2, installs
    for command in installs:
        assert re.search(r"-c \S*constraints\.txt", command), command
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "constraints.txt" not in ignored


def test_prometheus_mounts_config_and_rules_where_the_config_expects_them() -> None:
    prometheus = _services()["prometheus"]
    config_target = _mount(prometheus, "./deploy/prometheus/prometheus.yml")[1]
    rules_target = _mount(prometheus, "./deploy/prometheus/rules")[1]
    assert f"--config.file={config_target}" in prometheus["command"]
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    for pattern in config["rule_files"]:
        resolved = PurePosixPath(config_target).parent / pattern
        assert str(resolved.parent) == rules_target
        assert list((REPO / "deploy/prometheus").glob(pattern))


def test_grafana_provisioning_paths_line_up() -> None:
    grafana = _services()["grafana"]
    datasources = _mount(grafana, "./deploy/grafana/provisioning/datasources")[1]
    dashboards_cfg = _mount(grafana, "./deploy/grafana/provisioning/dashboards")[1]
    dashboards = _mount(grafana, "./deploy/grafana/dashboards")[1]
    assert datasources == "/etc/grafana/provisioning/datasources"
    assert dashboards_cfg == "/etc/grafana/provisioning/dashboards"
    provider_files = list((REPO / "deploy/grafana/provisioning/dashboards").glob("*.yml"))
    assert provider_files
    for path in provider_files:
        providers = yaml.safe_load(path.read_text())["providers"]
        assert [p["options"]["path"] for p in providers] == [dashboards]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards + "/")
    assert (REPO / "deploy/grafana/dashboards" / Path(home).name).is_file()
    (source,) = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in _services()


@pytest.mark.parametrize("service", ["kafka", "redis", "web", "worker", "prometheus",
                                     "grafana"])
def test_every_service_has_a_healthcheck(service: str) -> None:
    check = _services()[service]["healthcheck"]
    assert check["test"][0] in {"CMD", "CMD-SHELL"}


def test_workers_wait_for_healthy_kafka_and_redis() -> None:
    for name, service in _telltale_services().items():
        depends = service["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_the_valkey_override_is_valid_compose_and_replaces_only_the_store() -> None:
    override = yaml.safe_load((REPO / "deploy" / "compose.valkey.yml").read_text())
    assert set(override["services"]) == {"redis"}, "the workers keep their redis:// URL"
    merged = _compose()
    merged["services"]["redis"].update(override["services"]["redis"])
    validator = jsonschema.Draft7Validator(load_schema("compose-spec.schema.json"))
    assert [e.message for e in validator.iter_errors(merged)] == []
    store = merged["services"]["redis"]
    assert store["image"].startswith("valkey/valkey:")
    assert store["command"][0] == "valkey-server" and "valkey-cli" in store["healthcheck"]["test"]
    assert "redis-data:/data" in store["volumes"], "the data volume stays"
