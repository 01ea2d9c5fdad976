"""The online training recipe, top to bottom.

``TrainerService`` reads: set up (device → store → model family → guards → resume → Kafka), optionally
bootstrap from a historical file, then loop (take a micro-batch → route it → score it → train on it →
every N batches judge and publish a version), then close. The model is the family
``STREAMTUNE_MODEL_KIND`` names, reached only through :class:`~streamtune.modeling.family.ModelFamily`.

Exactly-once training. A version records the Kafka offsets it has consumed and the ids of the events it
trained (``events.json``); its ``stream_state`` holds the deduplication and holdout windows. On start
the trainer resumes from the version LATEST names — model, offsets and windows — and the ingest thread
seeks there on every assignment; offsets are committed to the group only after a version is durable
(:mod:`streamtune.trainer.versions.publisher`). Work after the newest version is re-consumed after a
crash, and an event re-delivered under the same id is trained once (within the dedupe window).

Each batch is routed (:mod:`streamtune.trainer.routing`): duplicates are skipped, held-out events only
feed the gate's window, and every fresh event is scored before it is trained (prequential loss/AUC and
drift test, :mod:`streamtune.trainer.monitor`). Results of a family in a model process are recorded as
they arrive, in order (:mod:`streamtune.trainer.step_records`). A candidate is published only if the quality gate passes
it (:mod:`streamtune.trainer.gate`); after ``gate_patience`` rejections in a row the published model is
put back and the events trained since are recorded as discarded, by the next version (at once if the
stream is idle).

Rollback (``streamtune rollback --to N``): when LATEST names another version than the one the trainer
published, it reloads that version as a restart would and re-reads the events after its offsets, so new
versions are children of N: exactly-once in every lineage.

Kafka outages are the event stream's to survive (:mod:`streamtune.ingest.event_stream`). A publish that
fails (disk full, Kafka not acknowledging dead letters) leaves the store as it was and is retried after
the next batch, or after a few seconds when idle. Requests to forget a user (``streamtune forget``) are
applied between batches and to every version loaded later.

Not supported: several trainers writing one store (publishing checks LATEST under the store's lock, so a
second writer's versions are refused); for several ranks see :mod:`streamtune.distributed`.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

import numpy as np
import torch

from streamtune.checkpoints import Manifest, open_store
from streamtune.config import Settings
from streamtune.errors import CheckpointError, LineageMovedError, PublishError
from streamtune.ingest.event_stream import EventStream
from streamtune.ingest.handoff import BatchHandoff
from streamtune.ingest.positions import TrainedPosition
from streamtune.ingest.training_batch import BatchBuilder, TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling import device as devices
from streamtune.modeling.deferred import TimedStep, score_later, train_later
from streamtune.modeling.family import build_family
from streamtune.privacy import ForgetRequests, ForgetWatch, Pseudonymiser
from streamtune.trainer.components import build_guards
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.forget_users import forget_users
from streamtune.trainer.history_bootstrap import bootstrap_from_file
from streamtune.trainer.monitor.prequential_monitor import PrequentialMonitor
from streamtune.trainer.routing import Routes, route
from streamtune.trainer.step_records import StepRecords
from streamtune.trainer.versions.cadence import PublishSchedule
from streamtune.trainer.versions.files import RECENT_IDS, family_state, pack_stream_state, read_stream_state
from streamtune.trainer.versions.ledger import StreamStanding, VersionLedger
from streamtune.trainer.versions.publisher import KafkaSide, VersionPublisher

logger = logging.getLogger(__name__)


class TrainerService:
    """Consumes the events topic and publishes versions into the checkpoint store."""

    def __init__(self, settings: Settings, metrics: TrainerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or TrainerMetrics()
        self.position: dict[str, int] = {}
        self.published: Manifest | None = None
        self.examples_seen = 0
        self.ledger = VersionLedger()
        self.records = StepRecords()  # steps whose results the trainer has yet to record
        self.schedule = PublishSchedule(
            settings.publish_every_batches, settings.publish_max_delay_ms, settings.publish_max_share
        )

    # --- setup -----------------------------------------------------------------------------
    def setup(self) -> TrainerService:
        self._setup_device()
        self._setup_store()
        self._setup_model()
        self._resume()
        self._setup_kafka()
        return self

    def _setup_device(self) -> None:
        torch.manual_seed(self.settings.seed)
        self.device = devices.select_device(self.settings.device)
        logger.info("training on %s, model family %s", devices.describe(self.device), self.settings.model_kind)

    def _setup_store(self) -> None:
        self.store = open_store(self.settings.checkpoint_uri, self.settings.checkpoint_dir, self.settings.keep_versions)
        swept = self.store.sweep_temporary()
        if swept:
            logger.info("removed %d leftovers of interrupted writes", swept)
        key = self.settings.pseudonymise_key
        self.pseudonymiser = Pseudonymiser.for_store(key.get_secret_value() if key else None, self.store.root)
        self.forgetting = ForgetWatch(ForgetRequests(self.store.root))

    def _setup_model(self) -> None:
        """The model family (``STREAMTUNE_MODEL_KIND``), and the guards around it: deduplication,
        holdout and gate, prequential scores and drift test."""
        self.family = build_family(self.settings, self.device, self.metrics)
        guards = build_guards(self.settings, self.family)
        self.recent, self.gatekeeper = guards.recent, guards.gatekeeper
        self.scoring = PrequentialMonitor(guards.drift, self.metrics, on_drift=self.family.on_drift)

    def _resume(self) -> None:
        latest = self.store.latest_version()
        if latest is None:
            self.gatekeeper.set_published(self.family.snapshot())
            return
        self._load_version(latest)
        logger.info("resuming from version %d at offsets %s", latest, self.position)

    def _load_version(self, version: int) -> None:
        """Make ``version`` the trainer's state: weights, position, windows, counters."""
        self.records.settle()
        checked_out = self.store.checkout(version)  # verified, and local even when the store is not
        manifest, directory = checked_out.manifest, checked_out.directory
        self.family.load(directory, manifest)
        stream_state = read_stream_state(directory)
        self.family.load_trainer_state(family_state(stream_state))
        self.recent = RecentIds.from_array(stream_state.get(RECENT_IDS, np.empty(0)), self.settings.dedupe_window)
        self.gatekeeper.holdout.load_state(stream_state)
        self.gatekeeper.set_published(self.family.snapshot())
        self.published = manifest
        self.position = dict(manifest.kafka_offsets)
        self.examples_seen = manifest.examples_seen
        self.ledger = VersionLedger()
        self.metrics.trainer_model_version.set(version)
        self._forget(self.forgetting.everything())  # the version was written before some requests
        self.metrics.holdout_examples.set(len(self.gatekeeper.holdout))

    def _setup_kafka(self) -> None:
        self.stream = EventStream(
            self.settings,
            self.metrics,
            builder=self.batch_builder(pin_memory=self.device.type == "cuda"),
            positions=lambda: TrainedPosition(dict(self.position), from_lineage=self.published is not None),
        )
        kafka = KafkaSide(self.stream.producer, self.settings.models_topic, self.stream.request_commit)
        self.publisher = VersionPublisher(self.store, kafka, self.family, self.metrics)

    def batch_builder(self, *, pin_memory: bool = False) -> BatchBuilder:
        """Decoded events → batches, the same for the stream and the bootstrap file."""
        return BatchBuilder(self.family.batch_encoder(), self.pseudonymiser.pseudonym, pin_memory=pin_memory)

    @property
    def handoff(self) -> BatchHandoff:
        return self.stream.handoff

    # --- the offline part ------------------------------------------------------------------
    def bootstrap(self, path: Path) -> Manifest | None:
        """Train on a historical JSONL file and publish it as the first version
        (:func:`~streamtune.trainer.history_bootstrap.bootstrap_from_file`)."""
        return bootstrap_from_file(self, path)

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
                if batch is None:  # idle: nothing will redeem a refused candidate now
                    self.records.settle()
                    if self.schedule.give_up_due(self.ledger.batches):
                        self.restore_published()
                    ledger = self.ledger
                    if self.schedule.idle_due(ledger.unpublished(), ledger.only_discarded(), ledger.batches):
                        self.publish()
                    continue
                with self.handoff.claim(batch) as current:
                    if not current:
                        continue
                    self.learn(batch)
                # Waiting work: batches cut and not taken, and steps the model is behind on.
                if self.schedule.due(self.ledger.batches, waiting=self.handoff.depth() + self.records.steps_behind()):
                    self.publish()
            if self.ledger.batches and not self._lineage_moved():
                self.publish()
        finally:
            self.stream.close()

    def learn(self, batch: TrainingBatch, routes: Routes | None = None) -> None:
        """Test-then-train one batch (``routes``: given when routed already) and move the trained position past it."""
        if len(batch):
            routes = route(batch, self.recent, self.settings.holdout_share) if routes is None else routes
            self.metrics.duplicate_events.inc(routes.duplicates(batch))
            held_out = routes.held_out
            if held_out.size:
                scored = batch.select(held_out)
                record = functools.partial(self.scoring.record, scored.labels.numpy())
                self.records.add(score_later(self.family, scored), record)
                self.gatekeeper.holdout.add_batch(batch, held_out)
                self.metrics.events_held_out.inc(int(held_out.size))
                self.metrics.holdout_examples.set(len(self.gatekeeper.holdout))
            if routes.to_train.size:  # one step; its rows' pre-step scores are prequential
                trained = batch.select(routes.to_train)
                step = train_later(self.family, trained)
                self.records.add(step, functools.partial(self._trained, batch, trained), training=True)
            self.ledger.consumed(held_out=int(held_out.size), duplicates=routes.duplicates(batch))
        self.position.update(batch.offsets)

    def _trained(self, batch: TrainingBatch, trained: TrainingBatch, step: TimedStep) -> None:
        """Record the step on ``trained`` (rows selected from ``batch``, whose watermarks the ledger takes)."""
        result = step.result
        self.metrics.train_step_seconds.observe(step.seconds)
        self.scoring.record(trained.labels.numpy(), result.scores)
        self.ledger.trained_on(batch, trained.event_ids, result.loss)
        self.examples_seen += len(trained)
        self.metrics.train_loss.set(result.loss)
        self.metrics.examples_trained.inc(len(trained))

    # --- publishing ------------------------------------------------------------------------
    def publish(self) -> bool:
        """Judge the model as it is now against the published version; publish if it passes."""
        self.records.settle()
        with self.schedule.attempt():
            state = self.family.snapshot()
            # Untrained weights are the published ones: nothing to judge.
            verdict = self.gatekeeper.judge(self.family, state) if self.ledger.examples else self.gatekeeper.unjudged()
            verdict.record(self.metrics)
            if not verdict.decision.publish:
                self.metrics.gate_rejections.inc()
                self.schedule.rejected()
                logger.warning("gate rejected the candidate: %s", verdict.decision.reason)
                if verdict.decision.restore:
                    self.restore_published()
                return False
            figures = self.scoring.as_metrics() | verdict.figures
            standing = StreamStanding(self.position, self.examples_seen, figures, self._stream_state())
            draft = self.ledger.draft(state, self.published, standing)
            try:
                self.published = self.publisher.publish(draft)
            except LineageMovedError as error:
                logger.warning("not published: %s", error)
                return False
            except PublishError as error:
                self.schedule.failed()
                retry = "retrying after the next batch or in %.0f s"
                logger.error("publish failed (the store is unchanged); " + retry + ": %s", self.schedule.retry_s, error)
                return False
            self.schedule.succeeded()
            logger.info("gate passed: %s", verdict.decision.reason)
            self.gatekeeper.accept(verdict, state)
            self.ledger = VersionLedger()
            return True

    def _stream_state(self) -> dict[str, np.ndarray]:
        return pack_stream_state(self.recent.to_array(), self.gatekeeper.holdout.state(), self.family.trainer_state())

    def restore_published(self) -> None:
        """Put the published weights back and discard what was trained since."""
        self.records.settle()
        forgotten = self.family.restore(self.gatekeeper.published_state)
        discarded = self.ledger.discard_training()
        self.gatekeeper.gate.reset()
        self.schedule.gave_up()
        self.examples_seen -= discarded
        self.metrics.gate_restores.inc()
        version = self.published.version if self.published else "0 (base model)"
        what = "%d trained examples discarded, %d replay examples forgotten"
        logger.warning("restored the weights of version %s: " + what, version, discarded, forgotten)

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
        self._load_version(latest)
        self.scoring.drift.reset()
        self.metrics.lineage_reloads.inc()
        self.stream.start_ingest()

    def _forget(self, pseudonyms: set[str]) -> None:
        forget_users(pseudonyms, self.family, self.gatekeeper.holdout, self.metrics)
