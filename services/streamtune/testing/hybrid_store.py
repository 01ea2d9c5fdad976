"""Publish hybrid versions straight from a model, without a trainer (tests and benchmarks).

The files are written with :mod:`streamtune.modeling.hybrid.version_files` and the manifest
says ``model_kind="hybrid"`` and, for a delta, ``delta_of`` and ``chain_length``, as the
trainer's hybrid family (:mod:`streamtune.modeling.hybrid.family`) publishes them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamtune.checkpoints import Manifest, VersionStore
from streamtune.modeling.hybrid.text_embeddings import EmbeddingCache
from streamtune.modeling.hybrid.version_files import CACHE_FILE, VersionInfo, write_version


def publish_hybrid(
    store: VersionStore,
    version: dict[str, Any],
    *,
    encoder: str = "encoder",
    texts: EmbeddingCache | None = None,
) -> Manifest:
    """Publish ``version`` (a snapshot or a delta from ``modeling.hybrid.versions``) as the next
    version, with ``texts`` as its shipped text embeddings; a delta extends the version LATEST
    names."""
    parent = store.latest_version()
    is_delta = version["type"] == "delta"
    chain_length = store.read_manifest(parent).chain_length + 1 if is_delta and parent else 0

    def write(directory: Path) -> None:
        write_version(directory, version, VersionInfo("publish_hybrid", version["type"], chain_length))
        if texts is not None:
            texts.save(directory / CACHE_FILE)

    def manifest(number: int, files: dict) -> Manifest:
        return Manifest(
            version=number,
            parent_version=parent,
            base_model=encoder,
            tuning={"tuning": "hybrid", **version["config"]},
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            files=files,
            kafka_offsets={},
            examples_seen=int(version["global_counts"][0]),
            examples_in_version=0,
            last_train_loss=None,
            max_length=64,
            data_watermark_ms=int(time.time() * 1000),
            model_kind="hybrid",
            delta_of=parent if is_delta else None,
            chain_length=chain_length,
        )

    return store.publish(write, manifest)
