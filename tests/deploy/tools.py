"""External tools of the deployment checks, and the repository paths they work on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# Binaries the set-up installs from Debian packages: binary -> package.
APT_TOOLS = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "docker-compose": "docker-compose",
    "nginx": "nginx",
}


def find_tool(name: str) -> str:
    """Path of an external tool; fails (or, off Debian, skips) with the install command if absent.

    A missing tool on a Debian machine means the set-up was not run, which must not look like a
    pass; where apt-get does not exist the tool cannot be installed the project's way, so skip.
    """
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path:
        return path
    package = APT_TOOLS[name]
    message = f"`{name}` not found: install it with `apt-get install -y --no-install-recommends {package}`"
    if shutil.which("apt-get") is None:
        pytest.skip(f"{message} (no apt-get on this machine, so the set-up cannot install it)")
    pytest.fail(f"{message} (the Makefile set-up does this)")


def run_tool(
    args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> str:
    """Run a command; on failure, fail the test with its output."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout
