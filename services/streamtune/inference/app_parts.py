"""What the inference app (:func:`~streamtune.inference.app.create_app`) is built from: the
parts that serve, and how the API presents itself (a view of the settings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.inference.batching import DynamicBatcher
from streamtune.inference.follower import VersionFollower
from streamtune.inference.hybrid_model import RowMaker
from streamtune.inference.loading import ServedModel
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics


@dataclass(frozen=True)
class ServingLimits:
    """Limits of the REST API (from the settings)."""

    max_instances: int = 256
    max_text_chars: int = 4096
    max_request_bytes: int = 1 << 20


@dataclass(frozen=True)
class ApiOptions:
    """How the API presents itself: its limits; the admin token (None: the admin API is off);
    the browser origins that may call it (none: CORS off); the model's name in the v2
    protocol; and whether the version listing needs no admin token."""

    limits: ServingLimits = field(default_factory=ServingLimits)
    admin_token: str | None = field(default=None, repr=False)  # a secret: never in a repr
    cors_origins: Sequence[str] = ()
    model_name: str = "streamtune"
    public_model_info: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiOptions:
        return cls(
            limits=ServingLimits(settings.max_instances, settings.max_text_chars, settings.max_request_bytes),
            admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
            cors_origins=tuple(settings.cors_origins),
            model_name=settings.model_name,
            public_model_info=settings.public_model_info,
        )


@dataclass(frozen=True)
class ServingParts:
    """What the app serves with: the slot of the current version, the metrics, the batcher that
    scores requests (started and stopped with the app) and the store. ``start_follower`` starts
    the thread that loads and swaps versions (None: none runs); ``load_version`` loads a
    retained version for the v2 ``/versions/{v}/infer`` (None: only the current one is served);
    ``rows`` is given when a hybrid model is served: it turns request ids into model rows
    (pseudonymising user ids)."""

    slot: ModelSlot[ServedModel]
    metrics: ServingMetrics
    batcher: DynamicBatcher
    store: CheckpointStore
    start_follower: Callable[[], VersionFollower] | None = None
    load_version: Callable[[int], ServedModel] | None = None
    rows: RowMaker | None = None
