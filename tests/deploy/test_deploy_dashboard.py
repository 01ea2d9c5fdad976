"""The Grafana dashboard and the alert rules query only metrics (and labels) the services define,
and the dashboard shows every streamtune metric."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from streamtune.metrics import ServingMetrics, TrainerMetrics
from tests.deploy.tools import DEPLOY, REPO

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamtune.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
# Series Prometheus itself adds to every target.
SYNTHETIC = {"up"}
TARGET_LABELS = {"job", "instance"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def parse_promql(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression uses.

    A lexical reading, enough for the expressions we write: identifiers not followed by "(" are
    metric names once strings, label matchers, ranges and grouping clauses are taken out.
    """
    labels: set[str] = set()
    text = _STRING.sub('""', expr)
    for matcher in _MATCHERS.findall(text):
        labels.update(_MATCHER_LABEL.findall(matcher))
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    for grouping in _GROUPING.findall(text):
        labels.update(name.strip() for name in grouping.split(",") if name.strip())
    text = _GROUPING.sub(" ", text)
    metrics = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue
        metrics.add(match.group())
    return metrics, labels


def exposed_metrics() -> dict[str, set[str]]:
    """Every series name the services can expose -> its label names, from the metric definitions.

    Built from the registries' families and types, not from samples: a labelled metric with no
    children yet exposes no sample but is still defined.
    """
    exposed: dict[str, set[str]] = {}
    for metrics in (TrainerMetrics(), ServingMetrics()):
        labelnames = {
            m._name: set(m._labelnames)  # the collector's own definition
            for m in vars(metrics).values()
            if isinstance(m, MetricWrapperBase)
        }
        for family in metrics.registry.collect():
            labels = labelnames.get(family.name, set()) | TARGET_LABELS
            if family.type == "counter":
                names = {f"{family.name}_total", f"{family.name}_created"}
            elif family.type == "histogram":
                names = {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
            elif family.type == "summary":
                names = {family.name, f"{family.name}_sum", f"{family.name}_count"}
            else:
                names = {family.name} | {sample.name for sample in family.samples}
            for name in names:
                exposed[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return exposed


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> Iterator[tuple[str, str, str]]:
    """(where, expr, legend format) of every query in the dashboard and the alert rules."""
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"], target.get("legendFormat", "")
    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"], ""


def test_parse_promql_reads_metrics_and_labels() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, endpoint) (rate(a_bucket{status=~"5.."}[$__rate_interval])))'
        " / on (job) group_left () max(b_total offset 5m) and time() - c > 1e3"
    )
    assert parse_promql(expr) == ({"a_bucket", "b_total", "c"}, {"le", "endpoint", "status", "job"})


def test_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] == "streamtune" and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(dashboard_panels())
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip()


def test_dashboard_shows_the_issue_s_panels() -> None:
    text = " ".join(expr for _, expr, _ in queries())
    for metric in (
        "streamtune_events_consumed_total",
        "streamtune_consumer_lag",
        "streamtune_train_loss",
        "streamtune_prequential_auc",
        "streamtune_trainer_model_version",
        "streamtune_serving_model_version",
        "streamtune_model_swap_seconds_bucket",
        "streamtune_request_seconds_count",
        "streamtune_request_seconds_bucket",
        "streamtune_last_publish_timestamp_seconds",
    ):
        assert metric in text, f"the dashboard does not show {metric}"


@pytest.mark.parametrize(("where", "expr", "legend"), list(queries()), ids=lambda v: str(v)[:60])
def test_queries_use_only_defined_metrics_and_labels(where: str, expr: str, legend: str) -> None:
    exposed = exposed_metrics()
    metrics, labels = parse_promql(expr)
    assert metrics, f"{where}: no metric found in {expr!r}"
    unknown = metrics - set(exposed) - SYNTHETIC
    assert not unknown, f"{where}: {sorted(unknown)} are not defined in streamtune.metrics"
    known_labels = set().union(*(exposed.get(m, TARGET_LABELS) for m in metrics))
    used = labels | set(_LEGEND_LABEL.findall(legend))
    assert used <= known_labels, f"{where}: labels {sorted(used - known_labels)} do not exist on {sorted(metrics)}"


def test_every_streamtune_metric_is_on_the_dashboard() -> None:
    shown = set()
    for _, expr, _ in queries():
        shown |= parse_promql(expr)[0]
    families = {
        re.sub(r"_(total|created|bucket|sum|count)$", "", name)
        for name in exposed_metrics()
        if name.startswith("streamtune_")
    }
    shown_families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in shown}
    assert families - shown_families == set(), f"not on the dashboard: {sorted(families - shown_families)}"


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "streamtune.yml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
