"""Request and response bodies of the REST API. Limits come from the settings, so the models
are built by a factory; the OpenAPI schema then states the real limits."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class Prediction(BaseModel):
    score: float = Field(description="Probability of the positive class")


class PredictResponse(BaseModel):
    model_version: int
    predictions: list[Prediction]


@dataclass(frozen=True)
class RequestModels:
    Instance: type[BaseModel]
    PredictRequest: type[BaseModel]


def build_request_models(max_instances: int, max_text_chars: int) -> RequestModels:
    class Instance(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: str = Field(min_length=1, max_length=max_text_chars, description="The item's text")
        context: str | None = Field(default=None, max_length=max_text_chars, description="User/request context")

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        instances: list[Instance] = Field(min_length=1, max_length=max_instances)

    return RequestModels(Instance=Instance, PredictRequest=PredictRequest)
