"""The ingest thread: poll Kafka, validate, dead-letter the invalid, micro-batch, hand off.

It owns the consumer (confluent-kafka clients are used from one thread only) and keeps polling
while the training step runs, so group membership never lapses during a long step. Records wait
in one bounded queue per partition and batches take from every partition in turn; a partition
is paused only when its own queue is full, so one partition cannot win every refill of the
hand-off (:mod:`streamtune.ingest.fair_batcher` says why that happened). Its helpers, one
job each: :class:`~streamtune.ingest.assignment.Assignment` (partitions, positions, commits),
:class:`~streamtune.ingest.dead_letters.DeadLetters`, :class:`~streamtune.kafka.lag.LagReporter`
and :class:`~streamtune.ingest.training_batch.BatchBuilder` (events → batch).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import NamedTuple, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streamtune.checkpoints.manifest import offset_key
from streamtune.events import Event, InvalidEvent, decode_event
from streamtune.ingest.assignment import Assignment
from streamtune.ingest.dead_letters import DeadLetters
from streamtune.ingest.fair_batcher import FairBatcher
from streamtune.ingest.handoff import BatchHandoff
from streamtune.ingest.ingestor_parts import IngestConfig, KafkaClients, TrainerLink
from streamtune.ingest.training_batch import TrainingBatch
from streamtune.kafka.lag import LagReporter
from streamtune.metrics import TrainerMetrics

logger = logging.getLogger(__name__)

_IDLE_POLL_S = 0.2
_Request = TypeVar("_Request")


class StreamExample(NamedTuple):  # one per record: a tuple is cheaper to make than a frozen dataclass
    event: Event
    produced_ms: int | None
    offset: int  # its record's offset in its partition


class EventIngestor(threading.Thread):
    """Feeds :class:`TrainingBatch` objects into a :class:`BatchHandoff`.

    :meth:`rewind` moves every assigned partition back to the trained position without leaving
    the group: after a topic was recreated the trainer rewinds instead of closing the consumer,
    because a member that leaves while the group is still forming after a broker restart can
    stay behind in the broker's group as a leader that never syncs, and a new consumer of that
    group would then wait for an assignment forever (seen with Tansu).
    """

    def __init__(
        self,
        clients: KafkaClients,
        handoff: BatchHandoff,
        config: IngestConfig,
        metrics: TrainerMetrics,
        *,
        trainer: TrainerLink,
    ) -> None:
        super().__init__(name="streamtune-ingest", daemon=True)
        self._consumer = clients.consumer
        self._dead_letters = DeadLetters(clients.producer, config.dlq_topic, metrics)
        self._lag = LagReporter(clients.consumer, metrics.consumer_lag)
        self._assignment = Assignment(handoff, trainer.positions, clients.probe)
        self._builder = trainer.builder
        self._handoff = handoff
        self._config = config
        self._metrics = metrics
        # Four batches' worth per partition, resumed at two: a resumed partition's records
        # arrive (~0.5 s on a resume) before its queue runs dry.
        self._batcher: FairBatcher[str, StreamExample] = FairBatcher(
            config.batch_size, config.max_batch_latency_s, capacity=4 * config.batch_size, fair_wait=config.fair_wait
        )
        self._paused: set[str] = set()  # partitions paused because their queue is full
        self._last_cut = time.monotonic()
        self._waiting: list[TrainingBatch] = []  # cut but not yet accepted by the hand-off
        self._commit_requests: queue.Queue[dict[str, int]] = queue.Queue()
        self._rewind_requests: queue.Queue[threading.Event] = queue.Queue()
        self._stop_requested = threading.Event()
        self.failure: BaseException | None = None

    # --- called from other threads ---------------------------------------------------------
    def request_commit(self, offsets: dict[str, int]) -> None:
        """Ask the ingest thread to commit ``offsets`` (they are durable in a version)."""
        self._commit_requests.put(dict(offsets))

    def rewind(self, timeout_s: float = 30.0) -> bool:
        """Drop everything read but not trained yet and re-read every assigned partition from
        the trained position (which the caller has already moved).

        Blocks until the ingest thread has done so (every batch cut before then is dropped, so
        none from before the move is trained) and returns True; False if the thread stopped or
        ``timeout_s`` passed first (the rewind then happens later).
        """
        done = threading.Event()
        self._rewind_requests.put(done)
        deadline = time.monotonic() + timeout_s
        while not done.wait(0.1):
            if not self.is_alive() or time.monotonic() > deadline:
                return False
        return True

    def stop(self) -> None:
        self._stop_requested.set()

    # --- the thread ------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self._config.partitions is None:
                self._consumer.subscribe(
                    [self._config.events_topic],
                    on_assign=self._on_assign,
                    on_revoke=self._on_revoke,
                    on_lost=self._on_revoke,
                )
            else:  # assigned by hand: no rebalance can move a partition under exactly-once
                topic = self._config.events_topic
                self._on_assign(self._consumer, [TopicPartition(topic, p) for p in self._config.partitions])
            while not self._stop_requested.is_set():
                self._step()
            self._commit_pending()
        except BaseException as error:  # surfaced to the trainer, which stops cleanly
            logger.exception("ingest thread failed")
            self.failure = error
        finally:
            self._consumer.close()

    def _step(self) -> None:
        self._commit_pending()
        self._serve_rewinds()
        while self._waiting and self._handoff.offer(self._waiting[0]):
            self._waiting.pop(0)
        if self._waiting:
            # Nothing can be cut before the trainer takes a batch: sleep until it does, rather
            # than spin through empty polls that take the training thread's GIL.
            if self._handoff.offer(self._waiting[0], timeout_s=_IDLE_POLL_S):
                self._waiting.pop(0)
            timeout = 0.0
        else:
            due_in = self._batcher.seconds_until_due(busy=self._handoff.busy())
            timeout = _IDLE_POLL_S if due_in is None else min(due_in, _IDLE_POLL_S)
        # While paused, poll() still serves the group protocol and delivers no records.
        records = 0
        for message in self._consumer.consume(num_messages=self._config.batch_size, timeout=timeout):
            records += self._handle(message)
        if records:
            self._metrics.events_consumed.inc(records)
        if not self._waiting:
            if self._batcher.due(busy=self._handoff.busy()):
                self._cut(self._batcher.take())
            elif self._only_invalid_records_pending():
                self._cut([])  # moves the position past dead-lettered records
        self._pause_full_partitions()
        self._dead_letters.serve_callbacks()
        self._metrics.batch_queue_depth.set(self._handoff.depth())
        self._lag.maybe_report(self._assignment.partitions, self._assignment.consumed)

    def _handle(self, message: Message) -> bool:
        """Take one message; False when it was an error rather than a record."""
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                logger.warning("consumer error: %s", error)
            return False
        key, offset = offset_key(message.topic(), message.partition()), message.offset()
        self._assignment.read(key, offset)
        decoded = decode_event(message.value(), self._config.max_text_chars)
        if isinstance(decoded, InvalidEvent):
            self._dead_letters.send(message, decoded)
            return True
        kind, produced_ms = message.timestamp()
        self._batcher.add(key, StreamExample(decoded, produced_ms if kind != 0 else None, offset))
        return True

    def _pause_full_partitions(self) -> None:
        """Pause the partitions whose queue is full, resume those drained to half of it."""
        full = set(self._batcher.full()) - self._paused
        if full:
            self._consumer.pause([_partition(key) for key in full])
        drained = self._batcher.resumable(self._paused)
        if drained:
            self._consumer.resume([_partition(key) for key in drained])
        self._paused = (self._paused | full) - set(drained)

    def _cut(self, examples: list[StreamExample]) -> None:
        """Turn closed examples into a batch and hand it off (or wait for room)."""
        batch = self._builder.build(
            [example.event for example in examples],
            generation=self._handoff.generation,
            offsets=self._positions_after_cut(),
            produced_ms=[example.produced_ms for example in examples],
        )
        self._assignment.mark_reported()
        self._last_cut = time.monotonic()
        # Batches stay in cut order: a later one may never overtake one still waiting.
        if self._waiting or not self._handoff.offer(batch):
            self._waiting.append(batch)

    def _positions_after_cut(self) -> dict[str, int]:
        """Next offset to train per partition: its oldest record still queued, else all read."""
        positions = dict(self._assignment.consumed)
        for key in positions:
            if (oldest := self._batcher.oldest(key)) is not None:
                positions[key] = oldest.offset
        return positions

    def _only_invalid_records_pending(self) -> bool:
        return (
            not len(self._batcher)
            and self._assignment.unreported()
            and time.monotonic() - self._last_cut >= self._config.max_batch_latency_s
        )

    # --- offsets and rebalances ------------------------------------------------------------
    def _commit_pending(self) -> None:
        latest = _newest(self._commit_requests)
        if latest:
            self._assignment.commit(self._consumer, latest[-1])

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment.assign(consumer, partitions)
        self._batcher.track(offset_key(tp.topic, tp.partition) for tp in partitions)

    def _serve_rewinds(self) -> None:
        requests = _newest(self._rewind_requests)
        if not requests:
            return
        batches, examples = self._drop_unfinished()
        self._batcher.track(offset_key(tp.topic, tp.partition) for tp in self._assignment.partitions)
        if not self._assignment.rewind(self._consumer):
            for done in requests:
                self._rewind_requests.put(done)
            return
        logger.info("rewind dropped %d queued batches and %d open examples", batches, examples)
        for done in requests:
            done.set()

    def _drop_unfinished(self) -> tuple[int, int]:
        """Forget every batch and example not trained yet; returns (batches, examples) dropped."""
        batches = self._handoff.invalidate() + len(self._waiting)
        examples = self._batcher.clear()
        self._waiting = []
        self._paused = set()  # the assignment or the rewind resumes every partition
        return batches, examples

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        dropped = self._drop_unfinished()
        self._assignment.revoke()
        logger.info(
            "partitions revoked: dropped %d queued batches and %d open examples (they are re-read after reassignment)",
            *dropped,
        )


def _partition(key: str) -> TopicPartition:
    topic, _, partition = key.rpartition(":")
    return TopicPartition(topic, int(partition))


def _newest(requests: queue.Queue[_Request]) -> list[_Request]:
    """Every request waiting in ``requests``, oldest first."""
    taken: list[_Request] = []
    while True:
        try:
            taken.append(requests.get_nowait())
        except queue.Empty:
            return taken
