"""What a user sees when a command is misconfigured or misused: one or two plain lines naming the
setting, exit status 2 (usage, configuration) or 1 (run time), and never a secret's value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamtune.privacy.pseudonyms import KEY_FILE

TIMEOUT_S = 60


def streamtune(
    cwd: Path, *args: str, env: dict[str, str] | None = None, python: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in ``cwd`` with only ``env``'s STREAMTUNE_* variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMTUNE_")}
    clean["HF_HUB_OFFLINE"] = "1"
    code = f"import sys; {python}\nfrom streamtune.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def assert_short_error(result: subprocess.CompletedProcess[str], status: int, *expected: str) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert 1 <= len(result.stderr.strip().splitlines()) <= 2, result.stderr
    for text in expected:
        assert text in result.stderr


SECRETS = [
    ({"STREAMTUNE_ADMIN_TOKEN": "short9-sekrit"}, "STREAMTUNE_ADMIN_TOKEN"),
    ({"STREAMTUNE_PSEUDONYMISE_KEY": "pk-sekrit-42"}, "STREAMTUNE_PSEUDONYMISE_KEY"),
    ({"STREAMTUNE_KAFKA_SASL_PASSWORD": "sasl-sekrit-password"}, "STREAMTUNE_KAFKA_SASL_USERNAME"),
]


@pytest.mark.parametrize(("env", "named"), SECRETS, ids=[named for _, named in SECRETS])
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_invalid_secret_is_named_but_its_value_never_printed(tmp_path, env, named, log_format):
    (secret,) = env.values()
    for command in (["forget", "u1"], ["serve"], ["rollback", "--to", "1"]):
        result = streamtune(tmp_path, *command, env=env | {"STREAMTUNE_LOG_FORMAT": log_format})
        assert_short_error(result, 2, named)
        assert secret not in result.stdout + result.stderr
        assert secret[:6] not in result.stdout + result.stderr  # nor a prefix of it
    debug = streamtune(tmp_path, "serve", "--log-level", "debug", env=env)  # with the traceback
    assert debug.returncode == 2 and named in debug.stderr and "Traceback" in debug.stderr
    assert secret[:6] not in debug.stdout + debug.stderr


def test_an_invalid_secret_in_a_config_file_is_not_echoed_either(tmp_path):
    config = tmp_path / "prod.env"
    config.write_text("STREAMTUNE_ADMIN_TOKEN=tooshort1\nSTREAMTUNE_KAFKA_SASL_PASSWORD=' '\n")
    result = streamtune(tmp_path, "serve", "--config", str(config))
    assert result.returncode == 2
    assert "tooshort1" not in result.stderr and "STREAMTUNE_ADMIN_TOKEN" in result.stderr
    assert "STREAMTUNE_KAFKA_SASL_PASSWORD is set but blank" in result.stderr


def test_a_misspelt_variable_is_an_error_suggesting_the_nearest_name(tmp_path):
    result = streamtune(tmp_path, "rollback", "--to", "1", env={"STREAMTUNE_BATCH_SIZ": "5"})
    assert_short_error(result, 2, "STREAMTUNE_BATCH_SIZ", "did you mean STREAMTUNE_BATCH_SIZE?")


def test_unknown_config_file_keys_are_errors_with_suggestions(tmp_path):
    config = tmp_path / "streamtune.env"
    config.write_text("# ok\nSTREAMTUNE_BATCH_SIZE=4\nSTREAMTUNE_HTTP_PROT=8001\n")
    explicit = streamtune(tmp_path, "rollback", "--to", "1", "--config", str(config))
    default = streamtune(tmp_path, "rollback", "--to", "1")  # streamtune.env in the working directory
    for result in (explicit, default):
        assert_short_error(result, 2, "STREAMTUNE_HTTP_PROT", "did you mean STREAMTUNE_HTTP_PORT?")


def test_an_invalid_value_names_the_variable_and_the_rule(tmp_path):
    too_small = streamtune(tmp_path, "serve", env={"STREAMTUNE_BATCH_SIZE": "0", "STREAMTUNE_TUNING": "half"})
    not_json = streamtune(tmp_path, "serve", env={"STREAMTUNE_KAFKA_EXTRA": "{"})
    assert_short_error(too_small, 2, "STREAMTUNE_BATCH_SIZE: Input should be greater than or equal to 1")
    assert "STREAMTUNE_TUNING: Input should be 'lora' or 'full'" in too_small.stderr
    assert_short_error(not_json, 2, "STREAMTUNE_KAFKA_EXTRA: not valid JSON")


def test_common_options_work_after_the_sub_command(tmp_path):
    config = tmp_path / "other.env"
    config.write_text(f"STREAMTUNE_CHECKPOINT_DIR={tmp_path / 'elsewhere'}\n")
    result = streamtune(tmp_path, "rollback", "--to", "1", "--config", str(config), "--log-level", "warning")
    assert_short_error(result, 2, str(tmp_path / "elsewhere"))


def test_forget_refuses_a_store_that_does_not_exist_and_creates_nothing(tmp_path):
    result = streamtune(tmp_path, "forget", "u1")
    assert_short_error(result, 2, "STREAMTUNE_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    assert list(tmp_path.iterdir()) == []


def test_forget_never_generates_a_key_for_a_store_without_one(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    result = streamtune(tmp_path, "forget", "u1")
    assert_short_error(result, 2, KEY_FILE, "STREAMTUNE_PSEUDONYMISE_KEY")
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_forget_records_the_request_in_the_trainers_store(tmp_path):
    store = tmp_path / "checkpoints"
    store.mkdir()
    (store / KEY_FILE).write_bytes(os.urandom(32))
    result = streamtune(tmp_path, "forget", "u1")
    assert result.returncode == 0, result.stderr
    assert "recorded: forget pseudonym" in result.stdout


def test_rollback_refuses_a_store_that_does_not_exist(tmp_path):
    result = streamtune(tmp_path, "rollback", "--to", "3", env={"STREAMTUNE_CHECKPOINT_DIR": "nowhere"})
    assert_short_error(result, 2, "STREAMTUNE_CHECKPOINT_DIR", str(tmp_path / "nowhere"))


def test_replay_checks_its_file_before_connecting(tmp_path):
    # Port 9 (discard) has no broker: were it contacted first, this would hang or print librdkafka noise.
    result = streamtune(tmp_path, "replay", "missing.jsonl", env={"STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert_short_error(result, 2, "missing.jsonl")


def test_a_missing_optional_package_names_the_extra(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "1", "text": "x", "label": 1}\n')
    result = streamtune(tmp_path, "evaluate", str(events), python="sys.modules['river'] = None")
    assert_short_error(result, 2, "river", "pip install 'streamtune[eval]'")
    assert list(tmp_path.iterdir()) == [events]  # nothing started, nothing left behind


def test_an_unexpected_failure_is_one_line_unless_debugging(tmp_path):
    events = tmp_path / "events.jsonl"
    events.mkdir()  # a directory where a file is expected: an OSError deep inside
    env = {"STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    quiet = streamtune(tmp_path, "replay", str(events), env=env)
    assert_short_error(quiet, 2, "no such events file")
    broken = "import streamtune.broker as b; b.EmbeddedBroker = lambda *a, **k: exec('raise RuntimeError(\\'boom\\')')"
    plain = streamtune(tmp_path, "broker", env=env, python=broken)
    debug = streamtune(tmp_path, "broker", "--log-level", "debug", env=env, python=broken)
    assert_short_error(plain, 1, "RuntimeError: boom", "--log-level debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_evaluate_checks_free_disk_before_it_starts(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "1", "text": "x", "label": 1}\n')
    full_disk = "import shutil; shutil.disk_usage = lambda path: shutil._ntuple_diskusage(1 << 30, 1 << 30, 5 << 20)"
    result = streamtune(tmp_path, "evaluate", str(events), "--work-dir", str(tmp_path), python=full_disk)
    assert_short_error(result, 2, "evaluate needs about 2048 MiB free", "5 MiB are")
    assert list(tmp_path.iterdir()) == [events]


def test_an_unreachable_broker_is_one_line_naming_the_address_not_a_flood(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "1", "text": "x", "label": 1}\n')
    result = streamtune(tmp_path, "replay", str(events), env={"STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert_short_error(result, 1, "Kafka at 127.0.0.1:9 did not answer", "STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS")
    assert "rdkafka" not in result.stderr
