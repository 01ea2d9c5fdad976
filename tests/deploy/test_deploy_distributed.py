"""The data-parallel trainer overlay (deploy/overlays/distributed): it renders, validates against
the Kubernetes schemas, and its ranks can find each other and the store."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.manifests import container, find_object, pod_spec, render_kustomization
from tests.deploy.tools import DEPLOY

K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
OPERATOR_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
RANKS = "streamtune-trainer-ranks"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render_kustomization(DEPLOY / "overlays" / "distributed")


def _flags(arguments: list[str]) -> dict[str, str]:
    return dict(argument.removeprefix("--").split("=", 1) for argument in arguments if argument.startswith("--"))


def test_every_object_validates(objects: list[dict[str, Any]]) -> None:
    validated = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in OPERATOR_KINDS:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for {version}: {exc.message}")
        validated += 1
        assert obj["metadata"].get("namespace") == "streamtune", obj["metadata"]["name"]
    assert validated >= 12


def test_ranks_rendezvous_at_pod_zero_of_a_headless_service(objects: list[dict[str, Any]]) -> None:
    ranks = find_object(objects, "StatefulSet", RANKS)
    service = find_object(objects, "Service", ranks["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    labels = ranks["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert ranks["spec"]["selector"]["matchLabels"].items() <= labels.items()

    trainer = container(ranks, "trainer")
    assert trainer["command"] == ["tini", "--", "torchrun"]
    assert trainer["args"][-3:] == ["-m", "streamtune", "train"]
    flags = _flags(trainer["args"])
    assert int(flags["nnodes"]) == ranks["spec"]["replicas"], "--nnodes must follow the replicas"
    host, port = flags["rdzv-endpoint"].rsplit(":", 1)
    assert host == f"{ranks['metadata']['name']}-0.{service['metadata']['name']}"
    ports = {p["name"]: p["containerPort"] for p in trainer["ports"]}
    assert ports["rendezvous"] == int(port)
    assert int(flags["max-restarts"]) >= 1
    assert trainer["image"].endswith(":cpu")


def test_ranks_resume_from_object_storage_and_the_single_trainer_is_off(objects: list[dict[str, Any]]) -> None:
    config = find_object(objects, "ConfigMap", "streamtune-config")["data"]
    assert config["STREAMTUNE_CHECKPOINT_URI"].startswith("s3://"), "every rank reads the store"
    assert find_object(objects, "Deployment", "streamtune-trainer")["spec"]["replicas"] == 0
    ranks = find_object(objects, "StatefulSet", RANKS)
    mounts = {m["name"]: m["mountPath"] for m in container(ranks, "trainer")["volumeMounts"]}
    assert mounts["state"] == config["STREAMTUNE_CHECKPOINT_DIR"]
    claims = ranks["spec"]["volumeClaimTemplates"]
    assert [c["spec"]["accessModes"] for c in claims] == [["ReadWriteOnce"]]
    assert pod_spec(ranks)["securityContext"]["runAsNonRoot"] is True


def test_ranks_may_reach_each_other(objects: list[dict[str, Any]]) -> None:
    policy = find_object(objects, "NetworkPolicy", RANKS)
    labels = find_object(objects, "StatefulSet", RANKS)["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    peers = [rule for rule in policy["spec"]["ingress"] if "ports" not in rule]
    assert peers and peers[0]["from"][0]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"].items() <= labels.items()
