"""Groups of settings that :class:`streamtune.config.Settings` inherits: the Kafka cluster,
the HTTP serving path, and supervision and logging. Read them only through ``Settings``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode


class KafkaSettings(BaseSettings):
    """The cluster, its topics and the consumer group; the embedded broker for development."""

    # --- Kafka -------------------------------------------------------------------------------
    # Unset means "no external cluster": `streamtune up` starts the embedded broker.
    kafka_bootstrap_servers: str | None = None
    events_topic: str = "user-events"
    models_topic: str = "streamtune-models"
    trainer_group_id: str = "streamtune-trainer"
    # Partitions used when streamtune has to create the events topic itself.
    events_topic_partitions: int = Field(default=3, ge=1)
    # librdkafka's defaults (45 s session) make a group join take ~20 s; online training wants
    # partitions assigned in seconds, and a dead trainer noticed quickly.
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=500, ge=100)
    # How long a consumer's fetch may wait on the broker for records. librdkafka's 500 ms is
    # fine where the broker answers as soon as records arrive; the embedded broker (Tansu) does
    # not, so an event or a version announcement arrived ~77 ms late (7 ms at 10 ms, measured).
    kafka_fetch_wait_max_ms: int = Field(default=10, ge=1, le=500)
    kafka_security_protocol: str | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    # Any further librdkafka property, as a JSON object of strings.
    kafka_extra: dict[str, str] = Field(default_factory=dict)

    # --- Embedded broker (development and tests only) ------------------------------------------
    broker_bin: str | None = None
    broker_port: int = Field(default=9092, ge=1, le=65535)


class ServingSettings(BaseSettings):
    """The inference server: address, batching, admission control, backends, CORS and the
    public model information."""

    # --- HTTP ----------------------------------------------------------------------------------
    # Localhost by default: exposing the service is a deliberate act.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    trainer_metrics_port: int = Field(default=9100, ge=0, le=65535)
    max_instances: int = Field(default=256, ge=1)
    admin_token: SecretStr | None = None
    # Fallback to announcements: how often the server re-reads the store's LATEST pointer.
    store_poll_seconds: float = Field(default=2.0, gt=0)
    serve_max_batch: int = Field(default=64, ge=1)
    serve_max_wait_ms: float = Field(default=5.0, ge=0)
    # Rows waiting for the model; beyond this a request is answered 429 at once. ~2 s of work
    # for MiniLM on two cores: a client is better served by a quick retry than a long queue.
    serve_max_queue: int = Field(default=1024, ge=1)
    # Admission control: a request whose expected wait (queued rows at the measured scoring
    # rate) exceeds this is shed at once with 503 + Retry-After, so those admitted are answered
    # in about this plus their own forward pass instead of piling up behind a queue.
    serve_max_queue_ms: float = Field(default=300.0, gt=0)
    # Share of that queue one client (X-Client-Id header, else its address) may hold; beyond
    # it the client gets 429 while others are still admitted.
    serve_client_share: float = Field(default=0.5, gt=0, le=1)
    # A request without an X-Request-Deadline-Ms header is dropped unscored once it has waited
    # this long: its client has most likely given up (typical client timeouts are seconds).
    serve_default_deadline_ms: float = Field(default=5000.0, gt=0)
    # Larger bodies are refused with 413 before they are parsed (256 instances of 4096
    # characters fit comfortably).
    max_request_bytes: int = Field(default=1 << 20, ge=1024)
    # Batcher workers running forward passes side by side, and threads per forward; None: on CPU
    # two workers sharing the usable cores (affinity, cgroup quota) less one for the event loop,
    # one thread each on two cores; on CUDA one worker. On two busy cores one forward with two
    # threads answered a quarter of the requests one thread did (OpenMP barriers, measured).
    serve_workers: int | None = Field(default=None, ge=1)
    serve_threads: int | None = Field(default=None, ge=1)
    # The forward pass: torch, or ONNX Runtime (the onnx extra; each version exported when it
    # loads), optionally with int8 weights (CPU). A backend serves a version only if its scores
    # match torch's on a reference set (tolerance 1e-4, int8 0.02); else that version stays on torch.
    serve_backend: Literal["torch", "onnx"] = "torch"
    serve_quantize: Literal["none", "int8"] = "none"
    # Plain torch on CPU: linear layers on oneDNN with packed fp32 weights (checked against the
    # stock module like any backend), or torch's stock fp32 path. MKL, behind the stock path on
    # x86 wheels, skips AVX-512 on AMD CPUs: oneDNN was ~2x faster per row there (measured).
    serve_cpu_linear: Literal["onednn", "stock"] = "onednn"
    # Browser origins allowed to call the REST API (CORS), comma-separated or a JSON list; "*"
    # allows any. Empty: CORS off, browsers on other origins cannot read the answers.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Read-only model information (GET /v1/models, the status page at /) without the admin
    # token: a `make up` user should see what was learned; changes always need the token.
    public_model_info: bool = True
    # The model's name in the Open Inference Protocol (v2) routes: /v2/models/{name}/infer.
    model_name: str = Field(default="streamtune", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class OperationsSettings(BaseSettings):
    """How `streamtune up` supervises its children, and how every process logs."""

    # --- Supervision (`streamtune up`) ----------------------------------------------------------
    supervisor_metrics_port: int = Field(default=9101, ge=0, le=65535)
    # A crashed trainer or server is restarted after this delay, doubled for each crash in a
    # row soon after starting (up to the maximum)...
    restart_initial_delay_ms: float = Field(default=500.0, ge=0)
    restart_max_delay_ms: float = Field(default=8000.0, ge=0)
    # ...and after this many such crashes in a row the stack stops: it cannot start.
    restart_max_quick_crashes: int = Field(default=5, ge=0)
    # Keep a warm spare server (imports and base model done, ~0.5 GB of memory) that replaces a
    # crashed one in a second or two instead of a full start (tens of seconds on loaded cores).
    restart_warm_spare: bool = True

    # --- Logging -------------------------------------------------------------------------------
    # text: one readable line per record; json: one JSON object per line for log collectors.
    log_format: Literal["text", "json"] = "text"
    # `--log-level` sets this, so the processes `streamtune up` starts log at the same level.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
