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
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
from transformers import PreTrainedTokenizerBase

from streamtune.checkpoints.manifest import offset_key
from streamtune.events import Event, InvalidEvent, decode_event
from streamtune.ingest.batcher import MicroBatcher
from streamtune.ingest.handoff import BatchHandoff, TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.encoding import encode_pairs

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
    the lineage and would skip events).
    """

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        tokenizer: PreTrainedTokenizerBase,
        handoff: BatchHandoff,
        positions: PositionSource,
        config: IngestConfig,
        metrics: TrainerMetrics,
    ) -> None:
        super().__init__(name="streamtune-ingest", daemon=True)
        self._consumer = consumer
        self._producer = producer
        self._tokenizer = tokenizer
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
        self._stop_requested = threading.Event()
        self._next_lag_check = 0.0
        self.failure: BaseException | None = None

    # --- called from other threads ---------------------------------------------------------
    def request_commit(self, offsets: dict[str, int]) -> None:
        """Ask the ingest thread to commit ``offsets`` (they are durable in a version)."""
        self._commit_requests.put(dict(offsets))

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
        if events:
            inputs = encode_pairs(
                self._tokenizer, [e.text for e in events], [e.context for e in events], self._config.max_length
            )
        else:
            inputs = {}
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
            user_ids=[e.user_id for e in events],
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
            if tp.offset >= 0:
                self._consumed[offset_key(tp.topic, tp.partition)] = tp.offset
        self._reported = dict(self._consumed)
        consumer.assign(partitions)
        consumer.resume(partitions)  # a pause for a full hand-off must not outlive the rebalance
        self._assignment = list(partitions)
        logger.info("assigned %s", ", ".join(f"{tp.topic}:{tp.partition}@{tp.offset}" for tp in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        dropped = self._handoff.invalidate() + len(self._waiting)
        open_items = len(self._batcher.take())
        self._waiting = []
        self._consumed.clear()
        self._reported.clear()
        self._assignment = []
        logger.info(
            "partitions revoked: dropped %d queued batches and %d open examples (they are re-read after reassignment)",
            dropped,
            open_items,
        )

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_check:
            return
        self._next_lag_check = now + _LAG_INTERVAL_S
        try:
            for tp in self._assignment:
                _, high = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
                position = self._consumed.get(offset_key(tp.topic, tp.partition))
                if position is not None and high >= 0:
                    self._metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                        max(0, high - position)
                    )
            self._metrics.kafka_up.set(1)
        except Exception as error:
            self._metrics.kafka_up.set(0)
            logger.warning("cannot reach Kafka for watermarks: %s", error)
