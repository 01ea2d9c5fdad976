"""The online training recipe, top to bottom.

``TrainerService`` reads: set up (device → store → model → learner → guards → resume → Kafka),
optionally bootstrap from a historical file, then loop (take a micro-batch → route it → score
it → train on it → every N batches judge and publish a version), then close.

Supported: LoRA (PEFT) or full fine-tuning of a sequence-classification model with one logit
(binary task, BCE); CPU or one CUDA device (bf16 autocast, fused AdamW, pinned host memory).

Exactly-once training. A version records the Kafka offsets it has consumed and the ids of the
events it trained (``events.json``); its ``stream_state`` holds the deduplication and holdout
windows. On start the trainer resumes from the version LATEST names — weights, offsets and
windows — and the ingest thread seeks there on every assignment; offsets are committed to the
group only after a version is durable. Work after the newest version is re-consumed after a
crash, and an event re-delivered under the same id is trained once (within the dedupe window).

Routing of each batch. Duplicates are skipped; held-out events (a stable hash share) only feed
the gate's window; every fresh event is scored before training (prequential loss/AUC, drift
test); the rest is trained together with a sample from the replay buffer.

Quality gate. A candidate is published only if its holdout log-loss is within the tolerance of
the published version's on the same window. After ``gate_patience`` rejections in a row the
trainer puts the published weights back and records the events trained since as discarded.

Rollback (``streamtune rollback --to N`` or :meth:`CheckpointStore.rollback`). The trainer
checks LATEST between batches; when it names another version than the one it published, it
reloads that version exactly as a restart would — its weights, its offsets and its windows —
and re-subscribes, so the events after N's offsets are consumed again and new versions are
children of N. This is the only behaviour that is the same whether the trainer was running or
restarted after the rollback (the store holds no other durable position), and it keeps every
lineage exactly-once. Re-training the stretch the abandoned versions saw is guarded by the gate,
which now compares against N.

Not supported: several trainers writing one store (publishing checks LATEST under the store's
lock, so a second writer's versions are refused, not interleaved), multi-GPU.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import torch
from confluent_kafka import KafkaError

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.config import Settings
from streamtune.errors import CheckpointError, ConfigurationError, LineageMovedError, PublishError
from streamtune.ingest.consumer import EventIngestor, IngestConfig, TrainedPosition
from streamtune.ingest.handoff import BatchHandoff, TrainingBatch
from streamtune.kafka.clients import ensure_topics, make_consumer, make_producer
from streamtune.metrics import TrainerMetrics
from streamtune.modeling import device as devices
from streamtune.modeling.base import (
    TuningSpec,
    load_base_model,
    load_tokenizer,
    resolve_base_model,
    wrap_for_tuning,
)
from streamtune.modeling.weights import apply_state, load_state, trainable_state
from streamtune.trainer.bootstrap import BootstrapSummary, historical_batches
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.drift import PageHinkley
from streamtune.trainer.gate import QualityGate
from streamtune.trainer.gatekeeper import Gatekeeper
from streamtune.trainer.holdout import HoldoutWindow, is_holdout
from streamtune.trainer.learner import OnlineLearner
from streamtune.trainer.ledger import VersionLedger
from streamtune.trainer.prequential import RollingScore, log_losses
from streamtune.trainer.publisher import VersionDraft, VersionPublisher
from streamtune.trainer.replay_buffer import ReplayBuffer
from streamtune.trainer.token_rows import TOKEN_TYPE_IDS, check_inputs, concat_batches, select_rows
from streamtune.trainer.version_files import read_stream_state

logger = logging.getLogger(__name__)

_RECENT_IDS = "recent_ids"


class TrainerService:
    """Consumes the events topic and publishes versions into the checkpoint store."""

    def __init__(self, settings: Settings, metrics: TrainerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or TrainerMetrics()
        self.spec = TuningSpec(
            tuning=settings.tuning,
            lora_r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            lora_target_modules=tuple(settings.lora_target_modules) if settings.lora_target_modules else None,
        )
        self.position: dict[str, int] = {}
        self.published: Manifest | None = None
        self.examples_seen = 0
        self.ledger = VersionLedger()
        self.prequential = RollingScore(window=2000)
        self.ingestor: EventIngestor | None = None

    # --- setup -----------------------------------------------------------------------------
    def setup(self) -> TrainerService:
        self._setup_device()
        self._setup_store()
        self._setup_model()
        self._setup_guards()
        self._resume()
        self._setup_kafka()
        return self

    def _setup_device(self) -> None:
        torch.manual_seed(self.settings.seed)
        self.device = devices.select_device(self.settings.device)
        logger.info("training on %s, tuning=%s", devices.describe(self.device), self.spec.tuning)

    def _setup_store(self) -> None:
        self.store = CheckpointStore(self.settings.checkpoint_dir, self.settings.keep_versions)
        swept = self.store.sweep_temporary()
        if swept:
            logger.info("removed %d leftovers of interrupted writes", swept)

    def _setup_model(self) -> None:
        settings = self.settings
        self.base_model = resolve_base_model(settings.base_model)
        self.tokenizer = load_tokenizer(self.base_model)
        model = wrap_for_tuning(load_base_model(self.base_model), self.spec)
        # Built before any version is applied, so L2-SP anchors on the base weights.
        self.learner = OnlineLearner(
            model,
            self.device,
            learning_rate=settings.effective_learning_rate,
            weight_decay=settings.weight_decay,
            warmup_steps=settings.warmup_steps,
            rewarm_factor=settings.lr_rewarm_factor,
            rewarm_steps=settings.lr_rewarm_steps,
            l2sp_weight=settings.l2sp_weight,
        )
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("base model %s, %d trainable parameters", self.base_model, trainable)

    def _setup_guards(self) -> None:
        """Deduplication, holdout and gate, replay buffer, drift test."""
        settings = self.settings
        probe = self.tokenizer(["probe"], ["probe"], return_tensors="pt")
        token_types = TOKEN_TYPE_IDS in probe
        if settings.holdout_share > 0 or settings.replay_fraction > 0:
            check_inputs(set(probe))
        shape = {
            "width": settings.max_length,
            "vocab_size": len(self.tokenizer),
            "token_types": token_types,
            "pad_id": self.tokenizer.pad_token_id or 0,
        }
        self.recent = RecentIds(settings.dedupe_window)
        self.gatekeeper = Gatekeeper(
            QualityGate(
                settings.gate_tolerance,
                settings.gate_auc_tolerance,
                settings.gate_trim,
                settings.gate_min_examples,
                settings.gate_patience,
            ),
            HoldoutWindow(settings.holdout_window, **shape),
            self.spec.tuning,
        )
        replay_capacity = settings.replay_capacity if settings.replay_fraction > 0 else 0
        self.replay = ReplayBuffer(replay_capacity, settings.replay_max_bytes, seed=settings.seed, **shape)
        self.drift = PageHinkley(settings.drift_threshold, settings.drift_delta, settings.drift_min_examples)
        self.metrics.replay_buffer_bytes.set(self.replay.nbytes)
        logger.info(
            "replay buffer: %d examples, %d bytes; holdout share %.3f, window %d; dedupe window %d ids",
            self.replay.capacity,
            self.replay.nbytes,
            settings.holdout_share,
            settings.holdout_window,
            settings.dedupe_window,
        )

    def _resume(self) -> None:
        latest = self.store.latest_version()
        if latest is None:
            self.gatekeeper.set_published(trainable_state(self.learner.model, self.spec.tuning))
            return
        self._load_version(latest)
        logger.info("resuming from version %d at offsets %s", latest, self.position)

    def _load_version(self, version: int) -> None:
        """Make ``version`` the trainer's state: weights, position, windows, counters."""
        manifest = self.store.verify(version)
        if manifest.tuning.get("tuning") != self.spec.tuning:
            raise ConfigurationError(
                f"the store at {self.store.root} holds {manifest.tuning.get('tuning')} versions but "
                f"STREAMTUNE_TUNING={self.spec.tuning}: use another STREAMTUNE_CHECKPOINT_DIR"
            )
        directory = self.store.path_of(version)
        state = load_state(directory, self.spec.tuning)
        apply_state(self.learner.model, state, self.spec.tuning)
        self.learner.reset_optimizer()
        stream_state = read_stream_state(directory)
        self.recent = RecentIds.from_array(stream_state.get(_RECENT_IDS, np.empty(0)), self.settings.dedupe_window)
        self.gatekeeper.holdout.load_state(stream_state)
        self.gatekeeper.set_published(trainable_state(self.learner.model, self.spec.tuning))
        self.published = manifest
        self.position = dict(manifest.kafka_offsets)
        self.examples_seen = manifest.examples_seen
        self.ledger = VersionLedger(self.replay.mark())
        self.metrics.trainer_model_version.set(version)
        self.metrics.holdout_examples.set(len(self.gatekeeper.holdout))

    def _setup_kafka(self) -> None:
        settings = self.settings
        ensure_topics(
            settings,
            [
                (settings.events_topic, settings.events_topic_partitions),
                (settings.dlq_topic, 1),
                (settings.models_topic, 1),
            ],
        )
        self.producer = make_producer(settings, error_cb=self._on_kafka_error)
        self.publisher = VersionPublisher(
            self.store,
            self.producer,
            settings.models_topic,
            lambda offsets: self.ingestor.request_commit(offsets) if self.ingestor else None,
            self.base_model,
            self.spec,
            settings.max_length,
            self.metrics,
        )
        self.metrics.kafka_up.set(1)

    def _start_ingest(self) -> None:
        settings = self.settings
        self.handoff = BatchHandoff(settings.batch_queue_size)
        self.ingestor = EventIngestor(
            consumer=make_consumer(settings, settings.trainer_group_id, error_cb=self._on_kafka_error),
            producer=self.producer,
            tokenizer=self.tokenizer,
            handoff=self.handoff,
            positions=lambda: TrainedPosition(dict(self.position), from_lineage=self.published is not None),
            config=IngestConfig(
                events_topic=settings.events_topic,
                dlq_topic=settings.dlq_topic,
                batch_size=settings.batch_size,
                max_batch_latency_s=settings.max_batch_latency_ms / 1000,
                max_length=settings.max_length,
                max_text_chars=settings.max_text_chars,
                pin_memory=self.device.type == "cuda",
            ),
            metrics=self.metrics,
        )
        self.ingestor.start()

    def _stop_ingest(self) -> None:
        if self.ingestor is not None:
            self.ingestor.stop()
            self.ingestor.join(timeout=30)
            self.ingestor = None

    def _on_kafka_error(self, error: object) -> None:
        logger.warning("kafka: %s", error)
        if getattr(error, "code", lambda: None)() == KafkaError._ALL_BROKERS_DOWN:
            self.metrics.kafka_up.set(0)

    # --- the offline part ------------------------------------------------------------------
    def bootstrap(self, path: Path) -> Manifest | None:
        """Train the base model on a historical JSONL file and publish it as the first version.

        Skipped when the store already holds a version (a restarted trainer must not train the
        history twice). The file's events go through the same routing as the stream's
        (deduplication, holdout, gate), in one pass in file order.
        """
        if self.published is not None:
            logger.info("store already holds version %d: not bootstrapping from %s", self.published.version, path)
            return None
        if not path.is_file():
            raise ConfigurationError(f"bootstrap file {path} does not exist")
        started = time.perf_counter()
        summary = BootstrapSummary()
        settings = self.settings
        for batch in historical_batches(
            path, self.tokenizer, settings.batch_size, settings.max_length, settings.max_text_chars, summary
        ):
            self._learn(batch)
        logger.info(
            "bootstrap: %d events from %s (%d invalid skipped), %d trained in %.1f s",
            summary.lines,
            path,
            summary.invalid,
            self.ledger.examples,
            time.perf_counter() - started,
        )
        if not self.ledger.batches or not self._publish():
            logger.error("bootstrap produced no publishable version; the stream starts from the base model")
            self._restore_published()
        return self.published

    # --- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Train until ``stop`` is set; publishes a final version of any trained remainder."""
        self._start_ingest()
        try:
            while not stop.is_set():
                if self.ingestor.failure is not None:
                    raise RuntimeError("ingest thread failed") from self.ingestor.failure
                if self._lineage_moved():
                    self._follow_lineage()
                    continue
                batch = self.handoff.take(timeout_s=0.2)
                if batch is None:
                    continue
                with self.handoff.claim(batch) as current:
                    if not current:
                        continue
                    self._learn(batch)
                if self.ledger.batches >= self.settings.publish_every_batches:
                    self._publish()
            if self.ledger.batches and not self._lineage_moved():
                self._publish()
        finally:
            self._stop_ingest()
            self.producer.flush(5)

    def _learn(self, batch: TrainingBatch) -> None:
        """Test-then-train one batch and move the trained position past it."""
        if len(batch):
            fresh, held_out, to_train = self._route(batch)
            if fresh.size:
                self._score_before_training(batch, fresh)
            if held_out.size:
                self.gatekeeper.holdout.add(batch.inputs, held_out, batch.labels.numpy()[held_out])
                self.metrics.events_held_out.inc(int(held_out.size))
                self.metrics.holdout_examples.set(len(self.gatekeeper.holdout))
            if to_train.size:
                self._train(batch, to_train)
            self.ledger.consumed(held_out=int(held_out.size), duplicates=len(batch) - int(fresh.size))
        self.position.update(batch.offsets)

    def _route(self, batch: TrainingBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row indices of the batch: fresh (not a duplicate), held out, and to train."""
        fresh, held_out, to_train = [], [], []
        for row, event_id in enumerate(batch.event_ids):
            if not self.recent.add(event_id):
                self.metrics.duplicate_events.inc()
                continue
            fresh.append(row)
            (held_out if is_holdout(event_id, self.settings.holdout_share) else to_train).append(row)
        return tuple(np.array(rows, dtype=np.int64) for rows in (fresh, held_out, to_train))

    def _score_before_training(self, batch: TrainingBatch, rows: np.ndarray) -> None:
        """Prequential scores and the drift test, with the model as it is before this batch."""
        labels = batch.labels.numpy()[rows]
        probabilities = self.learner.score(select_rows(batch.inputs, rows)).numpy()
        self.prequential.update(labels.tolist(), probabilities.tolist())
        self.metrics.prequential_loss.set(self.prequential.logloss())
        auc = self.prequential.auc()
        if auc is not None:
            self.metrics.prequential_auc.set(auc)
        for loss in log_losses(labels, probabilities):
            if self.drift.update(float(loss)).drift:
                self.metrics.drift_detected.inc()
                self.learner.rewarm()
                logger.warning(
                    "drift detected on the prequential log-loss (Page-Hinkley statistic %.1f > %.1f, "
                    "rolling loss %.4f): learning rate re-warmed to %.2e for %d steps",
                    self.drift.statistic,
                    self.drift.threshold,
                    self.prequential.logloss(),
                    self.learner.learning_rate,
                    self.settings.lr_rewarm_steps,
                )

    def _train(self, batch: TrainingBatch, rows: np.ndarray) -> None:
        """One step on the rows plus a replayed sample of the past."""
        inputs, labels = select_rows(batch.inputs, rows), batch.labels[torch.from_numpy(rows)]
        fraction = self.settings.replay_fraction
        replayed = self.replay.sample(round(len(rows) * fraction / (1 - fraction)))
        if replayed is not None:
            inputs = concat_batches(inputs, replayed[0], self.tokenizer.pad_token_id or 0)
            labels = torch.cat([labels, replayed[1]])
        started = time.perf_counter()
        loss = self.learner.train_step(inputs, labels)
        self.metrics.train_step_seconds.observe(time.perf_counter() - started)
        self.replay.add(batch.inputs, rows, batch.labels.numpy()[rows])

        trained_ids = [batch.event_ids[row] for row in rows.tolist()]
        self.ledger.trained_on(batch, trained_ids, loss)
        self.examples_seen += len(trained_ids)
        self.metrics.train_batch_size.observe(len(labels))
        self.metrics.train_loss.set(loss)
        self.metrics.learning_rate.set(self.learner.learning_rate)
        self.metrics.examples_trained.inc(len(trained_ids))
        self.metrics.replay_buffer_examples.set(len(self.replay))

    # --- publishing ------------------------------------------------------------------------
    def _publish(self) -> bool:
        """Judge the model as it is now against the published version; publish if it passes."""
        state = trainable_state(self.learner.model, self.spec.tuning)
        verdict = self.gatekeeper.judge(self.learner, state)
        for model, key in (
            ("candidate", "holdout_logloss"),
            ("published", "holdout_logloss_published"),
            ("reference", "holdout_logloss_reference"),
        ):
            if key in verdict.figures:
                self.metrics.holdout_loss.labels(model=model).set(verdict.figures[key])
        if not verdict.decision.publish:
            self.metrics.gate_rejections.inc()
            logger.warning("gate rejected the candidate: %s", verdict.decision.reason)
            if verdict.decision.restore:
                self._restore_published()
            return False
        ledger = self.ledger
        draft = VersionDraft(
            state=state,
            parent_version=self.published.version if self.published else None,
            kafka_offsets=dict(self.position),
            examples_seen=self.examples_seen,
            examples_in_version=ledger.examples,
            last_train_loss=ledger.last_loss,
            data_watermark_ms=_newest(ledger.data_watermark_ms, self.published, "data_watermark_ms"),
            produced_watermark_ms=_newest(ledger.produced_watermark_ms, self.published, "produced_watermark_ms"),
            metrics=self.prequential.as_metrics() | verdict.figures,
            events=ledger.events(),
            stream_state=self._stream_state(),
        )
        try:
            self.published = self.publisher.publish(draft)
        except LineageMovedError as error:
            logger.warning("not published: %s", error)
            return False
        except PublishError as error:
            logger.error("publish failed, will retry after the next batch: %s", error)
            return False
        logger.info("gate passed: %s", verdict.decision.reason)
        self.gatekeeper.accept(verdict, state)
        self.ledger = VersionLedger(self.replay.mark())
        return True

    def _stream_state(self) -> dict[str, np.ndarray]:
        return {_RECENT_IDS: self.recent.to_array(), **self.gatekeeper.holdout.state()}

    def _restore_published(self) -> None:
        """Put the published weights back and discard what was trained since."""
        apply_state(self.learner.model, self.gatekeeper.published_state, self.spec.tuning)
        self.learner.reset_optimizer()
        forgotten = self.replay.forget_since(self.ledger.replay_mark)
        discarded = self.ledger.discard_training()
        self.examples_seen -= discarded
        self.metrics.gate_restores.inc()
        logger.warning(
            "restored the weights of version %s: %d trained examples discarded, %d replay examples forgotten",
            self.published.version if self.published else "0 (base model)",
            discarded,
            forgotten,
        )

    # --- rollbacks -------------------------------------------------------------------------
    def _lineage_moved(self) -> bool:
        expected = self.published.version if self.published else None
        return self.store.latest_version() != expected

    def _follow_lineage(self) -> None:
        """LATEST was moved (a rollback): continue from the version it names, as a restart would."""
        latest = self.store.latest_version()
        if latest is None:
            raise CheckpointError(f"the store at {self.store.root} lost every version under the trainer")
        previous = self.published.version if self.published else None
        logger.warning(
            "LATEST moved from version %s to %d: reloading it and re-consuming from its offsets "
            "(%d examples trained since version %s are dropped)",
            previous,
            latest,
            self.ledger.examples,
            previous,
        )
        self._stop_ingest()
        self.replay.clear()
        self._load_version(latest)
        self.drift.reset()
        self.metrics.lineage_reloads.inc()
        self._start_ingest()


def _newest(pending: int | None, published: Manifest | None, field: str) -> int | None:
    if published is None or getattr(published, field) is None:
        return pending
    return getattr(published, field) if pending is None else max(pending, getattr(published, field))
