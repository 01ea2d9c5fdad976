"""Typed results of the client: what each endpoint answers, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Predictions:
    """``POST /v1/predict``: one score (probability of the positive class) per instance."""

    model_version: int
    scores: list[float]
    trained: bool = True
    data_watermark_ms: int | None = None


@dataclass(frozen=True)
class RankedCandidate:
    id: str | int
    score: float


@dataclass(frozen=True)
class Ranking:
    """``POST /v1/rank``: candidates best first."""

    model_version: int
    candidates: list[RankedCandidate]
    trained: bool = True

    @property
    def ids(self) -> list[str | int]:
        return [candidate.id for candidate in self.candidates]


@dataclass(frozen=True)
class ModelInfo:
    """``GET /v1/model``: the served version, its manifest, and this replica's pin."""

    model_version: int
    manifest: dict[str, Any]
    pinned: int | None
    trained: bool = True


@dataclass(frozen=True)
class VersionEntry:
    version: int
    manifest: dict[str, Any] | None
    error: str | None = None


@dataclass(frozen=True)
class ModelsListing:
    """``GET /v1/models``: the store's versions with their manifests, and this replica's state."""

    serving: int | None
    pinned: int | None
    latest: int | None
    versions: list[VersionEntry] = field(default_factory=list)
    last_swap: dict[str, Any] | None = None


@dataclass(frozen=True)
class PinState:
    """``POST /v1/admin/pin`` and ``/unpin``: what this replica serves now."""

    model_version: int | None
    pinned: int | None
