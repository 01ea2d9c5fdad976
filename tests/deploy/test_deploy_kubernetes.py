"""The Kubernetes manifests: both overlays render, validate against the API schemas, and hang
together (selectors, ports, probes, volumes, settings, monitoring)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import (
    OVERLAYS,
    container,
    find_object,
    kubectl_kustomize,
    pod_spec,
    render_kustomization,
    settings_env_names,
)
from tests.deploy.tools import DEPLOY

# Oldest Kubernetes minor still in wide use, and the newest the validator knows.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
OPERATOR_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
NAMESPACE = "streamtune"
TRAINER = "streamtune-trainer"
INFERENCE = "streamtune-inference"


def _normalised(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order-insensitive form: objects by kind/name, named list items by name."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            items = [walk(v) for v in value]
            if all(isinstance(v, dict) and "name" in v for v in items):
                items.sort(key=lambda v: v["name"])
            return items
        return value

    return sorted((walk(o) for o in objects), key=lambda o: (o["kind"], o["metadata"]["name"]))


@pytest.mark.parametrize("name", OVERLAYS)
def test_builtin_renderer_matches_kubectl(name: str) -> None:
    directory = DEPLOY / "overlays" / name
    expected = kubectl_kustomize(directory)
    if expected is None:
        pytest.skip(
            "kubectl is not installed (no Debian or PyPI package has a current one); "
            "the other tests render with the built-in renderer"
        )
    assert _normalised(render_kustomization(directory)) == _normalised(expected)


def test_objects_validate_against_the_kubernetes_schemas(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    validated = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in OPERATOR_KINDS:
            continue  # CRDs: no schema offline; checked structurally below.
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{obj['kind']}/{obj['metadata']['name']} invalid for {version}: {exc.message} at {list(exc.path)}"
                )
        validated += 1
    assert validated >= 10


def test_the_validator_rejects_a_broken_deployment() -> None:
    # Guards the test above against passing vacuously (e.g. a validator that accepts anything).
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {"spec": {"containerz": []}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_only_known_custom_resources_and_one_namespace(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    for obj in objects:
        group = obj["apiVersion"].split("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            assert (obj["apiVersion"], obj["kind"]) in OPERATOR_KINDS, obj["kind"]
        assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]


def test_trainer_is_a_single_recreated_writer_with_its_own_state_volume(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = overlay
    trainer = find_object(objects, "Deployment", TRAINER)
    assert trainer["spec"]["replicas"] == 1
    assert trainer["spec"]["strategy"]["type"] == "Recreate"
    config = find_object(objects, "ConfigMap", "streamtune-config")["data"]
    c = container(trainer, "trainer")
    assert c["args"] == ["train"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(trainer)["volumes"]}
    store = [n for n, m in mounts.items() if m["mountPath"] == config["STREAMTUNE_CHECKPOINT_DIR"]]
    assert len(store) == 1, "the trainer must mount its state at STREAMTUNE_CHECKPOINT_DIR"
    assert not mounts[store[0]].get("readOnly", False)
    claim = volumes[store[0]]["persistentVolumeClaim"]["claimName"]
    pvc = find_object(objects, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"], "one pod writes it: no shared filesystem"

    limits = c.get("resources", {}).get("limits", {})
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    if name == "gpu":
        assert str(limits.get("nvidia.com/gpu")) == "1"
        assert c["image"].endswith(":cuda")
        assert env.get("STREAMTUNE_DEVICE") == "cuda"
    else:
        assert "nvidia.com/gpu" not in limits
        assert c["image"].endswith(":cpu")
        assert env.get("STREAMTUNE_DEVICE") == "cpu"


def test_inference_replicas_probes_and_own_cache(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    inference = find_object(objects, "Deployment", INFERENCE)
    config = find_object(objects, "ConfigMap", "streamtune-config")["data"]
    assert inference["spec"]["replicas"] >= 2
    c = container(inference, "inference")
    assert c["args"] == ["serve"]
    assert c["image"].endswith(":cpu")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(config["STREAMTUNE_HTTP_PORT"])
    assert config["STREAMTUNE_HTTP_HOST"] == "0.0.0.0", "probes and Services reach the pod IP"
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert c[probe]["httpGet"]["path"] == path
        assert c[probe]["httpGet"]["port"] in (ports["http"], "http")
    cache = [m for m in c["volumeMounts"] if m["mountPath"] == config["STREAMTUNE_CHECKPOINT_DIR"]]
    assert len(cache) == 1, "replicas need a writable download cache at STREAMTUNE_CHECKPOINT_DIR"
    volumes = {v["name"]: v for v in pod_spec(inference)["volumes"]}
    assert "emptyDir" in volumes[cache[0]["name"]], "each replica's own cache, not a shared volume"


def test_the_store_is_in_object_storage_and_nothing_needs_read_write_many(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    config = find_object(objects, "ConfigMap", "streamtune-config")["data"]
    assert config["STREAMTUNE_CHECKPOINT_URI"].startswith("s3://")
    for claim in (o for o in objects if o["kind"] == "PersistentVolumeClaim"):
        assert "ReadWriteMany" not in claim["spec"]["accessModes"], claim["metadata"]["name"]
    storage = find_object(objects, "ConfigMap", "streamtune-object-storage")["data"]
    assert set(storage) <= {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"}
    credentials = find_object(objects, "Secret", "streamtune-object-storage")
    assert not credentials.get("data") and not credentials.get("stringData"), "no credentials in git"
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        for c in pod_spec(deployment)["containers"]:
            assert {"configMapRef": {"name": "streamtune-object-storage"}} in c["envFrom"]
            assert {"secretRef": {"name": "streamtune-object-storage", "optional": True}} in c["envFrom"]


def test_hpa_and_pdb_cover_the_inference_pods(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    inference = find_object(objects, "Deployment", INFERENCE)
    pod_labels = inference["spec"]["template"]["metadata"]["labels"]
    hpa = find_object(objects, "HorizontalPodAutoscaler", INFERENCE)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": INFERENCE}
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert "requests" in container(inference, "inference")["resources"], "CPU utilisation needs requests"
    pdb = find_object(objects, "PodDisruptionBudget", INFERENCE)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_services_select_their_pods_and_named_ports(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        selected = [d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)} Deployments"
        port_names = {p["name"] for c in pod_spec(selected[0])["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names


def test_deployment_selectors_match_their_templates(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    for d in (o for o in objects if o["kind"] == "Deployment"):
        assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()


def test_pods_run_as_non_root(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    for d in (o for o in objects if o["kind"] == "Deployment"):
        spec = pod_spec(d)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_settings_come_from_the_configmap_and_the_secret(
    overlay: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamtune.config import Settings

    _, objects = overlay
    known = settings_env_names()
    config = find_object(objects, "ConfigMap", "streamtune-config")["data"]
    secret = find_object(objects, "Secret", "streamtune-secrets")
    assert not secret.get("data") and not secret.get("stringData"), "no credentials in git"
    assert set(config) <= known, f"not settings: {sorted(set(config) - known)}"
    secret_backed = set()
    for d in (o for o in objects if o["kind"] == "Deployment"):
        for c in pod_spec(d)["containers"]:
            assert {"configMapRef": {"name": "streamtune-config"}} in c["envFrom"]
            for env in c.get("env", []):
                assert env["name"] in known, f"{env['name']} is not a setting"
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "streamtune-secrets" and ref["optional"] is True
                    secret_backed.add(env["name"])
    assert {
        "STREAMTUNE_ADMIN_TOKEN",
        "STREAMTUNE_KAFKA_SASL_USERNAME",
        "STREAMTUNE_KAFKA_SASL_PASSWORD",
    } <= secret_backed
    assert not secret_backed & set(config), "a credential must not also sit in the ConfigMap"
    # The values must pass the services' own validation.
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    Settings(_env_file=None)


def test_service_monitors_scrape_both_services_under_the_compose_job_names(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    scraped = set()
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matches = [s for s in services.values() if selector.items() <= s["metadata"]["labels"].items()]
        assert len(matches) == 1, f"{monitor['metadata']['name']} selects {len(matches)} Services"
        port_names = {p["name"] for p in matches[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names
            assert endpoint.get("path", "/metrics") == "/metrics"
        # The operator's default job label is the Service name.
        assert "jobLabel" not in monitor["spec"]
        scraped.add(matches[0]["metadata"]["name"])
    compose_jobs = {
        job["job_name"]
        for job in yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert scraped == {TRAINER, INFERENCE}
    assert scraped <= compose_jobs


def test_prometheus_rule_is_the_rules_file(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    rule = find_object(objects, "PrometheusRule", "streamtune")
    rules_file = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == rules_file["groups"]


def test_dashboard_configmap_is_the_dashboard_file(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    cm = find_object(objects, "ConfigMap", "streamtune-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = (DEPLOY / "grafana" / "dashboards" / "streamtune.json").read_text(encoding="utf-8")
    assert json.loads(cm["data"]["streamtune.json"]) == json.loads(dashboard)
