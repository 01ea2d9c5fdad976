"""The ingest thread: poll Kafka, validate, dead-letter the invalid, micro-batch, tokenize.

It owns the consumer (confluent-kafka clients are used from one thread only) and keeps polling
while the training step runs, so group membership never lapses during a long step. When the
hand-off is full it pauses its partitions instead of buffering without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from transformers import PreTrainedTokenizerBase

from streamtune.checkpoints.manifest import offset_key
from streamtune.events import Event, InvalidEvent, decode_event
from streamtune.ingest.batcher import MicroBatcher
from streamtune.ingest.handoff import BatchHandoff, TrainingBatch
from streamtune.ingest.partition_ends import ProbeFactory, restart_offsets
from streamtune.kafka.clients import RenewableProducer
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.encoding import PairEncoder

logger = logging.getLogger(__name__)

ERROR_HEADER = "streamtune-error"
ERROR_DETAIL_HEADER = "streamtune-error-detail"
SOURCE_HEADER = "streamtune-source"
_LAG_INTERVAL_S = 5.0
_IDLE_POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class StreamExample:
    event: Event
    topic: str
    partition: int
    offset: int
    produced_ms: int | None


@dataclass(frozen=True)
class IngestConfig:
    events_topic: str
    dlq_topic: str
    batch_size: int
    max_batch_latency_s: float
    max_length: int
    max_text_chars: int
    pin_memory: bool = False


@dataclass(frozen=True)
class TrainedPosition:
    """Where the model's training stands: ``"topic:partition"`` → next offset to train.

    ``from_lineage`` is True once a version exists: a partition ``offsets`` does not name was
    then never read by the lineage and starts at its beginning. Without a lineage, such a
    partition starts at the group's committed offset (a store created for an existing group).
    """

    offsets: dict[str, int]
    from_lineage: bool


PositionSource = Callable[[], TrainedPosition]


class EventIngestor(threading.Thread):
    """Feeds :class:`TrainingBatch` objects into a :class:`BatchHandoff`.

    ``positions`` returns the offsets already trained into the model (:class:`TrainedPosition`);
    on assignment the consumer seeks there, so the model's own state, not the group's committed
    offsets, decides where training resumes (after a rollback the committed offsets are ahead of
    the lineage and would skip events). With ``probe`` (a factory of throwaway consumers), a
    trained offset beyond the partition's end is noticed (:mod:`streamtune.ingest.partition_ends`):
    the topic was deleted and created again, or a broker lost its storage, and that partition
    starts at the new topic's beginning instead of skipping its first records.

    ``pseudonymise`` replaces each event's user id before anything is kept (without it, user
    ids are dropped).

    :meth:`rewind` moves every assigned partition back to the trained position without leaving
    the group: after a topic was recreated the trainer rewinds instead of closing the consumer,
    because a member that leaves while the group is still forming after a broker restart can
    stay behind in the broker's group as a leader that never syncs, and a new consumer of that
    group would then wait for an assignment forever (seen with Tansu).
    """

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer | RenewableProducer,
        tokenizer: PreTrainedTokenizerBase,
        handoff: BatchHandoff,
        positions: PositionSource,
        config: IngestConfig,
        metrics: TrainerMetrics,
        pseudonymise: Callable[[str | None], str | None] | None = None,
        probe: ProbeFactory | None = None,
    ) -> None:
        super().__init__(name="streamtune-ingest", daemon=True)
        self._pseudonymise = pseudonymise
        self._probe = probe
        self._consumer = consumer
        self._producer = producer
        self._encode = PairEncoder(tokenizer, config.max_length)  # the ingest hot path
        self._handoff = handoff
        self._positions = positions
        self._config = config
        self._metrics = metrics
        self._batcher: MicroBatcher[StreamExample] = MicroBatcher(config.batch_size, config.max_batch_latency_s)
        self._consumed: dict[str, int] = {}  # next offset per partition, valid or not
        self._reported: dict[str, int] = {}  # offsets already handed off in a batch
        self._last_cut = time.monotonic()
        self._waiting: list[TrainingBatch] = []  # cut but not yet accepted by the hand-off
        self._assignment: list[TopicPartition] = []
        self._commit_requests: queue.Queue[dict[str, int]] = queue.Queue()
        self._rewind_requests: queue.Queue[threading.Event] = queue.Queue()
        self._stop_requested = threading.Event()
        self._next_lag_check = 0.0
        self.failure: BaseException | None = None

    # --- called from other threads ---------------------------------------------------------
    def request_commit(self, offsets: dict[str, int]) -> None:
        """Ask the ingest thread to commit ``offsets`` (they are durable in a version)."""
        self._commit_requests.put(dict(offsets))

    def rewind(self, timeout_s: float = 30.0) -> bool:
        """Drop everything read but not trained yet and re-read every assigned partition from
        the trained position (``positions``, which the caller has already moved).

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
            self._consumer.subscribe(
                [self._config.events_topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
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
            if not self._waiting:
                self._consumer.resume(self._assignment)
        due_in = self._batcher.seconds_until_due()
        timeout = _IDLE_POLL_S if due_in is None else min(due_in, _IDLE_POLL_S)
        # While paused, poll() still serves the group protocol and delivers no records.
        for message in self._consumer.consume(num_messages=self._config.batch_size, timeout=timeout):
            self._handle(message)
        if not self._waiting:
            due = self._batcher.take_if_due()
            if due is not None:
                self._cut(due)
            elif self._only_invalid_records_pending():
                self._cut([])  # moves the position past dead-lettered records
        self._producer.poll(0)
        self._metrics.batch_queue_depth.set(self._handoff.depth())
        self._update_lag()

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                logger.warning("consumer error: %s", error)
            return
        key = offset_key(message.topic(), message.partition())
        self._consumed[key] = message.offset() + 1
        self._metrics.events_consumed.inc()
        decoded = decode_event(message.value(), self._config.max_text_chars)
        if isinstance(decoded, InvalidEvent):
            self._dead_letter(message, decoded)
            return
        kind, produced_ms = message.timestamp()
        example = StreamExample(
            decoded, message.topic(), message.partition(), message.offset(), produced_ms if kind != 0 else None
        )
        closed = self._batcher.add(example)
        if closed is not None:
            self._cut(closed)

    def _dead_letter(self, message: Message, invalid: InvalidEvent) -> None:
        self._metrics.events_invalid.labels(reason=invalid.reason).inc()
        source = f"{message.topic()}:{message.partition()}:{message.offset()}"
        logger.info("dead-lettered %s: %s", source, invalid.detail)
        self._producer.produce(
            self._config.dlq_topic,
            value=message.value(),
            key=message.key(),
            headers=[
                (ERROR_HEADER, invalid.reason.encode()),
                (ERROR_DETAIL_HEADER, invalid.detail.encode("utf-8", "replace")),
                (SOURCE_HEADER, source.encode()),
            ],
        )

    def _cut(self, examples: list[StreamExample]) -> None:
        """Turn closed examples into a tokenized batch and hand it off (or wait for room)."""
        batch = self._tokenize(examples)
        self._reported = dict(self._consumed)
        self._last_cut = time.monotonic()
        # Batches stay in cut order: a later one may never overtake one still waiting.
        if self._waiting or not self._handoff.offer(batch):
            if not self._waiting:
                self._consumer.pause(self._assignment)
            self._waiting.append(batch)

    def _tokenize(self, examples: list[StreamExample]) -> TrainingBatch:
        events = [example.event for example in examples]
        inputs = self._encode([e.text for e in events], [e.context for e in events]) if events else {}
        labels = torch.tensor([e.label for e in events], dtype=torch.float32)
        if self._config.pin_memory and events:
            inputs = {name: tensor.pin_memory() for name, tensor in inputs.items()}
            labels = labels.pin_memory()
        event_times = [e.ts_ms for e in events if e.ts_ms is not None]
        produced = [x.produced_ms for x in examples if x.produced_ms is not None]
        return TrainingBatch(
            generation=self._handoff.generation,
            inputs=inputs,
            labels=labels,
            event_ids=[e.event_id for e in events],
            offsets=dict(self._consumed),
            data_watermark_ms=max(event_times, default=None),
            produced_watermark_ms=max(produced, default=None),
            produced_oldest_ms=min(produced, default=None),
            user_ids=[self._pseudonymise(e.user_id) if self._pseudonymise else None for e in events],
        )

    def _only_invalid_records_pending(self) -> bool:
        return (
            not len(self._batcher)
            and self._consumed != self._reported
            and time.monotonic() - self._last_cut >= self._config.max_batch_latency_s
        )

    # --- offsets and rebalances ------------------------------------------------------------
    def _commit_pending(self) -> None:
        latest: dict[str, int] | None = None
        while True:
            try:
                latest = self._commit_requests.get_nowait()
            except queue.Empty:
                break
        if latest is None:
            return
        assigned = {offset_key(tp.topic, tp.partition) for tp in self._assignment}
        partitions = [
            TopicPartition(topic, int(partition), offset)
            for key, offset in latest.items()
            if key in assigned
            for topic, _, partition in [key.rpartition(":")]
        ]
        if not partitions:
            return
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except Exception as error:  # the store's manifest is the source of truth; retry next time
            logger.warning("offset commit failed (will retry with the next version): %s", error)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._start_at_trained_position(consumer, partitions)
        self._reported = dict(self._consumed)
        consumer.assign(partitions)
        consumer.resume(partitions)  # a pause for a full hand-off must not outlive the rebalance
        self._assignment = list(partitions)
        logger.info("assigned %s", _describe(partitions))

    def _serve_rewinds(self) -> None:
        requests: list[threading.Event] = []
        while True:
            try:
                requests.append(self._rewind_requests.get_nowait())
            except queue.Empty:
                break
        if not requests:
            return
        dropped = self._drop_unfinished()
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in self._assignment]
        self._start_at_trained_position(self._consumer, partitions)
        self._reported = dict(self._consumed)
        try:
            for tp in partitions:
                self._consumer.seek(tp)
        except KafkaException as error:  # e.g. a fetcher not started yet: try again next step
            logger.warning("cannot rewind yet (%s); retrying", error)
            for done in requests:
                self._rewind_requests.put(done)
            return
        self._consumer.resume(self._assignment)
        logger.info(
            "rewound to the trained position: %s (dropped %d queued batches and %d open examples)",
            _describe(partitions) or "no partition assigned yet",
            *dropped,
        )
        for done in requests:
            done.set()

    def _drop_unfinished(self) -> tuple[int, int]:
        """Forget every batch and example not trained yet; returns (batches, examples) dropped."""
        batches = self._handoff.invalidate() + len(self._waiting)
        examples = len(self._batcher.take())
        self._waiting = []
        return batches, examples

    def _start_at_trained_position(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Set each partition's offset to where training stands (see the class doc)."""
        with self._handoff.quiesced():
            trained = self._positions()
        for tp in partitions:
            key = offset_key(tp.topic, tp.partition)
            if key in trained.offsets:
                tp.offset = trained.offsets[key]
            elif trained.from_lineage:
                tp.offset = OFFSET_BEGINNING
        unknown = [tp for tp in partitions if tp.offset < 0 and tp.offset != OFFSET_BEGINNING]
        committed = consumer.committed(unknown, timeout=10) if unknown else []
        by_key = {offset_key(tp.topic, tp.partition): tp.offset for tp in committed}
        for tp in partitions:
            if tp.offset < 0 and tp.offset != OFFSET_BEGINNING:
                stored = by_key.get(offset_key(tp.topic, tp.partition), -1)
                tp.offset = stored if stored >= 0 else OFFSET_BEGINNING
        restarts = restart_offsets(consumer, self._probe, partitions) if self._probe else {}
        for tp in partitions:
            key = offset_key(tp.topic, tp.partition)
            if key in restarts:
                logger.warning(
                    "%s ends before offset %d, where training stands: the topic was recreated (or its broker "
                    "lost its data); reading the new partition from its beginning",
                    key,
                    tp.offset,
                )
                tp.offset = restarts[key]
            if tp.offset >= 0:
                self._consumed[key] = tp.offset
            else:
                self._consumed.pop(key, None)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        dropped = self._drop_unfinished()
        self._consumed.clear()
        self._reported.clear()
        self._assignment = []
        logger.info(
            "partitions revoked: dropped %d queued batches and %d open examples (they are re-read after reassignment)",
            *dropped,
        )

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_check:
            return
        self._next_lag_check = now + _LAG_INTERVAL_S
        try:
            for tp in self._assignment:
                # Listed ends are too low on Tansu (see partition_ends), fetched ones stale while
                # paused; neither is ever too high.
                _, listed = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
                _, fetched = self._consumer.get_watermark_offsets(tp, cached=True)
                high = max(listed, fetched)
                position = self._consumed.get(offset_key(tp.topic, tp.partition))
                if position is not None and high >= 0:
                    self._metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                        max(0, high - position)
                    )
        except Exception as error:  # streamtune_kafka_up is the cluster watch's to report
            logger.warning("cannot reach Kafka for watermarks: %s", error)


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}:{tp.partition}@{tp.offset}" for tp in partitions)
