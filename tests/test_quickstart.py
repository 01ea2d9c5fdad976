"""The README's quick start, run as written against a test stack, so the README cannot drift
from the product. What differs from a newcomer's machine: free ports instead of 8000/9092, a
tiny model instead of MiniLM, a temporary checkpoint store, and make told that .venv is already
installed (`-o`), since this suite runs inside it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from streamtune.testing.network import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
QUICK_START = re.compile(r"<!-- quick-start[^>]*-->\n```bash\n(.*?)```", re.S)


def quick_start_commands() -> list[str]:
    block = QUICK_START.search((ROOT / "README.md").read_text("utf-8"))
    assert block, "README.md lost its quick-start block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_block_starts_the_stack_and_uses_only_our_commands():
    commands = quick_start_commands()
    assert commands[0].startswith("make up")
    allowed = ("make ", ".venv/bin/streamtune ", "curl ")
    assert all(command.startswith(allowed) for command in commands), commands


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_readme_quick_start_runs_as_written(tmp_path, tiny_model_dir):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMTUNE_")} | {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "STREAMTUNE_HTTP_PORT": str(port),
        "STREAMTUNE_BROKER_PORT": str(free_port()),
        "STREAMTUNE_TRAINER_METRICS_PORT": str(free_port()),
        "STREAMTUNE_SUPERVISOR_METRICS_PORT": str(free_port()),
        "STREAMTUNE_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "STREAMTUNE_BASE_MODEL": tiny_model_dir,
        "STREAMTUNE_MAX_LENGTH": "32",
    }

    def as_run_here(command: str) -> str:
        command = command.replace("localhost:8000", f"localhost:{port}")
        return command.replace("make ", "make -o .venv/.installed -o .venv/.installed-dev ", 1)

    first, *rest = quick_start_commands()
    log = tmp_path / "up.log"
    with open(log, "wb") as output:
        stack = subprocess.Popen(
            as_run_here(first),
            shell=True,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: b"streamtune is up" in log.read_bytes(), 300, what=f"the stack ({log})")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        outputs = []
        for command in rest:
            done = subprocess.run(
                as_run_here(command),
                shell=True,
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            outputs.append(done.stdout + done.stderr)
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        stack.wait(60)
    demo, replay, predict = outputs
    assert "prequential AUC" in demo and "--- drift" in demo
    assert "produced 300 events (0 failed" in replay
    assert 0 <= json.loads(predict)["predictions"][0]["score"] <= 1
    # Ctrl-C reaches make too, which then reports the signal; the stack itself must stop cleanly.
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
