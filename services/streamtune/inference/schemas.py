"""Request and response bodies of the REST API. Limits come from the settings, so the request
models are built by a factory; the OpenAPI schema then states the real limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

# Version 0 is the base model with a fresh, untrained head: its scores carry no information yet.
UNTRAINED_NOTE = "False while version 0 (the base model, not trained on any event yet) is served"

# Candidate ids are the caller's keys (item ids), echoed back; they need no more room than this.
MAX_ID_CHARS = 256
# An item id as events carry it: a string or an integer (never a bool or a float).
ItemId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | StrictInt
# A user id as events carry it; the server pseudonymises it before anything else sees it.
UserId = ItemId
KNOWN_NOTE = "Whether the served version has a row for this {} (hybrid models; absent otherwise)"


class Prediction(BaseModel):
    score: float = Field(description="Probability of the positive class")
    user_known: bool | None = Field(default=None, description=KNOWN_NOTE.format("user"))
    item_known: bool | None = Field(default=None, description=KNOWN_NOTE.format("item"))


class PredictResponse(BaseModel):
    model_version: int
    predictions: list[Prediction]
    trained: bool = Field(default=True, description=UNTRAINED_NOTE)


class RankedCandidate(BaseModel):
    id: str | int
    score: float = Field(description="Probability of the positive class")
    user_known: bool | None = Field(default=None, description=KNOWN_NOTE.format("user"))
    item_known: bool | None = Field(default=None, description=KNOWN_NOTE.format("item"))


class RankResponse(BaseModel):
    model_version: int
    candidates: list[RankedCandidate] = Field(description="Highest score first, at most top_k")
    trained: bool = Field(default=True, description=UNTRAINED_NOTE)


class ModelInfo(BaseModel):
    model_version: int
    manifest: dict[str, Any]
    pinned: int | None = Field(description="Version pinned on this replica, None when following LATEST")
    trained: bool = Field(default=True, description=UNTRAINED_NOTE)


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=0, le=99_999_999, description="Version to serve on this replica (0: the base model)")


class PinResponse(BaseModel):
    model_version: int | None = Field(description="Version this replica serves now")
    pinned: int | None


class VersionEntry(BaseModel):
    version: int
    manifest: dict[str, Any] | None = Field(description="The manifest, with the version's training metrics")
    error: str | None = Field(default=None, description="Why the manifest could not be read")


class SwapInfo(BaseModel):
    version: int
    previous: int | None
    seconds: float
    memory_before_bytes: int
    memory_peak_bytes: int


class ModelsResponse(BaseModel):
    serving: int | None
    pinned: int | None
    latest: int | None
    last_swap: SwapInfo | None
    versions: list[VersionEntry]


@dataclass(frozen=True)
class RequestModels:
    Instance: type[BaseModel]
    PredictRequest: type[BaseModel]
    RankRequest: type[BaseModel]


def build_request_models(max_instances: int, max_text_chars: int, ids_alone: bool = False) -> RequestModels:
    """Request models enforcing these limits. User and item ids are accepted always (a text
    model ignores them); with ``ids_alone`` (a hybrid model is served) an item may be given by
    its id without a text."""
    text_field = (
        Field(default=None, min_length=1, max_length=max_text_chars, description="The item's text (or its item_id)")
        if ids_alone
        else Field(min_length=1, max_length=max_text_chars, description="The item's text")
    )
    text_type = str | None if ids_alone else str

    class Instance(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: text_type = text_field  # type: ignore[valid-type]
        context: str | None = Field(default=None, max_length=max_text_chars, description="User/request context")
        user_id: UserId | None = Field(default=None, description="The user's id as events carry it")
        item_id: ItemId | None = Field(default=None, description="The item's id as events carry it")

        @model_validator(mode="after")
        def _text_or_item(self) -> Instance:
            if self.text is None and self.item_id is None:
                raise ValueError("an instance needs a text or an item_id")
            return self

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        instances: list[Instance] = Field(min_length=1, max_length=max_instances)

    class Candidate(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: ItemId = Field(description="The caller's key, echoed back; a hybrid model takes it for the item id")
        text: text_type = text_field  # type: ignore[valid-type]

    class RankRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        context: str | None = Field(default=None, max_length=max_text_chars, description="User/request context")
        user_id: UserId | None = Field(default=None, description="The user to rank for, as events carry the id")
        candidates: list[Candidate] = Field(min_length=1, max_length=max_instances)
        top_k: int | None = Field(default=None, ge=1, description="Return the best top_k (default: all)")

        @model_validator(mode="after")
        def _unique_ids(self) -> RankRequest:
            ids = [candidate.id for candidate in self.candidates]
            if len(set(ids)) != len(ids):
                raise ValueError("candidate ids must be unique")
            return self

    return RequestModels(Instance=Instance, PredictRequest=PredictRequest, RankRequest=RankRequest)
