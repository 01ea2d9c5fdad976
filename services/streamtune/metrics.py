"""Every Prometheus metric streamtune exports, defined in one place.

Names follow ``streamtune_<noun>_<unit>`` in base units (seconds, bytes); counters end in
``_total``. Each process builds its own registry so several services (or tests) can live in one
interpreter without clashing.
"""

from __future__ import annotations

import math

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

_STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
_PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_FRESHNESS_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300, 600)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def new_registry() -> CollectorRegistry:
    """A registry with the usual process/platform collectors, as the default one has."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class TrainerMetrics:
    """Metrics of the trainer process (ingest, training, publishing)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry()
        r = self.registry
        self.kafka_up = Gauge(
            "streamtune_kafka_up", "1 while the Kafka cluster answers, 0 during an outage", registry=r
        )
        self.events_consumed = Counter(
            "streamtune_events_consumed_total", "Events read from the events topic", registry=r
        )
        self.events_invalid = Counter(
            "streamtune_events_invalid_total",
            "Events refused and sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.duplicate_events = Counter(
            "streamtune_duplicate_events_total",
            "Events skipped because their event_id was already trained",
            registry=r,
        )
        self.batch_queue_depth = Gauge(
            "streamtune_batch_queue_depth", "Micro-batches waiting for the training step", registry=r
        )
        self.consumer_lag = Gauge(
            "streamtune_consumer_lag",
            "Messages between the trainer's position and the partition's high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.train_batch_size = Histogram(
            "streamtune_train_batch_size",
            "Examples per training step (stream examples plus replayed ones)",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.train_step_seconds = Histogram(
            "streamtune_train_step_seconds",
            "Duration of one optimisation step",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.train_loss = Gauge("streamtune_train_loss", "Loss of the latest training step", registry=r)
        self.examples_trained = Counter("streamtune_examples_trained_total", "Stream examples trained on", registry=r)
        self.prequential_loss = Gauge(
            "streamtune_prequential_loss",
            "Rolling log-loss of the current model on events before it trains on them",
            registry=r,
        )
        self.prequential_auc = Gauge(
            "streamtune_prequential_auc",
            "Rolling ROC AUC of the current model on events before it trains on them",
            registry=r,
        )
        # Undefined until events (of both labels, for the AUC) are scored: NaN, never a fake 0.
        self.prequential_loss.set(math.nan)
        self.prequential_auc.set(math.nan)
        self.gate_rejections = Counter(
            "streamtune_gate_rejections_total",
            "Candidate versions not published because they scored worse on the holdout",
            registry=r,
        )
        self.drift_detected = Counter(
            "streamtune_drift_detected_total", "Concept drift detections on the prequential loss", registry=r
        )
        self.trainer_model_version = Gauge(
            "streamtune_trainer_model_version", "Newest version published by this trainer", registry=r
        )
        self.checkpoint_publish_seconds = Histogram(
            "streamtune_checkpoint_publish_seconds",
            "Time to write, fsync and rename a version into the store",
            buckets=_PUBLISH_BUCKETS,
            registry=r,
        )
        self.checkpoint_bytes = Gauge(
            "streamtune_checkpoint_bytes", "Size of the newest published version on disk", registry=r
        )
        self.publish_failures = Counter(
            "streamtune_publish_failures_total", "Versions that failed to be written", registry=r
        )
        self.last_publish_timestamp = Gauge(
            "streamtune_last_publish_timestamp_seconds",
            "Unix time of the newest published version",
            registry=r,
        )
        self.replay_buffer_bytes = Gauge(
            "streamtune_replay_buffer_bytes", "Memory held by the replay buffer", registry=r
        )
        self.replay_buffer_examples = Gauge(
            "streamtune_replay_buffer_examples", "Past examples held by the replay buffer", registry=r
        )
        self.events_held_out = Counter(
            "streamtune_events_held_out_total",
            "Events set aside (never trained on) for the quality gate's holdout",
            registry=r,
        )
        self.holdout_examples = Gauge(
            "streamtune_holdout_examples", "Examples in the gate's rolling holdout window", registry=r
        )
        self.holdout_loss = Gauge(
            "streamtune_holdout_loss",
            "Log-loss on the holdout window at the latest gate decision",
            ["model"],
            registry=r,
        )
        self.gate_restores = Counter(
            "streamtune_gate_restores_total",
            "Times repeated rejections sent the trainer back to the published weights",
            registry=r,
        )
        self.learning_rate = Gauge("streamtune_learning_rate", "Learning rate of the latest training step", registry=r)
        self.lineage_reloads = Counter(
            "streamtune_lineage_reloads_total",
            "Times LATEST was moved by someone else (a rollback) and the trainer reloaded it",
            registry=r,
        )
        self.trainer_ready = Gauge(
            "streamtune_trainer_ready",
            "1 once the trainer has loaded its model and started consuming (the supervisor's readiness probe)",
            registry=r,
        )


class ServingMetrics:
    """Metrics of one inference replica."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry()
        r = self.registry
        self.kafka_up = Gauge(
            "streamtune_kafka_up", "1 while the Kafka cluster answers, 0 during an outage", registry=r
        )
        self.serving_model_version = Gauge(
            "streamtune_serving_model_version", "Version answering requests (0: the base model)", registry=r
        )
        self.model_swaps = Counter("streamtune_model_swaps_total", "Successful swaps to another version", registry=r)
        self.model_swap_seconds = Histogram(
            "streamtune_model_swap_seconds",
            "Time from deciding to load a version to serving it (load, verify, warm up, swap)",
            buckets=_PUBLISH_BUCKETS,
            registry=r,
        )
        self.model_swap_peak_memory_bytes = Gauge(
            "streamtune_model_swap_peak_memory_bytes",
            "Resident memory peak observed during the latest swap",
            registry=r,
        )
        self.model_swap_memory_increase_bytes = Gauge(
            "streamtune_model_swap_memory_increase_bytes",
            "Resident memory peak during the latest swap minus resident memory just before it",
            registry=r,
        )
        self.pinned_model_version = Gauge(
            "streamtune_pinned_model_version",
            "Version pinned on this replica by an operator (-1: following LATEST)",
            registry=r,
        )
        self.inference_queue_rows = Gauge(
            "streamtune_inference_queue_rows", "Instances waiting for a forward pass", registry=r
        )
        self.inference_rows_per_second = Gauge(
            "streamtune_inference_rows_per_second",
            "Instances the worker scores per second of work (measured; admission control's estimate)",
            registry=r,
        )
        self.inference_busy_seconds = Counter(
            "streamtune_inference_busy_seconds_total",
            "Seconds batcher workers spent scoring (over wall time and workers: their utilisation)",
            registry=r,
        )
        self.model_load_failures = Counter(
            "streamtune_model_load_failures_total",
            "Versions refused or failed to load (the previous version kept serving)",
            ["reason"],
            registry=r,
        )
        # STREAMTUNE_SERVE_BACKEND / _QUANTIZE: versions kept on torch because the faster backend
        # failed to build or its scores differed (reason: error | mismatch), and the difference seen.
        self.backend_rejections = Counter(
            "streamtune_serve_backend_rejections_total",
            "Versions served on torch because the configured backend was refused",
            ["backend", "reason"],
            registry=r,
        )
        self.backend_score_difference = Gauge(
            "streamtune_serve_backend_score_difference",
            "Largest |probability - torch's| of the configured backend on the reference set, latest load",
            ["backend"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "streamtune_request_seconds",
            "HTTP request latency",
            ["endpoint", "status"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.predictions = Counter("streamtune_predictions_total", "Instances scored", registry=r)
        self.inference_batch_size = Histogram(
            "streamtune_inference_batch_size",
            "Instances per forward pass after dynamic batching",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.requests_rejected = Counter(
            "streamtune_requests_rejected_total",
            "Requests refused before scoring (e.g. queue full)",
            ["reason"],
            registry=r,
        )
        self.freshness_seconds = Histogram(
            "streamtune_freshness_seconds",
            "Time from an event's production to the moment a served version includes it",
            buckets=_FRESHNESS_BUCKETS,
            registry=r,
        )


class SupervisorMetrics:
    """Metrics of `streamtune up`: the health of the processes it supervises."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry()
        r = self.registry
        self.child_restarts = Counter(
            "streamtune_child_restarts_total",
            "Times a crashed child process (trainer, server) was restarted",
            ["child"],
            registry=r,
        )
        self.child_up = Gauge(
            "streamtune_child_up", "1 while the child process runs and is ready, else 0", ["child"], registry=r
        )
