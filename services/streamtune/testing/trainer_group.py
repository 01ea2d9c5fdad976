"""A data-parallel trainer group as a user starts it (``python -m streamtune train --nproc N``),
ranks to SIGKILL, and the events topic's end offsets to compare a manifest with.

Shared by the distributed trainer's tests and ``benchmarks/distributed_training.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streamtune.checkpoints.manifest import offset_key
from streamtune.config import Settings
from streamtune.testing.processes import settings_env


class TrainerGroup:
    """``streamtune train --nproc N --max-restarts R`` in a child process (torchrun's agent,
    whose children are the ranks), its output in a log file."""

    def __init__(self, settings: Settings, nproc: int, log_path: Path, *, max_restarts: int = 0) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "streamtune", "train", f"--nproc={nproc}", f"--max-restarts={max_restarts}"]
        self.process = subprocess.Popen(
            command, env=settings_env(settings), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ranks(self) -> dict[int, int]:
        """RANK → pid of the ranks running now."""
        found = {}
        for child in psutil.Process(self.process.pid).children():
            try:
                rank = child.environ().get("RANK")
            except psutil.Error:  # exited meanwhile
                continue
            if rank is not None:
                found[int(rank)] = child.pid
        return found

    def kill_rank(self, rank: int) -> int | None:
        """SIGKILL rank ``rank`` (a crash: no clean-up); returns its pid, None if not running."""
        pid = self.ranks().get(rank)
        if pid is not None:
            psutil.Process(pid).send_signal(signal.SIGKILL)
        return pid

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM the agent, which forwards it to the ranks: they stop together after a last
        version. Returns the agent's exit status (torchrun reports a signal as a failure)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(self.process.pid).children(recursive=True):
                    child.kill()
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def end_offsets(bootstrap: str, topic: str, partitions: int, timeout_s: float = 30.0) -> dict[str, int]:
    """``"topic:partition"`` → the partition's end offset (the next record's offset), read to the
    end: Tansu's ListOffsets answers too low when the last record batch holds several records
    (:mod:`streamtune.ingest.partition_ends`), a fetch does not."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "streamtune-end-offsets", "enable.partition.eof": True}
    )
    ends = {offset_key(topic, partition): 0 for partition in range(partitions)}
    at_end: set[str] = set()
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(at_end) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            key = offset_key(message.topic(), message.partition())
            if message.error() is None:
                ends[key] = message.offset() + 1
            elif message.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(key)
    finally:
        consumer.close()
    if len(at_end) < partitions:
        raise TimeoutError(f"could not read {topic} to its end within {timeout_s:.0f} s")
    return ends
