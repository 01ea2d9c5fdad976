"""Publish a version, then — and only then — tell Kafka its records are done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Producer

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.checkpoints.manifest import FileEntry
from streamtune.errors import LineageMovedError, PublishError
from streamtune.kafka.clients import RenewableProducer
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.family import ModelExport
from streamtune.trainer.versions.files import VersionEvents, write_events, write_stream_state

logger = logging.getLogger(__name__)

_FLUSH_TIMEOUT_S = 10.0


@dataclass
class VersionDraft:
    """What the training loop hands over: the model snapshot and the bookkeeping that goes with it."""

    snapshot: object
    parent_version: int | None
    kafka_offsets: dict[str, int]
    examples_seen: int
    examples_in_version: int
    last_train_loss: float | None
    data_watermark_ms: int | None
    produced_watermark_ms: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    events: VersionEvents = field(default_factory=VersionEvents)
    stream_state: dict[str, np.ndarray] = field(default_factory=dict)
    produced_oldest_ms: int | None = None


@dataclass(frozen=True)
class KafkaSide:
    """The Kafka side of publishing: the producer whose dead letters a version covers, the topic
    that announces versions, and the commit of offsets once a version is durable."""

    producer: Producer | RenewableProducer
    models_topic: str
    commit_offsets: Callable[[dict[str, int]], None]


class VersionPublisher:
    """Owns the durability protocol of the trainer (see :meth:`publish`)."""

    def __init__(self, store: CheckpointStore, kafka: KafkaSide, family: ModelExport, metrics: TrainerMetrics) -> None:
        self._store = store
        self._producer = kafka.producer
        self._models_topic = kafka.models_topic
        self._commit_offsets = kafka.commit_offsets
        self._family = family
        self._metrics = metrics

    def publish(self, draft: VersionDraft) -> Manifest:
        """Make ``draft`` a durable version and release its Kafka offsets.

        Steps, in this order:
        1. flush the producer: every dead letter covered by the draft's offsets is acknowledged
           by the cluster (otherwise a crash after step 2 would skip records never dead-lettered);
        2. under the store's lock, check that LATEST still names the draft's parent (else a
           rollback happened: raise :class:`LineageMovedError`), then write the version — the
           model family's files, ``events.json``, ``stream_state.safetensors`` — (temp dir,
           fsync, rename, LATEST): durable from here;
        3. announce it on the models topic (a hint: servers also poll the store), then apply
           the store's retention;
        4. commit the offsets to the consumer group — never before step 2.
        A failure in steps 1–2 raises :class:`PublishError` and leaves store and offsets as they
        were; the caller keeps training and retries with the next version.
        """
        started = time.perf_counter()
        undelivered = self._producer.flush(_FLUSH_TIMEOUT_S)  # Step 1
        if undelivered:
            self._metrics.publish_failures.inc()
            raise PublishError(f"{undelivered} dead letters not acknowledged by Kafka; not publishing")
        try:
            with self._store.lock():  # Step 2
                latest = self._store.latest_version()
                if latest != draft.parent_version:
                    raise LineageMovedError(
                        f"LATEST names version {latest}, the draft was trained from {draft.parent_version}"
                    )
                model: dict[str, Any] = {}
                manifest = self._store.publish(
                    lambda directory: model.update(self._write_payload(directory, draft)),
                    lambda version, files: self._manifest(version, files, draft, model),
                    prune=False,
                )
                elapsed = time.perf_counter() - started
                self._announce(manifest)  # Step 3
                # Servers load the new version while the retention removes old ones.
                self._store.prune(manifest.version)
        except LineageMovedError:
            raise
        except PublishError:
            self._metrics.publish_failures.inc()
            raise
        self._commit_offsets(manifest.kafka_offsets)  # Step 4

        size = sum(entry.bytes for entry in manifest.files.values())
        self._metrics.checkpoint_publish_seconds.observe(elapsed)
        self._metrics.checkpoint_bytes.set(size)
        self._metrics.trainer_model_version.set(manifest.version)
        self._metrics.last_publish_timestamp.set(time.time())
        logger.info(
            "published version %d (%d examples, %d bytes) in %.3f s",
            manifest.version,
            draft.examples_in_version,
            size,
            elapsed,
        )
        return manifest

    def _write_payload(self, directory: Path, draft: VersionDraft) -> dict[str, Any]:
        """Every file of the version; returns the manifest fields the model family gave."""
        parent = None
        # A delta needs the parent's files at hand: the directory store has them; on object
        # storage the family writes full snapshots.
        if self._family.writes_deltas and draft.parent_version is not None and isinstance(self._store, CheckpointStore):
            parent = self._store.path_of(draft.parent_version)
        model = self._family.export(directory, draft.snapshot, parent=parent)
        write_events(directory, draft.events)
        write_stream_state(directory, draft.stream_state)
        return model

    def _manifest(
        self, version: int, files: dict[str, FileEntry], draft: VersionDraft, model: dict[str, Any]
    ) -> Manifest:
        return Manifest(
            version=version,
            parent_version=draft.parent_version,
            **model,
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            files=files,
            kafka_offsets=dict(draft.kafka_offsets),
            examples_seen=draft.examples_seen,
            examples_in_version=draft.examples_in_version,
            last_train_loss=draft.last_train_loss,
            data_watermark_ms=draft.data_watermark_ms,
            produced_watermark_ms=draft.produced_watermark_ms,
            produced_oldest_ms=draft.produced_oldest_ms,
            metrics=dict(draft.metrics),
        )

    def _announce(self, manifest: Manifest) -> None:
        try:
            self._producer.produce(self._models_topic, key=str(manifest.version).encode(), value=manifest.to_json())
            self._producer.poll(0)
        except Exception as error:  # servers poll the store too, so a lost hint only adds delay
            logger.warning("could not announce version %d: %s", manifest.version, error)
