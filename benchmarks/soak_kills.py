"""SIGKILL the stack's children on a schedule and time their way back.

For each kill: how long until the supervisor had started a new process, how long until it was
ready again (server: ``/readyz``; trainer: ``streamtune_trainer_ready``), and — from the predict
outcomes — how long predict went unanswered after it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.soak_load import Outcome
from benchmarks.soak_probe import SHED, scrape, stack_processes


@dataclass
class Kill:
    child: str
    at: float  # monotonic
    old_pid: int
    new_pid_after_s: float | None = None
    ready_after_s: float | None = None


class Killer(threading.Thread):
    """Kill ``children`` in turn (e.g. trainer, server, trainer, …), one every ``every_s``;
    ``ready`` probes each child's readiness."""

    def __init__(
        self, supervisor_pid: int, children: Sequence[str], every_s: float, ready: dict[str, Callable[[], bool]]
    ) -> None:
        super().__init__(name="soak-killer", daemon=True)
        self.supervisor_pid = supervisor_pid
        self.children = list(children)
        self.every_s = every_s
        self.ready = ready
        self.kills: list[Kill] = []
        self.halt = threading.Event()

    def run(self) -> None:
        for child in self.children:
            if self.halt.wait(self.every_s):
                return
            self._kill(child)

    def _kill(self, child: str) -> None:
        process = stack_processes(self.supervisor_pid).get(child)
        if process is None:
            return
        kill = Kill(child, time.monotonic(), process.pid)
        os.kill(process.pid, signal.SIGKILL)
        self.kills.append(kill)
        deadline = kill.at + 120
        while time.monotonic() < deadline and not self.halt.is_set():
            now = time.monotonic()
            current = stack_processes(self.supervisor_pid).get(child)
            if kill.new_pid_after_s is None and current is not None and current.pid != kill.old_pid:
                kill.new_pid_after_s = round(now - kill.at, 2)
            if kill.new_pid_after_s is not None and self.ready[child]():
                kill.ready_after_s = round(time.monotonic() - kill.at, 2)
                return
            time.sleep(0.1)


def readiness_probes(host: str, server_port: int, trainer_port: int) -> dict[str, Callable[[], bool]]:
    def server() -> bool:
        return '"status":"ready"' in scrape(f"http://{host}:{server_port}/readyz").replace(" ", "")

    def trainer() -> bool:
        return "streamtune_trainer_ready 1.0" in scrape(f"http://{host}:{trainer_port}/metrics")

    return {"server": server, "trainer": trainer}


def kill_report(kills: Sequence[Kill], outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Each kill with the span of predict failures (no answer or a 5xx that is not a shed)
    among requests sent from the kill until the child was ready again."""
    report = []
    for kill in kills:
        end = kill.at + (kill.ready_after_s or 120)
        failed = [o.sent for o in outcomes if kill.at <= o.sent <= end and o.status not in (200, *SHED)]
        report.append(
            {
                "child": kill.child,
                "new_process_after_s": kill.new_pid_after_s,
                "ready_after_s": kill.ready_after_s,
                "predict_failures": len(failed),
                "predict_unavailable_s": round(max(failed) - kill.at, 2) if failed else 0.0,
            }
        )
    return report
