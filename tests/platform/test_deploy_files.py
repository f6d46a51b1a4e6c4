"""The shipping files agree with Teaser and with each other: the Dockerfile, the compose files,
.env.example, the Kubernetes example and the monitoring configuration. script/container-test
runs them for real; this is the cheap part CI can run on every change."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.serving import GRACEFUL_SHUTDOWN_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.local.yml")
COMPOSE_OWN_MARKER = "# --- docker-compose.yml's own ---"


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def load_yaml(name: str) -> Any:
    return yaml.safe_load(read(name))


def load_yaml_documents(name: str) -> list[Any]:
    return list(yaml.safe_load_all(read(name)))


def env_example() -> tuple[dict[str, str], dict[str, str]]:
    """.env.example's names and values: Teaser's settings, then the compose file's own."""
    teaser_part, compose_part = read(".env.example").split(COMPOSE_OWN_MARKER)
    return _assignments(teaser_part), _assignments(compose_part)


def _assignments(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE))


def teaser_settings() -> set[str]:
    """Every environment variable Teaser's code reads, by the string literal it reads."""
    names: set[str] = set()
    for package in ("api", "realtime"):
        for source in (ROOT / package).rglob("*.py"):
            names |= set(
                re.findall(
                    r"\"((?:TEASER|WEB|FORWARDED|DATABASE|REDIS)_[A-Z0-9_]+|"
                    r"PORT|HOST)\"",
                    source.read_text(encoding="utf-8"),
                )
            )
    return names


def compose_substitutions() -> set[str]:
    lines = (line.split("#", 1)[0] for line in read("docker-compose.yml").splitlines())
    return {name for line in lines for name in re.findall(r"\$\{([A-Z][A-Z0-9_]*)", line)}


def teaser_service() -> dict[str, Any]:
    service: dict[str, Any] = load_yaml("docker-compose.yml")["services"]["teaser"]
    return service


def dockerfile_base(name: str) -> str:
    text = read(name)
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))
    froms = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    bases = {re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image) for image in froms}
    bases -= {"builder"}
    assert len(bases) == 1, f"{name} builds from {bases}"
    return bases.pop()


def base_image_name() -> str:
    match = re.search(r'^IMAGE="([^"]+)"$', read("script/base-image"), flags=re.MULTILINE)
    assert match, "script/base-image names no IMAGE"
    return match[1]


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"not a duration in seconds: {duration}"
    return float(match[1])


# --- the image ---


def test_every_dockerfile_builds_from_the_image_script_base_image_makes() -> None:
    stand_ins = sorted(ROOT.glob("deploy/local/*/Dockerfile"))
    dockerfiles = ["Dockerfile", *(str(path.relative_to(ROOT)) for path in stand_ins)]
    assert len(dockerfiles) == 3
    assert {dockerfile_base(name) for name in dockerfiles} == {base_image_name()}


def test_the_build_context_lets_in_everything_the_wheel_is_made_of() -> None:
    project = tomllib.loads(read("pyproject.toml"))
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {name.rstrip("*") for name in packages}
    needed |= {project["project"]["readme"], *project["project"].get("license-files", [])}
    allowed = set(re.findall(r"^!(\S+)$", read(".dockerignore"), flags=re.MULTILINE))
    assert needed <= allowed, f".dockerignore keeps out {sorted(needed - allowed)}"
    lines = [line for line in read(".dockerignore").splitlines() if line[:1] not in ("", "#")]
    assert lines[0] == "*", "not an allow-list: everything else would go in"


