"""Kubernetes hardening and operations: no service-account token in the pods, NetworkPolicies
that admit only Prometheus and the ingress, and a runbook section behind every alert."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import yaml

from tests.deploy.manifests import find_object, load_yaml_documents, pod_spec
from tests.deploy.tools import DEPLOY

DEPLOYMENTS = ("streamtune-trainer", "streamtune-inference")


def labels_selected(policy: dict[str, Any]) -> dict[str, str]:
    return policy["spec"]["podSelector"]["matchLabels"]


def selects(policy: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    return all(pod_labels.get(key) == value for key, value in labels_selected(policy).items())


def test_pods_mount_no_service_account_token(overlay):
    _, objects = overlay
    for name in DEPLOYMENTS:
        assert pod_spec(find_object(objects, "Deployment", name))["automountServiceAccountToken"] is False


def test_network_policies_deny_by_default_and_admit_only_prometheus_and_the_ingress(overlay):
    _, objects = overlay
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for name in DEPLOYMENTS:
        deployment = find_object(objects, "Deployment", name)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in policies if selects(p, pod_labels)]
        assert {"Ingress", "Egress"} <= {kind for p in covering for kind in p["spec"]["policyTypes"]}, name
        sources = [peer for p in covering for rule in p["spec"].get("ingress", []) for peer in rule["from"]]
        namespaces = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in sources}
        expected = {"monitoring", "ingress-nginx"} if name.endswith("inference") else {"monitoring"}
        assert namespaces == expected, name
        ports = {port["name"] for port in pod_spec(deployment)["containers"][0]["ports"]}
        for policy in covering:
            for rule in policy["spec"].get("ingress", []):
                assert {port["port"] for port in rule["ports"]} <= ports  # named ports that exist
        egress_ports = {
            port["port"] for p in covering for rule in p["spec"].get("egress", []) for port in rule["ports"]
        }
        assert egress_ports == {53, 9092, 9093, 443, 9000}, name


def test_the_optional_ingress_is_valid_and_routes_to_the_inference_service():
    (ingress,) = load_yaml_documents(DEPLOY / "base" / "ingress.yaml")
    kubernetes_validate.validate(ingress, "1.29.0", strict=True)
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "streamtune-inference", "port": {"name": "http"}}


def test_every_alert_links_a_runbook_section_that_exists():
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    sections = {heading.lower() for heading in re.findall(r"^### (\w+)$", readme, re.M)}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text(encoding="utf-8"))
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert alerts
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url == f"deploy/README.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in sections, f"no runbook section for {rule['alert']}"
