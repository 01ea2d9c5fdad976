"""Container health check for both streamtune processes; standard library only.

Usage: ``streamtune-healthcheck [train|serve]``. Without an argument the role is read from PID 1's
command line (``tini -- streamtune train``), so one image-level HEALTHCHECK fits both processes.
Exits 0 when the process answers, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def _role_of_pid1() -> str:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return "serve"
    return "train" if b"train" in args else "serve"


def probe_url(role: str) -> str:
    """The endpoint that proves the process is alive: trainer metrics, or the API's liveness."""
    if role == "train":
        port = os.environ.get("STREAMTUNE_TRAINER_METRICS_PORT", "9100")
        return f"http://127.0.0.1:{port}/metrics"
    port = os.environ.get("STREAMTUNE_HTTP_PORT", "8000")
    return f"http://127.0.0.1:{port}/healthz"


def main(argv: list[str]) -> int:
    role = argv[1] if len(argv) > 1 else _role_of_pid1()
    url = probe_url(role)
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            ok = 200 <= response.status < 300
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
