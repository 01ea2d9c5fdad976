"""Log output: one JSON object per line (STREAMTUNE_LOG_FORMAT=json) for our loggers and uvicorn's
alike, and ``--log-level`` governing both."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import httpx
import pytest

from streamtune.logs import configure_logging
from streamtune.testing.network import wait_for
from streamtune.testing.processes import settings_env


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_fields(restore_logging):
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    log = logging.getLogger("streamtune.trainer.example")
    log.info("published version %d", 7, extra={"version": 7, "partition": 2, "offsets": {"0": 41}})
    log.debug("not at info level")
    try:
        raise ValueError("broken batch")
    except ValueError:
        log.exception("step failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["message"] == "published version 7" and first["level"] == "info"
    assert first["logger"] == "streamtune.trainer.example" and first["time"].endswith("Z")
    assert (first["version"], first["partition"], first["offsets"]) == (7, 2, {"0": 41})
    assert second["level"] == "error" and "ValueError: broken batch" in second["exception"]


def test_text_lines_are_readable(restore_logging):
    stream = io.StringIO()
    configure_logging("warning", "text", stream=stream)
    logging.getLogger("streamtune.x").warning("slow step took %.1f s", 2.5, extra={"version": 3})
    logging.getLogger("streamtune.x").info("hidden")
    (line,) = stream.getvalue().splitlines()
    assert "slow step took 2.5 s" in line and "warning" in line and "version=3" in line


SECRETS = {
    "STREAMTUNE_ADMIN_TOKEN": "admin-sekrit-0123456789",
    "STREAMTUNE_PSEUDONYMISE_KEY": "pseudonym-sekrit-0123456789",
    "STREAMTUNE_KAFKA_SASL_USERNAME": "streamtune",
    "STREAMTUNE_KAFKA_SASL_PASSWORD": "sasl-sekrit-0123456789",
}


@pytest.mark.slow
@pytest.mark.parametrize("level", ["debug", "warning"])
def test_the_server_logs_json_for_its_own_and_uvicorns_records(settings, tmp_path, level):
    # Valid secrets (SASL is configured but unused by the plaintext test broker): never logged.
    env = settings_env(settings) | {"STREAMTUNE_LOG_FORMAT": "json"} | SECRETS
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamtune.cli", "serve", "--log-level", level],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{settings.http_port}/readyz"

            def ready() -> bool:
                try:
                    return httpx.get(url).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 120, what="the server to load a model")
        finally:
            server.terminate()
            server.wait(30)
    text = log_path.read_text()
    assert not [name for name, value in SECRETS.items() if "sekrit" in value and value in text]
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    loggers = {record["logger"] for record in records}
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    if level == "debug":
        assert "uvicorn.error" in loggers  # "Uvicorn running on …", "Started server process"
        assert any(name.startswith("streamtune.") for name in loggers)
    else:
        assert all(record["level"] in {"warning", "error", "critical"} for record in records), records
