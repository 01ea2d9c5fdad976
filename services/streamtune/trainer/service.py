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

Routing of each batch (:mod:`streamtune.trainer.routing`). Duplicates are skipped; held-out
events only feed the gate's window; every fresh event is scored before training (prequential
loss/AUC and drift test, :mod:`streamtune.trainer.monitor.prequential_monitor`); the rest is trained with a sample
from the replay buffer. The step's own forward pass scores the rows it trains on: without
dropout (``STREAMTUNE_TRAIN_DROPOUT``) it computes what a scoring pass before the step would.

Quality gate. A candidate is published only if its holdout log-loss is within the tolerance of
the published version's on the same window. After ``gate_patience`` rejections in a row the
trainer puts the published weights back and records the events trained since as discarded.

Rollback (``streamtune rollback --to N``). The trainer checks LATEST between batches; when it
names another version than the one it published, it reloads that version exactly as a restart
would (weights, offsets, windows) and re-subscribes, so the events after N's offsets are
consumed again and new versions are children of N: the same whether the trainer was running or
restarted, and exactly-once in every lineage. The gate, now comparing against N, guards the
re-training of the stretch the abandoned versions saw.

Kafka outages (:mod:`streamtune.ingest.event_stream`). A cluster watch exports
``streamtune_kafka_up``; librdkafka reconnects by itself. When the cluster comes back having
lost our topics (a broker that lost its storage), they are created again, and the trainer
renews its producer and reads the new events topic from its beginning, in the same process. A
publish that fails (disk full, Kafka not acknowledging dead letters) leaves the store as it was
and is retried after the next batch, or after a few seconds when idle.

Privacy. User ids are replaced by keyed pseudonyms at ingest (:mod:`streamtune.privacy`); the
replay buffer and the holdout window tag their rows with them, and requests to forget a user
(``streamtune forget``) are applied between batches and to every version loaded later.

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

from streamtune.checkpoints import Manifest, open_store
from streamtune.config import Settings
from streamtune.errors import CheckpointError, ConfigurationError, LineageMovedError, PublishError
from streamtune.ingest.bootstrap_file import BootstrapSummary, historical_batches
from streamtune.ingest.consumer import TrainedPosition
from streamtune.ingest.event_stream import EventStream
from streamtune.ingest.handoff import BatchHandoff, TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling import device as devices
from streamtune.modeling.base import load_base_model, load_tokenizer, resolve_base_model, wrap_for_tuning
from streamtune.modeling.weights import apply_state, load_state, trainable_state
from streamtune.privacy import ForgetRequests, ForgetWatch, Pseudonymiser
from streamtune.trainer.components import build_guards, build_learner, tuning_spec
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.forget_users import forget_users
from streamtune.trainer.monitor.prequential_monitor import PrequentialMonitor
from streamtune.trainer.routing import batch_user_tags, route
from streamtune.trainer.token_rows import concat_batches, select_rows
from streamtune.trainer.versions.cadence import PublishSchedule
from streamtune.trainer.versions.files import read_stream_state
from streamtune.trainer.versions.ledger import VersionLedger
from streamtune.trainer.versions.publisher import VersionPublisher

logger = logging.getLogger(__name__)

_RECENT_IDS = "recent_ids"


