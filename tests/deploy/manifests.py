"""Rendering and navigating the Kubernetes manifests under deploy/."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import DEPLOY, run_tool

OVERLAYS = ("cpu", "gpu")


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


# --- A small kustomize ----------------------------------------------------------------------
# Used where `kubectl kustomize` is absent (Debian's kubectl is too old for this syntax). It
# handles exactly the features deploy/ uses and refuses any other, so it cannot silently render
# something different; test_deploy_kubernetes.py compares it with kubectl where both exist.

_KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "images",
    "patches",
    "configMapGenerator",
    "generatorOptions",
}
# Kinds whose objects have no namespace (none of ours today, listed for the namespace transform).
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# Strategic-merge keys of the list fields our patches touch (from the Kubernetes API types).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "name",
    "ports": "containerPort",
    "tolerations": None,
}


def strategic_merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """Apply a strategic-merge patch for the subset of the semantics deploy/ relies on."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if key.startswith("$"):
                raise NotImplementedError(f"patch directive {key} is not supported")
            merged[key] = strategic_merge(base[key], value, key) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list):
        key = _MERGE_KEYS.get(field or "")
        if key is None:
            return copy.deepcopy(patch)
        merged_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            index = next((i for i, old in enumerate(merged_list) if old.get(key) == item.get(key)), None)
            if index is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[index] = strategic_merge(merged_list[index], item, None)
        return merged_list
    return copy.deepcopy(patch)


def _set_images(obj: dict[str, Any], rule: dict[str, str]) -> None:
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        image = container.get("image", "")
        name, _, tag = image.partition(":")
        if name != rule["name"]:
            continue
        name = rule.get("newName", name)
        tag = rule.get("newTag", tag)
        container["image"] = f"{name}:{tag}" if tag else name


def _generated_configmaps(directory: Path, kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    options = kustomization.get("generatorOptions", {})
    generators = kustomization.get("configMapGenerator", [])
    if generators and (set(options) - {"disableNameSuffixHash", "labels"} or not options.get("disableNameSuffixHash")):
        raise NotImplementedError("only configMapGenerator with disableNameSuffixHash is supported")
    configmaps = []
    for generator in generators:
        if set(generator) - {"name", "files"}:
            raise NotImplementedError(f"configMapGenerator fields {sorted(generator)} are not supported")
        data = {Path(f).name: (directory / f).read_text(encoding="utf-8") for f in generator["files"]}
        metadata: dict[str, Any] = {"name": generator["name"]}
        if options.get("labels"):
            metadata["labels"] = dict(options["labels"])
        configmaps.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return configmaps


def _apply_patch(directory: Path, entry: dict[str, str], objects: list[dict[str, Any]]) -> None:
    if set(entry) != {"path"}:
        raise NotImplementedError(f"patch fields {sorted(entry)} are not supported")
    patch = yaml.safe_load((directory / entry["path"]).read_text(encoding="utf-8"))
    matches = [
        i
        for i, obj in enumerate(objects)
        if obj["kind"] == patch["kind"] and obj["metadata"]["name"] == patch["metadata"]["name"]
    ]
    if len(matches) != 1:
        raise ValueError(f"patch {entry['path']} matches {len(matches)} objects")
    objects[matches[0]] = strategic_merge(objects[matches[0]], patch)


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization directory (the subset above) into a list of objects."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - _KUSTOMIZATION_KEYS
    if unknown:
        raise NotImplementedError(f"{directory}: kustomization fields {sorted(unknown)} are not supported")
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        objects.extend(render_kustomization(path) if path.is_dir() else load_yaml_documents(path))
    objects.extend(_generated_configmaps(directory, kustomization))
    for entry in kustomization.get("patches", []):
        _apply_patch(directory, entry, objects)
    # Kustomize runs one image transformer per entry, in order.
    for rule in kustomization.get("images", []):
        for obj in objects:
            _set_images(obj, rule)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in _CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]] | None:
    """Render with the real kustomize built into kubectl, or None where kubectl is absent."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    output = run_tool([kubectl, "kustomize", str(directory)])
    return [doc for doc in yaml.safe_load_all(output) if doc]


def render_overlay(name: str) -> list[dict[str, Any]]:
    directory = DEPLOY / "overlays" / name
    return kubectl_kustomize(directory) or render_kustomization(directory)


def settings_env_names() -> set[str]:
    """Environment variable name of every setting in streamtune.config.Settings."""
    from streamtune.config import Settings

    prefix = Settings.model_config["env_prefix"]
    return {f"{prefix}{name.upper()}" for name in Settings.model_fields}


def find_object(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    assert len(matches) == 1, f"{deployment['metadata']['name']} has no single container {name}"
    return matches[0]
