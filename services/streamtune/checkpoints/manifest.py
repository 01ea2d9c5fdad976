"""The manifest of a version: what it is, where its data came from, how to verify its files.

Pure data with strict parsing: the inference service reads manifests written by another
process, so nothing in one is trusted before it is checked here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from streamtune.errors import CheckpointError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
# The trainer's own files in a version (see streamtune.trainer.versions.files): listed and hashed
# like the rest, but a server never reads them, so it neither downloads nor hashes them.
EVENTS_FILE = "events.json"
STREAM_STATE_FILE = "stream_state.safetensors"
TRAINER_ONLY_FILES = frozenset({EVENTS_FILE, STREAM_STATE_FILE})
# File names inside a version: plain names, no directories, no traversal.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's contents, read in 1 MiB chunks (weights can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """Everything known about one published version.

    ``kafka_offsets`` maps ``"topic:partition"`` to the next offset to consume: every record
    before it is contained in this version's weights (directly or through its parents).
    ``produced_watermark_ms`` is the newest Kafka timestamp of any event the lineage trained on;
    ``produced_oldest_ms`` the oldest of the events first trained into this very version (None
    when it trained none): between the two lie the production times of what this version adds,
    which is what the servers' freshness metric reports.
    """

    version: int
    parent_version: int | None
    base_model: str
    tuning: dict[str, Any]
    created_at: str
    files: dict[str, FileEntry]
    kafka_offsets: dict[str, int]
    examples_seen: int
    examples_in_version: int
    last_train_loss: float | None
    max_length: int
    data_watermark_ms: int | None = None
    produced_watermark_ms: int | None = None
    produced_oldest_ms: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    # The model family that wrote the version (``STREAMTUNE_MODEL_KIND``); ``text`` for versions
    # written before families existed.
    model_kind: str = "text"
    # A delta holds only what changed since version ``delta_of`` (apply it onto that version's
    # state); None: a full snapshot. ``chain_length``: deltas since the last full snapshot.
    delta_of: int | None = None
    chain_length: int = 0

    @property
    def created_at_s(self) -> float:
        """``created_at`` as seconds since the epoch."""
        return datetime.fromisoformat(self.created_at).timestamp()

    @property
    def records_through(self) -> int:
        """Records (valid or not) the version has consumed, over all partitions."""
        return sum(self.kafka_offsets.values())

    @property
    def is_delta(self) -> bool:
        """Whether the version is a delta against ``delta_of`` rather than a full snapshot."""
        return self.delta_of is not None

    def files_except(self, skip: Collection[str] = ()) -> list[tuple[str, FileEntry]]:
        """The listed files (name, entry) but those named in ``skip``: what a reader checks."""
        return [(name, entry) for name, entry in self.files.items() if name not in skip]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise CheckpointError(f"manifest is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise CheckpointError("manifest must be a JSON object")
        try:
            manifest = cls(
                version=_int(data["version"]),
                parent_version=None if data.get("parent_version") is None else _int(data["parent_version"]),
                base_model=str(data["base_model"]),
                tuning=dict(data["tuning"]),
                created_at=str(data["created_at"]),
                files={
                    name: FileEntry(sha256=str(entry["sha256"]), bytes=_int(entry["bytes"]))
                    for name, entry in dict(data["files"]).items()
                },
                kafka_offsets={str(key): _int(value) for key, value in dict(data["kafka_offsets"]).items()},
                examples_seen=_int(data["examples_seen"]),
                examples_in_version=_int(data["examples_in_version"]),
                last_train_loss=None if data.get("last_train_loss") is None else float(data["last_train_loss"]),
                max_length=_int(data["max_length"]),
                data_watermark_ms=_optional_int(data.get("data_watermark_ms")),
                produced_watermark_ms=_optional_int(data.get("produced_watermark_ms")),
                produced_oldest_ms=_optional_int(data.get("produced_oldest_ms")),
                metrics={str(k): float(v) for k, v in dict(data.get("metrics") or {}).items()},
                format_version=_int(data.get("format_version", FORMAT_VERSION)),
                model_kind=str(data.get("model_kind", "text")),
                delta_of=_optional_int(data.get("delta_of")),
                chain_length=_int(data.get("chain_length", 0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"manifest is malformed: {error!r}") from None
        manifest.check()
        return manifest

    def check(self) -> None:
        """Invariants every manifest must hold."""
        if self.format_version != FORMAT_VERSION:
            raise CheckpointError(f"manifest format {self.format_version} is not supported")
        if self.version < 1:
            raise CheckpointError(f"version must be >= 1, got {self.version}")
        if self.parent_version is not None and not 0 <= self.parent_version < self.version:
            raise CheckpointError(f"parent {self.parent_version} is not older than version {self.version}")
        if not self.files:
            raise CheckpointError("manifest lists no files")
        if self.model_kind == "text":
            _check_tuning(self.tuning)
        if self.delta_of is not None and not 0 < self.delta_of < self.version:
            raise CheckpointError(f"delta_of {self.delta_of} is not older than version {self.version}")
        if (self.delta_of is None) != (self.chain_length == 0) or self.chain_length < 0:
            raise CheckpointError(f"chain_length {self.chain_length} does not fit delta_of {self.delta_of}")
        if self.max_length < 1:
            raise CheckpointError(f"max_length must be >= 1, got {self.max_length}")
        if min(self.examples_seen, self.examples_in_version, *self.kafka_offsets.values()) < 0:
            raise CheckpointError("manifest counts and offsets must not be negative")
        for name, entry in self.files.items():
            if not _SAFE_NAME.match(name) or name == MANIFEST_FILE:
                raise CheckpointError(f"manifest names an unsafe file {name!r}")
            if not re.fullmatch(r"[0-9a-f]{64}", entry.sha256) or entry.bytes < 0:
                raise CheckpointError(f"manifest entry for {name!r} is malformed")


def _check_tuning(tuning: dict[str, Any]) -> None:
    """The tuning spec decides how weights are applied: refuse what no loader could use."""
    if tuning.get("tuning") not in ("lora", "full"):
        raise CheckpointError(f"manifest names an unknown tuning mode {tuning.get('tuning')!r}")
    rank, alpha = tuning.get("lora_r", 1), tuning.get("lora_alpha", 1)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise CheckpointError(f"manifest has an invalid LoRA rank {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise CheckpointError(f"manifest has an invalid LoRA alpha {alpha!r}")
    layers = tuning.get("lora_layers")
    if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int) or layers < 1):
        raise CheckpointError(f"manifest has an invalid LoRA layer count {layers!r}")


def offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def parse_offset_key(key: str) -> tuple[str, int]:
    topic, _, partition = key.rpartition(":")
    return topic, int(partition)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _optional_int(value: object) -> int | None:
    return None if value is None else _int(value)
