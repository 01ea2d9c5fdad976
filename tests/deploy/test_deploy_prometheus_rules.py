"""Alert rules and scrape config: promtool accepts them and the rules' unit tests pass."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.tools import DEPLOY, find_tool, run_tool

RULES = DEPLOY / "prometheus" / "rules.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULE_TESTS = Path(__file__).with_name("rules_test.yml")
# The alerts the deployment promises (deploy/README.md lists what each means).
REQUIRED_ALERTS = {
    "StreamtuneConsumerLagGrowing",
    "StreamtuneModelStale",
    "StreamtuneModelLoadFailures",
    "StreamtuneGateRejectingInARow",
    "StreamtuneDriftDetected",
    "StreamtuneTrainerDown",
}


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    output = run_tool([find_tool("promtool"), "check", "rules", str(RULES)])
    assert f"SUCCESS: {len(alerts())} rules found" in output


def test_promtool_checks_the_scrape_config() -> None:
    run_tool([find_tool("promtool"), "check", "config", str(SCRAPE_CONFIG)])


def test_rule_unit_tests_pass() -> None:
    run_tool([find_tool("promtool"), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent)


def test_required_alerts_exist_with_severity_and_summary() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert names >= REQUIRED_ALERTS, f"missing {sorted(REQUIRED_ALERTS - names)}"
    for rule in alerts():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    missing = {rule["alert"] for rule in alerts()} - fired
    assert not missing, f"alerts without a firing test case in rules_test.yml: {sorted(missing)}"