def test_the_image_runs_teaser_as_pid_1_as_a_numeric_non_root_user() -> None:
    dockerfile = read("Dockerfile")
    assert re.search(r'^CMD \["teaser", "serve", "--host", "0\.0\.0\.0"\]$', dockerfile, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", dockerfile, re.M)
    (user,) = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    uid, gid = user.split(":")
    assert int(uid) > 0 and int(gid) > 0


def test_the_image_is_in_production_unless_told_otherwise() -> None:
    assert re.search(r"^\s+TEASER_ENV=production \\$", read("Dockerfile"), re.M)


def test_the_healthcheck_asks_livez_on_the_ops_port_when_there_is_one() -> None:
    (check,) = re.findall(r"^\s+CMD (\[.*\])$", read("Dockerfile"), re.M)
    command: list[str] = yaml.safe_load(check)
    assert command[:2] == ["python", "-c"]
    assert "/livez" in command[2] and "TEASER_OPS_PORT" in command[2]


# --- compose and .env.example ---


def test_every_teaser_setting_in_env_example_is_one_teaser_reads() -> None:
    teaser, _ = env_example()
    unknown = set(teaser) - teaser_settings()
    assert not unknown, f".env.example lists settings Teaser doesn't read: {sorted(unknown)}"


def test_every_setting_in_env_example_reaches_the_teaser_container() -> None:
    teaser, _ = env_example()
    environment: dict[str, str] = teaser_service()["environment"]
    # Each under its own name, from its own ${NAME:-default}.
    passed_on = {name for name, value in environment.items() if value.startswith(f"${{{name}:-")}
    assert set(teaser) <= passed_on, f"not passed on: {sorted(set(teaser) - passed_on)}"


def test_env_example_documents_every_variable_the_compose_file_takes() -> None:
    teaser, compose = env_example()
    assert compose_substitutions() == set(teaser) | set(compose)
    assert not set(compose) & teaser_settings(), "a Teaser setting among compose's own"


def test_env_example_holds_no_secret_that_would_pass() -> None:
    teaser, compose = env_example()
    assert teaser["TEASER_SECRET_KEY"] == "" and compose["POSTGRES_PASSWORD"] == ""
    assert teaser["TEASER_ENV"] == "production"


def test_the_ops_port_is_the_one_prometheus_scrapes_and_only_the_host_reaches() -> None:
    service = teaser_service()
    ops_port = service["environment"]["TEASER_OPS_PORT"]
    assert f"127.0.0.1:${{PUBLISHED_OPS_PORT:-{ops_port}}}:{ops_port}" in service["ports"]
    (job,) = load_yaml("deploy/prometheus/prometheus.yml")["scrape_configs"]
    assert job["static_configs"] == [{"targets": [f"teaser:{ops_port}"]}]


def test_compose_waits_longer_for_a_stop_than_teaser_drains_and_closes() -> None:
    service = teaser_service()
    drain = float(service["environment"]["TEASER_DRAIN_SECONDS"].split(":-")[1].rstrip("}"))
    assert seconds(service["stop_grace_period"]) > drain + GRACEFUL_SHUTDOWN_TIMEOUT


def test_grafana_loads_the_dashboards_from_where_compose_mounts_them() -> None:
    grafana = load_yaml("docker-compose.yml")["services"]["grafana"]
    binds = (volume.split(":") for volume in grafana["volumes"] if volume.startswith("./"))
    mounts = {source: target for source, target, _mode in binds}
    provider = load_yaml("deploy/grafana/provisioning/dashboards/teaser.yml")["providers"][0]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_the_local_override_only_swaps_the_images_of_postgres_and_redis() -> None:
    services = load_yaml("docker-compose.local.yml")["services"]
    assert set(services) == {"postgres", "redis"}
    for name, service in services.items():
        assert set(service) == {"image", "build"}
        assert (ROOT / service["build"] / "Dockerfile").is_file(), name


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed")
def test_docker_compose_accepts_both_files_and_refuses_them_without_a_password() -> None:
    def config(**extra: str) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"} | extra
        files = [arg for name in COMPOSE_FILES for arg in ("-f", name)]
        # .env.example as the env file: a developer's own .env stays out of it.
        return subprocess.run(
            ["docker-compose", "--env-file", ".env.example", *files, "config", "--quiet"],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=30,
        )

    accepted = config(POSTGRES_PASSWORD="not-a-real-one")
    assert accepted.returncode == 0, accepted.stderr
    refused = config()
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD in .env" in refused.stderr


# --- Kubernetes ---


def kubernetes_pod() -> dict[str, Any]:
    (deployment,) = [
        doc
        for doc in load_yaml_documents("deploy/kubernetes/deployment.yaml")
        if doc["kind"] == "Deployment"
    ]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_kubernetes_probes_liveness_and_readiness_on_the_ops_port() -> None:
    (container,) = kubernetes_pod()["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["ops"] == int(env["TEASER_OPS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "ops"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}


def test_kubernetes_waits_longer_than_the_pause_the_drain_and_the_close_together() -> None:
    pod = kubernetes_pod()
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    needed = float(pause[1]) + float(env["TEASER_DRAIN_SECONDS"]) + GRACEFUL_SHUTDOWN_TIMEOUT
    assert pod["terminationGracePeriodSeconds"] > needed


def test_kubernetes_runs_the_images_user_on_a_read_only_root_with_tmp_writable() -> None:
    pod = kubernetes_pod()
    (container,) = pod["containers"]
    uid = int(re.findall(r"^USER (\d+):", read("Dockerfile"), re.M)[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_kubernetes_secret_example_would_not_start_teaser() -> None:
    (secret,) = load_yaml_documents("deploy/kubernetes/secret.example.yaml")
    assert set(secret["stringData"]) == {"TEASER_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
    assert len(secret["stringData"]["TEASER_SECRET_KEY"]) < 32
