"""The online training recipe for one rank of a data-parallel group.

Set up as :class:`~streamtune.trainer.service.TrainerService` (every rank resumes from the
newest version: same weights, same deduplication window), then:

- **Assignment**: the rank reads partitions p with p mod N = rank
  (:mod:`~streamtune.distributed.partitions`), assigned by hand, each from the version's offset.
- **Each step is collective**: every rank reports its batch's ids and wishes, all derive the
  same :class:`~streamtune.distributed.agreement.GroupStep` (group-wide deduplication, stop,
  drift, publish); every rank steps its optimizer when any rank has rows, with gradients
  averaged by examples (:mod:`~streamtune.distributed.gradients`). A rank with nothing steps
  on the others' gradients, so uneven partitions never hang the group.
- **One version per publish step** (:meth:`DistributedTrainer.publish`): every rank flushes its
  dead letters and sends rank 0 its offsets and ledger; rank 0 judges the candidate on its
  holdout window, writes one manifest with every partition's offset and broadcasts the outcome;
  only then does each rank commit its own partitions' offsets.

A rank that dies takes the group down (its peers' next collective fails); ``torchrun
--max-restarts`` starts the group again and every rank resumes from the newest version.
Supported: the text family (dense weights). Not supported with more than one rank: the hybrid
family (its sparse tables are not kept consistent across ranks), ``--bootstrap``.
"""

from __future__ import annotations

import logging
import threading

from streamtune.config import Settings
from streamtune.distributed.agreement import GroupStep, StepReport, agree
from streamtune.distributed.gradients import GradientAverager, broadcast_parameters
from streamtune.distributed.group import RankInfo, from_leader, gather, join_group
from streamtune.distributed.partitions import partition_count, partitions_of_rank
from streamtune.distributed.shares import (
    Outcome,
    PublishResult,
    RankShare,
    merged_ledger,
    merged_position,
    own_position,
)
from streamtune.errors import ConfigurationError, LineageMovedError, PublishError
from streamtune.ingest.training_batch import TrainingBatch
from streamtune.kafka.clients import make_admin
from streamtune.metrics import TrainerMetrics
from streamtune.trainer.monitor.prequential_monitor import PrequentialMonitor
from streamtune.trainer.service import TrainerService
from streamtune.trainer.versions.ledger import StreamStanding, VersionLedger

logger = logging.getLogger(__name__)

_FLUSH_TIMEOUT_S = 10.0


def require_distributable(settings: Settings, info: RankInfo) -> None:
    """Refuse, before anything is loaded, what a group of more than one rank cannot train."""
    if info.distributed and settings.model_kind != "text":
        raise ConfigurationError(
            f"STREAMTUNE_MODEL_KIND={settings.model_kind} cannot train with {info.world_size} ranks: its sparse "
            "ID tables are not kept consistent across ranks; run it with one rank (no torchrun, or --nproc 1)"
        )