class TrainerService:
    """Consumes the events topic and publishes versions into the checkpoint store."""

    def __init__(self, settings: Settings, metrics: TrainerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or TrainerMetrics()
        self.spec = tuning_spec(settings)
        self.position: dict[str, int] = {}
        self.published: Manifest | None = None
        self.examples_seen = 0
        self.ledger = VersionLedger()
        self.schedule = PublishSchedule(settings.publish_every_batches, settings.publish_max_delay_ms)

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
        self.store = open_store(self.settings.checkpoint_uri, self.settings.checkpoint_dir, self.settings.keep_versions)
        swept = self.store.sweep_temporary()
        if swept:
            logger.info("removed %d leftovers of interrupted writes", swept)
        key = self.settings.pseudonymise_key
        self.pseudonymiser = Pseudonymiser.for_store(key.get_secret_value() if key else None, self.store.root)
        self.forgetting = ForgetWatch(ForgetRequests(self.store.root))

    def _setup_model(self) -> None:
        self.base_model = resolve_base_model(self.settings.base_model)
        self.tokenizer = load_tokenizer(self.base_model)
        model = wrap_for_tuning(load_base_model(self.base_model), self.spec)
        self.learner = build_learner(self.settings, model, self.device, self.tokenizer)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("base model %s, %d trainable parameters", self.base_model, trainable)

    def _setup_guards(self) -> None:
        """Deduplication, holdout and gate, replay buffer, prequential scores and drift test."""
        guards = build_guards(self.settings, self.tokenizer, self.spec.tuning)
        self.recent, self.gatekeeper, self.replay = guards.recent, guards.gatekeeper, guards.replay
        self.scoring = PrequentialMonitor(self.learner, guards.drift, self.metrics, self.settings.lr_rewarm_steps)
        self.metrics.replay_buffer_bytes.set(self.replay.nbytes)

    def _resume(self) -> None:
        latest = self.store.latest_version()
        if latest is None:
            self.gatekeeper.set_published(trainable_state(self.learner.model, self.spec.tuning))
            return
        self._load_version(latest)
        logger.info("resuming from version %d at offsets %s", latest, self.position)

    def _load_version(self, version: int) -> None:
        """Make ``version`` the trainer's state: weights, position, windows, counters."""
        checked_out = self.store.checkout(version)  # verified, and local even when the store is not
        manifest, directory = checked_out.manifest, checked_out.directory
        if manifest.tuning.get("tuning") != self.spec.tuning:
            raise ConfigurationError(
                f"the store at {self.store.location} holds {manifest.tuning.get('tuning')} versions but "
                f"STREAMTUNE_TUNING={self.spec.tuning}: use another STREAMTUNE_CHECKPOINT_DIR"
            )
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
        self._forget(self.forgetting.everything())  # the version was written before some requests
        self.metrics.holdout_examples.set(len(self.gatekeeper.holdout))

    def _setup_kafka(self) -> None:
        self.stream = EventStream(
            self.settings,
            self.metrics,
            self.tokenizer,
            positions=lambda: TrainedPosition(dict(self.position), from_lineage=self.published is not None),
            pseudonymise=self.pseudonymiser.pseudonym,
            pin_memory=self.device.type == "cuda",
        )
        self.publisher = VersionPublisher(
            self.store,
            self.stream.producer,
            self.settings.models_topic,
            self.stream.request_commit,
            self.base_model,
            self.spec,
            self.settings.max_length,
            self.metrics,
        )

    @property
    def handoff(self) -> BatchHandoff:
        return self.stream.handoff

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
            path,
            self.tokenizer,
            settings.batch_size,
            settings.max_length,
            settings.max_text_chars,
            summary,
            pseudonymise=self.pseudonymiser.pseudonym,
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
        self.stream.start()
        try:
            while not stop.is_set():
                self.stream.check_ingest()
                if self._lineage_moved():
                    self._follow_lineage()
                    continue
                self.stream.follow_recreated_topics(self.position)
                self._forget(self.forgetting.new())
                batch = self.handoff.take(timeout_s=0.2)
                if batch is None:
                    if self.schedule.retry_due(self.ledger.batches):
                        self._publish()
                    continue
                with self.handoff.claim(batch) as current:
                    if not current:
                        continue
                    self._learn(batch)
                if self.schedule.due(self.ledger.batches, waiting=self.handoff.depth()):
                    self._publish()
            if self.ledger.batches and not self._lineage_moved():
                self._publish()
        finally:
            self.stream.close()

    def _learn(self, batch: TrainingBatch) -> None:
        """Test-then-train one batch and move the trained position past it."""
        if len(batch):
            routes = route(batch, self.recent, self.settings.holdout_share)
            self.metrics.duplicate_events.inc(routes.duplicates(batch))
            held_out = routes.held_out
            if held_out.size:
                labels = batch.labels.numpy()[held_out]
                self.scoring.record(labels, self.learner.score(select_rows(batch.inputs, held_out)).numpy())
                self.gatekeeper.holdout.add(batch.inputs, held_out, labels, batch_user_tags(batch)[held_out])
                self.metrics.events_held_out.inc(int(held_out.size))
                self.metrics.holdout_examples.set(len(self.gatekeeper.holdout))
            if routes.to_train.size:
                self._train(batch, routes.to_train)
            self.ledger.consumed(held_out=int(held_out.size), duplicates=routes.duplicates(batch))
        self.position.update(batch.offsets)

    def _train(self, batch: TrainingBatch, rows: np.ndarray) -> None:
        """One step on the rows plus a replayed sample of the past.

        The step's own forward pass scores the rows before the update (prequential); only a
        learner training with dropout, whose forward is a random thinning of the model, needs a
        scoring pass of its own first.
        """
        inputs, labels = select_rows(batch.inputs, rows), batch.labels[torch.from_numpy(rows)]
        scored = None if self.learner.step_scores_are_predictions else self.learner.score(inputs)
        fraction = self.settings.replay_fraction
        replayed = self.replay.sample(round(len(rows) * fraction / (1 - fraction)))
        if replayed is not None:
            inputs = concat_batches(inputs, replayed[0], self.tokenizer.pad_token_id or 0)
            labels = torch.cat([labels, replayed[1]])
        started = time.perf_counter()
        result = self.learner.step(inputs, labels)
        self.metrics.train_step_seconds.observe(time.perf_counter() - started)
        loss = result.loss
        predictions = result.probabilities[: len(rows)] if scored is None else scored
        self.scoring.record(batch.labels.numpy()[rows], predictions.numpy())
        self.replay.add(batch.inputs, rows, batch.labels.numpy()[rows], batch_user_tags(batch)[rows])

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
        self.schedule.attempted()
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
        metrics = self.scoring.as_metrics() | verdict.figures
        draft = self.ledger.draft(
            state, self.published, self.position, self.examples_seen, metrics, self._stream_state()
        )
        try:
            self.published = self.publisher.publish(draft)
        except LineageMovedError as error:
            logger.warning("not published: %s", error)
            return False
        except PublishError as error:
            self.schedule.failed()
            logger.error(
                "publish failed (the store is unchanged); retrying after the next batch or in %.0f s: %s",
                self.schedule.retry_s,
                error,
            )
            return False
        self.schedule.succeeded()
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
            raise CheckpointError(f"the store at {self.store.location} lost every version under the trainer")
        previous = self.published.version if self.published else None
        logger.warning(
            "LATEST moved from version %s to %d: reloading it and re-consuming from its offsets "
            "(%d examples trained since version %s are dropped)",
            previous,
            latest,
            self.ledger.examples,
            previous,
        )
        self.stream.stop_ingest()
        self.replay.clear()
        self._load_version(latest)
        self.scoring.drift.reset()
        self.metrics.lineage_reloads.inc()
        self.stream.start_ingest()

    def _forget(self, pseudonyms: set[str]) -> None:
        forget_users(pseudonyms, self.replay, self.gatekeeper.holdout, self.metrics)
