"""A real Prometheus, configured from deploy/prometheus/prometheus.yml, scrapes a real trainer and
inference server: both targets are up, the version gauges arrive under the project's job names,
the alert rules evaluate, and every dashboard query is accepted."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from streamtune.config import Settings
from streamtune.metrics import ServingMetrics, TrainerMetrics
from streamtune.testing.events import produce, synthetic_events
from streamtune.testing.network import free_port, wait_for
from streamtune.testing.processes import ServiceProcess
from tests.deploy.test_deploy_dashboard import dashboard_panels
from tests.deploy.tools import DEPLOY, find_tool

pytestmark = pytest.mark.slow

TRAINER_JOB = "streamtune-trainer"
INFERENCE_JOB = "streamtune-inference"


def scrape_config_for(trainer: str, inference: str, rules: Path) -> dict[str, Any]:
    """The project's scrape config with its targets pointed at this test's processes."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {TRAINER_JOB, INFERENCE_JOB} <= set(jobs), "the project's job names changed"
    for name, target in ((TRAINER_JOB, trainer), (INFERENCE_JOB, inference)):
        job = jobs[name]
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = [jobs[TRAINER_JOB], jobs[INFERENCE_JOB]]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    return config


class Prometheus:
    """A Prometheus server process with its HTTP API on a free port."""

    def __init__(self, config: dict[str, Any], workdir: Path):
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                find_tool("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited {self.process.returncode}:\n{self.log_path.read_text()}")
        body = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _log_tails(paths: list[Path], lines: int = 40) -> str:
    tails = []
    for path in paths:
        text = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
        tails.append(f"--- {path.name} ---\n" + "\n".join(text[-lines:]))
    return "\n".join(tails)


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[tuple[Prometheus, Settings]]:
    trainer = ServiceProcess("train", settings, tmp_path / "trainer.log")
    server = ServiceProcess("serve", settings, tmp_path / "server.log")
    (tmp_path / "prometheus").mkdir()
    prometheus = Prometheus(
        scrape_config_for(
            trainer=f"127.0.0.1:{settings.trainer_metrics_port}",
            inference=f"127.0.0.1:{settings.http_port}",
            rules=DEPLOY / "prometheus" / "rules.yml",
        ),
        tmp_path / "prometheus",
    )
    try:
        yield prometheus, settings
    finally:
        prometheus.stop()
        trainer.stop()
        server.stop()
        # Captured, so shown only when the test fails: the processes' own account of it.
        print(_log_tails([trainer.log_path, server.log_path, prometheus.log_path]))


def _targets_up(prometheus: Prometheus) -> bool:
    targets = prometheus.api("targets")["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in targets}
    return health == {TRAINER_JOB: "up", INFERENCE_JOB: "up"}


def _version(prometheus: Prometheus, metric: str, job: str) -> float | None:
    result = prometheus.query(f'{metric}{{job="{job}"}}')
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_trainer_and_inference(stack: tuple[Prometheus, Settings]) -> None:
    prometheus, settings = stack
    wait_for(lambda: _targets_up(prometheus), 120, interval_s=0.5, what="both targets up in Prometheus")
    for metric, job in (
        ("streamtune_trainer_model_version", TRAINER_JOB),
        ("streamtune_serving_model_version", INFERENCE_JOB),
    ):
        wait_for(lambda m=metric, j=job: _version(prometheus, m, j) is not None, 30, what=f"{metric} scraped")

    # A version trained from events flows through to both gauges as Prometheus sees them.
    produce(settings.bootstrap_servers, settings.events_topic, synthetic_events(16, prefix="prom"))
    published = wait_for(
        lambda: _version(prometheus, "streamtune_trainer_model_version", TRAINER_JOB),
        120,
        interval_s=0.5,
        what="a published version in Prometheus",
    )
    assert published >= 1
    served = wait_for(
        lambda: _version(prometheus, "streamtune_serving_model_version", INFERENCE_JOB),
        60,
        interval_s=0.5,
        what="a served version in Prometheus",
    )
    assert served >= 1

    # Every unlabelled metric each process defines is scraped under that process's job.
    for job, metrics in ((TRAINER_JOB, TrainerMetrics()), (INFERENCE_JOB, ServingMetrics())):
        scraped = {r["metric"]["__name__"] for r in prometheus.query(f'{{job="{job}", __name__=~"streamtune_.*"}}')}
        for family in metrics.registry.collect():
            if family.name.startswith("streamtune_") and family.samples:
                assert {s.name for s in family.samples if not s.name.endswith("_created")} <= scraped, family.name

    # The alert rules load and evaluate without errors against real series.
    def rules_evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return rules if rules and all(r["lastEvaluation"] > "2000" for r in rules) else None

    for rule in wait_for(rules_evaluated, 30, what="rules evaluated"):
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"

    # Every dashboard query is valid PromQL for this Prometheus.
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            prometheus.query(target["expr"].replace("$__rate_interval", "1m"))