class DistributedTrainer(TrainerService):
    """One rank of a data-parallel trainer group (see the module doc)."""

    def __init__(self, settings: Settings, info: RankInfo, metrics: TrainerMetrics | None = None) -> None:
        require_distributable(settings, info)
        super().__init__(settings, metrics)
        self.info = info
        self.partitions: tuple[int, ...] = ()
        self._drift_noted = False

    # --- setup -----------------------------------------------------------------------------
    def _setup_device(self) -> None:
        super()._setup_device()
        if self.device.type == "cuda":
            import torch

            self.device = torch.device("cuda", self.info.local_rank)  # one GPU per rank of a node
        join_group(self.info, self.device)
        logger.info("rank %d of %d joined the group", self.info.rank, self.info.world_size)

    def _setup_model(self) -> None:
        super()._setup_model()
        # A drift alarm changes the learning rate: every rank must apply it at the same step.
        self.scoring = PrequentialMonitor(self.scoring.drift, self.metrics, on_drift=self._note_drift)
        learner = self.family.learner  # the text family: dense weights only
        broadcast_parameters(learner.model)
        self.averager = GradientAverager(learner.optimizer)

    def _setup_kafka(self) -> None:
        super()._setup_kafka()
        count = partition_count(make_admin(self.settings), self.settings.events_topic)
        self.partitions = partitions_of_rank(count, self.info.rank, self.info.world_size)
        self.stream.partitions = self.partitions
        logger.info("rank %d reads partitions %s of %d", self.info.rank, list(self.partitions), count)

    def _note_drift(self) -> None:
        self._drift_noted = True

    # --- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Train in lock-step with the group until any rank is asked to stop."""
        self.stream.start()
        try:
            while True:
                self.stream.check_ingest()
                self.stream.follow_recreated_topics(self.position)
                self._forget(self.forgetting.new())
                step = self._group_step(self.handoff.take(timeout_s=0.2), stop.is_set())
                if step.follow_lineage:
                    self._follow_lineage()
                elif step.publish or (step.stop and step.pending):
                    self.publish()
                if step.stop:
                    return
        finally:
            self.stream.close()

    def _group_step(self, batch: TrainingBatch | None, stopping: bool) -> GroupStep:
        if batch is None:
            return self._learn_together(None, stopping)
        with self.handoff.claim(batch) as current:
            return self._learn_together(batch if current else None, stopping)

    def _learn_together(self, batch: TrainingBatch | None, stopping: bool) -> GroupStep:
        """Agree on the step with the group, then learn this rank's batch (or step idle)."""
        batches = self.ledger.batches + (batch is not None)
        report = StepReport(
            event_ids=tuple(batch.event_ids) if batch is not None else (),
            stop=stopping,
            drift=self._drift_noted,
            publish_due=self.schedule.due(batches, self.handoff.depth())
            if batch is not None
            else self.schedule.retry_due(batches),
            pending=batches > 0,
            lineage_moved=self.info.leader and self._lineage_moved(),
        )
        self._drift_noted = False
        step = agree(gather(report), self.recent, self.settings.holdout_share)
        if step.follow_lineage:
            return step  # this step's batches belong to the old lineage: reloading drops them
        if step.drift:
            self.family.on_drift()
        mine, group = step.trained(self.info.rank), step.trained_by_group
        self.averager.share = mine / group if group else 0.0
        if batch is not None:
            self.learn(batch, step.routes[self.info.rank])
        if group and not mine:
            self.family.learner.idle_step()
        return step

    # --- publishing ------------------------------------------------------------------------
    def publish(self) -> bool:
        """One version for the group, written by rank 0; each rank commits after it is durable.

        Steps, in this order, on every rank:
        1. flush this rank's producer (its dead letters are covered by its offsets);
        2. send rank 0 this rank's offsets, ledger and undelivered count (all_gather);
        3. rank 0 judges the candidate and publishes one version with every rank's offsets and
           events (:class:`~streamtune.trainer.versions.publisher.VersionPublisher`: durable,
           announced, rank 0's offsets committed);
        4. rank 0 broadcasts the outcome; every rank applies it the same way, and on a durable
           version commits its own partitions' offsets — never before step 3 completed.
        """
        self.records.settle()
        with self.schedule.attempt():
            undelivered = self.stream.producer.flush(_FLUSH_TIMEOUT_S)  # Step 1
            position = own_position(self.position, self.partitions, self.settings.events_topic)
            shares = gather(RankShare(position, self.ledger, undelivered))  # Step 2
            state = self.family.snapshot()
            result = self._publish_for_group(state, shares) if self.info.leader else None  # Step 3
            result = from_leader(result)  # Step 4
            return self._apply(result, state)

    def _publish_for_group(self, state: object, shares: list[RankShare]) -> PublishResult:
        """Rank 0: judge, then write one version for the whole group."""
        if any(share.undelivered for share in shares):
            self.metrics.publish_failures.inc()
            logger.error("dead letters not acknowledged by Kafka on some rank; not publishing")
            return PublishResult(Outcome.FAILED)
        verdict = self.gatekeeper.judge(self.family, state)
        verdict.record(self.metrics)
        if not verdict.decision.publish:
            logger.warning("gate rejected the candidate: %s", verdict.decision.reason)
            return PublishResult(Outcome.RESTORE if verdict.decision.restore else Outcome.REJECTED)
        ledger = merged_ledger([share.ledger for share in shares])
        base = self.published.kafka_offsets if self.published else {}
        seen = (self.published.examples_seen if self.published else 0) + ledger.examples
        metrics = self.scoring.as_metrics() | verdict.figures
        standing = StreamStanding(merged_position(base, shares), seen, metrics, self._stream_state())
        try:
            manifest = self.publisher.publish(ledger.draft(state, self.published, standing))
        except LineageMovedError as error:
            logger.warning("not published: %s", error)
            return PublishResult(Outcome.LINEAGE_MOVED)
        except PublishError as error:
            logger.error("publish failed (the store is unchanged); retrying later: %s", error)
            return PublishResult(Outcome.FAILED)
        logger.info("gate passed: %s", verdict.decision.reason)
        self.gatekeeper.accept(verdict, state)
        return PublishResult(Outcome.PUBLISHED, manifest)

    def _apply(self, result: PublishResult, state: object) -> bool:
        """What every rank does with rank 0's outcome."""
        if result.outcome is Outcome.FAILED:
            self.schedule.failed()
        elif result.outcome in (Outcome.REJECTED, Outcome.RESTORE):
            self.metrics.gate_rejections.inc()
            if result.outcome is Outcome.RESTORE:
                self.restore_published()
        elif result.outcome is Outcome.PUBLISHED and result.manifest is not None:
            manifest = result.manifest
            if not self.info.leader:  # rank 0's publisher already did both
                self.gatekeeper.set_published(state)
                self.stream.request_commit(manifest.kafka_offsets)
            self.schedule.succeeded()
            self.published = manifest
            self.examples_seen = manifest.examples_seen
            self.ledger = VersionLedger()
            self.metrics.trainer_model_version.set(manifest.version)
            return True
        return False
