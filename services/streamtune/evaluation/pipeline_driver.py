"""Drive the real pipeline — broker → trainer → checkpoint store → inference server — in lock-step.

The protocol makes the scores independent of timing (same events, same seed: same numbers):

1. **score** a chunk of events through each server's ``/v1/predict`` (requests of
   :data:`~streamtune.evaluation.served_store.REQUEST_SIZE` instances), recording per event the version that answered;
2. **train**: for each online lineage in turn, produce the chunk to the next partition of its
   events topic and wait until its server serves a version whose manifest covers the chunk (its
   ``kafka_offsets``, summed over the topic's partitions, reach the chunk's end); then the next.

Trainers cut batches by size only (the batch latency is set to a day) and publish after a whole
chunk's batches, so versions land exactly on chunk boundaries, whatever the machine's speed.
Each event is therefore scored by the version trained on every event before its chunk and none
after it: prequential (test-then-train) evaluation through the production code paths.

Partitions: each chunk goes whole to one partition of the events topic and the next chunk to
the next one (:data:`STREAM_PARTITIONS` of them); a chunk is produced only once the previous one
is trained, so the trainer still sees the file's order; announcements, keyed by version, spread
over as many models partitions. For the embedded broker: its memory storage lists every record
batch of a partition on each fetch that returns records, so on one partition its cost per
cycle grows with the run (measured alone: 0.9 ms of broker CPU a cycle after 500 batches, 14 ms
after 9,000; 1.6 ms after 9,000 over 8 partitions); Apache Kafka indexes its log. The trainers'
fair wait is off (``fair_batch_wait``): with one partition holding records at a time, a busy
trainer's batch would otherwise wait a whole batch latency, a day here, for the others.

Two speeds: the fast lineages (:data:`~streamtune.evaluation.contenders.FAST_LINEAGES`) get
their own batch size and a version every fast chunk (see :mod:`streamtune.evaluation.plan`), so
they are scored by versions a few events old; their requests carry ``user_id`` and ``item_id``.

Lineages and branches: an *online* contender is a trainer and a server sharing a store. Each
lineage has its own events topic, so the trainers take turns, each with every core, instead of
training at once on a core each (measured on MiniLM, 2 cores: ~2.5x per LoRA step). A *branch*
contender is a server on a store of its own, seeded with a copy of the LoRA lineage's version
after the warm-up: ``frozen`` never gets another version, ``periodic`` gets the retrained ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamtune.broker import EmbeddedBroker
from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.config import Settings
from streamtune.evaluation.children import ChildService, free_port
from streamtune.evaluation.contenders import FAST_LINEAGES, LINEAGES, ONLINE_LORA
from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.plan import RunPlan
from streamtune.evaluation.served_store import STEP_TIMEOUT_S, ServedStore, branch_version
from streamtune.evaluation.server_client import ServerClient
from streamtune.events import Event
from streamtune.kafka.clients import ensure_topics, make_producer

logger = logging.getLogger(__name__)

# A day: no batch ever closes on time, so batch boundaries depend on event counts alone.
_NEVER_MS = 86_400_000
_START_TIMEOUT_S = 600.0
STREAM_PARTITIONS = 16


def trainer_overrides(chunk: int, batch_size: int) -> dict[str, Any]:
    """Settings every evaluated trainer gets, whatever the configuration says, and why
    (``chunk``: events between its versions).

    Everything else (learning rate, LoRA rank, replay, drift reaction, …) stays as configured,
    so the evaluation measures the trainer as it would run.
    """
    return {
        "batch_size": batch_size,
        "max_batch_latency_ms": _NEVER_MS,  # batches close by size only: timing-independent
        "fair_batch_wait": False,  # a timing rule too, and only one partition holds records at a time
        "publish_every_batches": chunk // batch_size,  # one version per chunk boundary
        # Chunks go to the partitions in turn, one at a time: the order stays the file's.
        "events_topic_partitions": STREAM_PARTITIONS,
        # Every event is trained on, as by every other contender; with no holdout the quality
        # gate has nothing to judge on and lets every version out, so each chunk gets its version.
        "holdout_share": 0.0,
        "store_poll_seconds": 0.1,  # servers notice a new LATEST quickly (announcements too)
        # Lineages step chunk by chunk, each waiting for its version, on cores they share with
        # their servers: a model process would have nothing to overlap.
        "model_process": "off",
    }


@dataclasses.dataclass(frozen=True)
class PipelineLayout:
    """The child processes the driver starts: a trainer and a server per online lineage (keys of
    :data:`~streamtune.evaluation.contenders.LINEAGES`), a server per branch (``frozen``,
    ``periodic``: stores of their own), the batch size of the fast lineages (their versions land
    every ``plan.fast_chunk`` events), and the Kafka cluster to use (None: an embedded broker)."""

    lineages: Sequence[str]
    branches: Sequence[str] = ()
    fast_batch_size: int | None = None
    bootstrap: str | None = None


@dataclasses.dataclass
class Lineage:
    """A trainer process and the server of its store (one online contender)."""

    name: str
    settings: Settings
    trainer: ChildService | None
    served: ServedStore


class LockstepDriver:
    """Owns the broker, the topic, the child processes and the protocol steps.

    Parameters
    ----------
    settings
        The evaluation's base settings (model, batch size, max length, seed, …).
    plan
        Chunk and warm-up boundaries.
    work_dir
        Stores, child logs and the broker log go here.
    layout
        The trainers and servers to start, and on which Kafka cluster.
    """

    def __init__(self, settings: Settings, plan: RunPlan, work_dir: Path, layout: PipelineLayout) -> None:
        self.plan = plan
        self.work_dir = work_dir
        self.run_id = uuid.uuid4().hex[:8]
        self._lineage_names = list(layout.lineages)
        self._branch_names = list(layout.branches)
        self._bootstrap = layout.bootstrap
        self._base = settings.model_copy(update=trainer_overrides(plan.chunk, settings.batch_size))
        fast_batch_size = layout.fast_batch_size or settings.batch_size
        self._fast = trainer_overrides(plan.fast_chunk or plan.chunk, fast_batch_size)
        _check_settings_exist(settings, layout.lineages)
        self.broker: EmbeddedBroker | None = None
        self.lineages: dict[str, Lineage] = {}
        self.branches: dict[str, ServedStore] = {}
        self._children: list[ChildService] = []
        self._producer = None
        self._chunks_produced: dict[str, int] = {}

    # --- start and stop --------------------------------------------------------------------
    def start(self) -> LockstepDriver:
        """Broker (unless given), topic, then every trainer and server; returns when all serve."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self._bootstrap is None:
            self.broker = EmbeddedBroker(
                free_port(), binary=self._base.broker_bin, log_path=self.work_dir / "broker.log"
            ).start()
        bootstrap = self._bootstrap or self.broker.bootstrap_servers
        self._base = self._base.model_copy(update={"kafka_bootstrap_servers": bootstrap})
        self._producer = make_producer(self._base)
        cores = os.cpu_count() or 1
        for name in self._lineage_names:
            settings = self._settings_for(name, **LINEAGES[name], **(self._fast if name in FAST_LINEAGES else {}))
            topics = [settings.events_topic, settings.models_topic]
            ensure_topics(settings, [(topic, STREAM_PARTITIONS) for topic in topics])
            # The hybrid's tensors are tiny: a second intra-op thread only spins (15 s → 0.4 s a cycle).
            threads = 1 if name in FAST_LINEAGES else cores
            trainer = self._child(f"trainer-{name}", "train", settings, threads)
            served = self._served(name, settings, threads, settings.events_topic)
            served.with_ids = name in FAST_LINEAGES
            self.lineages[name] = Lineage(name, settings, trainer, served)
        # Branches start from the LoRA lineage's version and keep counting in its topic's offsets.
        lora_topic = self._events_topic(ONLINE_LORA)
        lora = LINEAGES[ONLINE_LORA]
        for name in self._branch_names:
            self.branches[name] = self._served(name, self._settings_for(name, **lora), cores, lora_topic)
        for served in self.all_served():
            served.client.wait_for_model(
                lambda *_: True, _START_TIMEOUT_S, f"{served.name} to start", self.check_children
            )
        logger.info("pipeline up: %d trainers, %d servers", len(self._lineage_names), len(self.all_served()))
        return self

    def stop(self) -> None:
        """Stop servers and trainers (newest first), then the broker."""
        for served in self.all_served():
            served.close()
        for child in reversed(self._children):
            child.stop()
        if self._producer is not None:
            self._producer.flush(10)
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> LockstepDriver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _settings_for(self, name: str, **lineage: Any) -> Settings:
        return self._base.model_copy(
            update={
                **lineage,
                "events_topic": self._events_topic(name),
                "models_topic": f"eval-{self.run_id}-models-{name}",
                "trainer_group_id": f"eval-{self.run_id}-{name}",
                "checkpoint_dir": self.work_dir / name / "checkpoints",
                "http_port": free_port(),
                "trainer_metrics_port": free_port(),
            }
        )

    def _events_topic(self, name: str) -> str:
        return f"eval-{self.run_id}-events-{name}"

    def _child(self, name: str, command: str, settings: Settings, threads: int) -> ChildService:
        child = ChildService(name, command, settings, self.work_dir, threads)
        self._children.append(child)
        return child

    def _served(self, name: str, settings: Settings, threads: int, events_topic: str) -> ServedStore:
        server = self._child(f"server-{name}", "serve", settings, threads)
        store = CheckpointStore(settings.checkpoint_dir, settings.keep_versions)
        return ServedStore(name, store, server, ServerClient(settings.http_port), events_topic)

    def all_served(self) -> list[ServedStore]:
        return [lineage.served for lineage in self.lineages.values()] + list(self.branches.values())

    def check_children(self) -> None:
        """Raise with the child's log if any trainer or server still meant to run has died."""
        for child in self._children:
            if child.process.returncode is None:
                child.check_alive()

    # --- the protocol ----------------------------------------------------------------------
    def train(
        self,
        raw_events: Sequence[dict[str, Any]],
        position: int,
        names: Sequence[str] | None = None,
        upcoming: Sequence[Event] = (),
    ) -> dict[str, float]:
        """Step 2: each lineage in turn (those in ``names``; default all) gets ``raw_events``
        (the stream up to ``position``) and its server a version covering ``[0, position)``;
        returns the seconds each took. While a trainer steps, its server embeds the texts of the
        ``upcoming`` chunk (:meth:`ServedStore.warm`): the two processes then use both cores."""
        seconds = {}
        for name, lineage in self.lineages.items():
            if names is not None and name not in names:
                continue
            started = time.perf_counter()
            self._produce(lineage.settings.events_topic, raw_events)
            warming = lineage.served.warm(upcoming) if upcoming else None
            lineage.served.wait_until_covers(position, self.check_children)
            if warming is not None:
                warming.result()
            seconds[name] = time.perf_counter() - started
        return seconds

    def _produce(self, topic: str, raw_events: Sequence[dict[str, Any]]) -> None:
        """Append events to the next partition of ``topic`` in turn, acknowledged by the
        cluster before returning."""
        chunk = self._chunks_produced.get(topic, 0)
        self._chunks_produced[topic] = chunk + 1
        partition = chunk % STREAM_PARTITIONS
        for event in raw_events:
            self._producer.produce(topic, value=json.dumps(event).encode("utf-8"), partition=partition)
            self._producer.poll(0)
        undelivered = self._producer.flush(60)
        if undelivered:
            raise EvaluationError(f"{undelivered} events were not acknowledged by Kafka")

    def branch_from(self, name: str) -> Manifest:
        """Copy the version lineage ``name``'s server serves into every branch's store and wait
        until each branch serves it; returns the copied manifest."""
        source = self.lineages[name].served
        version, _ = source.client.wait_for_model(lambda version, _: version > 0, STEP_TIMEOUT_S, "a warm-up version")
        manifest = source.store.verify(version)
        for branch in self.branches.values():
            copied = branch_version(source.store, version, branch.store)
            branch.remember(copied.kafka_offsets, copied.version)
            branch.client.wait_for_model(
                lambda served, _, expected=copied.version: served == expected,
                STEP_TIMEOUT_S,
                f"{branch.name} to serve the warm-up version",
                self.check_children,
            )
        return manifest

    def retire(self, name: str) -> None:
        """Stop a lineage that has served its purpose (the warm-up of unscored contenders)."""
        lineage = self.lineages.pop(name)
        for child in (lineage.trainer, lineage.served.server):
            if child is not None:
                child.stop()
        lineage.served.close()


def _check_settings_exist(settings: Settings, lineages: Sequence[str]) -> None:
    """Fail fast, naming the setting, when a lineage needs one this build does not have."""
    for name in lineages:
        if missing := sorted(set(LINEAGES[name]) - set(type(settings).model_fields)):
            raise EvaluationError(f"{name} needs the setting(s) {', '.join(missing)}, which this build lacks")
