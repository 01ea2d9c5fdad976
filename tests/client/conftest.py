"""A real inference app that has no model loaded yet: it answers 503 with Retry-After: 1."""

from __future__ import annotations

import pytest
import torch

from streamtune.inference.app import create_app
from streamtune.inference.app_parts import ServingParts
from streamtune.inference.batching import DynamicBatcher
from streamtune.inference.loading import ModelLoader
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics
from tests.inference.serving import running, store_of


def loader_for(settings) -> ModelLoader:
    return ModelLoader(store_of(settings), settings.base_model, torch.device("cpu"), settings.max_length)


@pytest.fixture
def not_ready_server(settings):
    """The real app, no model loaded (no follower runs) until the test swaps one in."""
    metrics = ServingMetrics()
    slot = ModelSlot(loader_for(settings).load, metrics)
    app = create_app(ServingParts(slot, metrics, DynamicBatcher(lambda: slot.current, metrics), store_of(settings)))
    with running(app, metrics, ready=False) as server:
        yield server, slot
