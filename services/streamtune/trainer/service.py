"""The online training recipe, top to bottom.

``TrainerService`` reads: set up (device → store → model → learner → Kafka), then loop (take a
micro-batch → score it → train on it → every N batches publish a version), then close.

Supported: LoRA (PEFT) or full fine-tuning of a sequence-classification model with one logit
(binary task, BCE); CPU or one CUDA device (bf16 autocast, fused AdamW, pinned host memory).
Resumes from the newest version in the store, seeking Kafka to the offsets its manifest records.
Not supported: several trainers writing one store (the store allows one writer), multi-GPU.
"""

from __future__ import annotations

import logging
import threading
import time

import torch
from confluent_kafka import KafkaError

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.config import Settings
from streamtune.errors import ConfigurationError, PublishError
from streamtune.ingest.consumer import EventIngestor, IngestConfig
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
from streamtune.trainer.learner import OnlineLearner
from streamtune.trainer.prequential import RollingScore
from streamtune.trainer.publisher import VersionDraft, VersionPublisher

logger = logging.getLogger(__name__)


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
        self._since_publish = _Accumulator()
        self.prequential = RollingScore(window=2000)

    # --- setup -----------------------------------------------------------------------------
    def setup(self) -> TrainerService:
        self._setup_device()
        self._setup_store()
        self._setup_model()
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
        self.base_model = resolve_base_model(self.settings.base_model)
        self.tokenizer = load_tokenizer(self.base_model)
        model = wrap_for_tuning(load_base_model(self.base_model), self.spec)
        latest = self.store.latest_version()
        if latest is not None:
            manifest = self.store.verify(latest)
            if manifest.tuning.get("tuning") != self.spec.tuning:
                raise ConfigurationError(
                    f"the store at {self.store.root} holds {manifest.tuning.get('tuning')} versions but "
                    f"STREAMTUNE_TUNING={self.spec.tuning}: use another STREAMTUNE_CHECKPOINT_DIR"
                )
            apply_state(model, load_state(self.store.path_of(latest), self.spec.tuning), self.spec.tuning)
            self.published = manifest
            self.position = dict(manifest.kafka_offsets)
            self.examples_seen = manifest.examples_seen
            self.metrics.trainer_model_version.set(latest)
            logger.info("resuming from version %d at offsets %s", latest, self.position)
        self.learner = OnlineLearner(
            model,
            self.device,
            learning_rate=self.settings.effective_learning_rate,
            weight_decay=self.settings.weight_decay,
            warmup_steps=self.settings.warmup_steps,
        )
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("base model %s, %d trainable parameters", self.base_model, trainable)

    def _setup_kafka(self) -> None:
        settings = self.settings
        ensure_topics(
            settings,
            [(settings.events_topic, settings.events_topic_partitions), (settings.dlq_topic, 1),
             (settings.models_topic, 1)],
        )
        self.producer = make_producer(settings, error_cb=self._on_kafka_error)
        self.handoff = BatchHandoff(settings.batch_queue_size)
        self.ingestor = EventIngestor(
            consumer=make_consumer(settings, settings.trainer_group_id, error_cb=self._on_kafka_error),
            producer=self.producer,
            tokenizer=self.tokenizer,
            handoff=self.handoff,
            positions=lambda: dict(self.position),
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
        self.publisher = VersionPublisher(
            self.store,
            self.producer,
            settings.models_topic,
            self.ingestor.request_commit,
            self.base_model,
            self.spec,
            settings.max_length,
            self.metrics,
        )
        self.metrics.kafka_up.set(1)

    def _on_kafka_error(self, error: object) -> None:
        logger.warning("kafka: %s", error)
        if getattr(error, "code", lambda: None)() == KafkaError._ALL_BROKERS_DOWN:
            self.metrics.kafka_up.set(0)

    # --- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Train until ``stop`` is set; publishes a final version of any trained remainder."""
        self.ingestor.start()
        try:
            while not stop.is_set():
                if self.ingestor.failure is not None:
                    raise RuntimeError("ingest thread failed") from self.ingestor.failure
                batch = self.handoff.take(timeout_s=0.2)
                if batch is None:
                    continue
                with self.handoff.claim(batch) as current:
                    if not current:
                        continue
                    self._learn(batch)
                if self._since_publish.batches >= self.settings.publish_every_batches:
                    self._publish()
            if self._since_publish.batches:
                self._publish()
        finally:
            self.ingestor.stop()
            self.ingestor.join(timeout=30)

    def _learn(self, batch: TrainingBatch) -> None:
        """Test-then-train one batch and move the trained position past it."""
        if len(batch):
            probabilities = self.learner.score(batch.inputs)
            self.prequential.update(batch.labels.tolist(), probabilities.tolist())
            self.metrics.prequential_loss.set(self.prequential.logloss())
            auc = self.prequential.auc()
            if auc is not None:
                self.metrics.prequential_auc.set(auc)

            started = time.perf_counter()
            loss = self.learner.train_step(batch.inputs, batch.labels)
            self.metrics.train_step_seconds.observe(time.perf_counter() - started)
            self.metrics.train_batch_size.observe(len(batch))
            self.metrics.train_loss.set(loss)
            self.metrics.examples_trained.inc(len(batch))
            self.examples_seen += len(batch)
            self._since_publish.add(batch, loss)
        self.position.update(batch.offsets)

    def _publish(self) -> None:
        pending = self._since_publish
        draft = VersionDraft(
            state=trainable_state(self.learner.model, self.spec.tuning),
            parent_version=self.published.version if self.published else None,
            kafka_offsets=dict(self.position),
            examples_seen=self.examples_seen,
            examples_in_version=pending.examples,
            last_train_loss=pending.last_loss,
            data_watermark_ms=_newest(pending.data_watermark_ms, self.published, "data_watermark_ms"),
            produced_watermark_ms=_newest(pending.produced_watermark_ms, self.published, "produced_watermark_ms"),
            metrics=self.prequential.as_metrics(),
        )
        try:
            self.published = self.publisher.publish(draft)
        except PublishError as error:
            logger.error("publish failed, will retry after the next batch: %s", error)
            return
        self._since_publish = _Accumulator()


class _Accumulator:
    """What was trained since the last published version."""

    def __init__(self) -> None:
        self.batches = 0
        self.examples = 0
        self.last_loss: float | None = None
        self.data_watermark_ms: int | None = None
        self.produced_watermark_ms: int | None = None

    def add(self, batch: TrainingBatch, loss: float) -> None:
        self.batches += 1
        self.examples += len(batch)
        self.last_loss = loss
        self.data_watermark_ms = _max(self.data_watermark_ms, batch.data_watermark_ms)
        self.produced_watermark_ms = _max(self.produced_watermark_ms, batch.produced_watermark_ms)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _newest(pending: int | None, published: Manifest | None, field: str) -> int | None:
    return _max(pending, getattr(published, field) if published else None)

