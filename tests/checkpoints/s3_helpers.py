"""Versions with recognisable contents, for the object storage tests and their child processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streamtune.checkpoints import Manifest, VersionStore
from streamtune.checkpoints.manifest import FileEntry

WEIGHTS = "adapter.safetensors"
EVENTS = "events.json"


def manifest_for(
    version: int, files: dict[str, FileEntry], parent: int | None = None, metrics: dict[str, float] | None = None
) -> Manifest:
    return Manifest(
        version=version,
        parent_version=parent,
        base_model="base",
        tuning={"tuning": "lora"},
        created_at="2026-01-01T00:00:00Z",
        files=files,
        kafka_offsets={"events:0": version * 10},
        examples_seen=version * 10,
        examples_in_version=10,
        last_train_loss=0.5,
        max_length=32,
        metrics=metrics or {},
    )


def payload(tag: bytes, size: int = 4096, files: int = 2) -> Callable[[Path], None]:
    """``files`` files, each ``size`` bytes of ``tag`` repeated: a reader can tell whose they are."""

    def write(directory: Path) -> None:
        names = [WEIGHTS, EVENTS] + [f"part-{index:02d}.bin" for index in range(files - 2)]
        for name in names[:files]:
            (directory / name).write_bytes((tag * (size // len(tag) + 1))[:size])

    return write


def publish(store: VersionStore, tag: bytes = b"weights", size: int = 4096, files: int = 2) -> Manifest:
    return store.publish(payload(tag, size, files), lambda version, entries: manifest_for(version, entries))
