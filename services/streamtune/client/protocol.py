"""The REST contract as plain functions: request bodies out, typed results in. Shared by the
synchronous and the asynchronous client, which add only transport and retries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from streamtune.client.errors import error_for
from streamtune.client.retry import parse_retry_after
from streamtune.client.types import (
    ModelInfo,
    ModelsListing,
    PinState,
    Predictions,
    RankedCandidate,
    Ranking,
    VersionEntry,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One endpoint call: what to send, and how to read the answer into a typed result."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None


# An instance: "text", (text, context) or {"text": ..., "context": ...}.
Instance = str | tuple[str, str | None] | Mapping[str, Any]
# A candidate: (id, text) or {"id": ..., "text": ...}.
Candidate = tuple[str | int, str] | Mapping[str, Any]


def predict_body(instances: Iterable[Instance]) -> dict[str, Any]:
    """The JSON body of ``/v1/predict``."""
    rows = []
    for instance in instances:
        if isinstance(instance, str):
            rows.append({"text": instance})
        elif isinstance(instance, tuple):
            text, context = instance
            rows.append({"text": text} if context is None else {"text": text, "context": context})
        else:
            rows.append(dict(instance))
    return {"instances": rows}


def rank_body(candidates: Iterable[Candidate], context: str | None, top_k: int | None) -> dict[str, Any]:
    """The JSON body of ``/v1/rank``."""
    rows = [dict(c) if isinstance(c, Mapping) else {"id": c[0], "text": c[1]} for c in candidates]
    body: dict[str, Any] = {"candidates": rows}
    if context is not None:
        body["context"] = context
    if top_k is not None:
        body["top_k"] = top_k
    return body


def checked(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON document; raises the matching :class:`ServerError` for a non-2xx."""
    if response.is_success:
        return response.json()
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    raise error_for(response.status_code, server_message(response), retry_after)


def server_message(response: httpx.Response) -> str:
    """The server's explanation: ``detail`` as a sentence, validation problems joined."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:300] or response.reason_phrase
    if isinstance(detail, Sequence) and not isinstance(detail, str):
        return "; ".join(_problem(problem) for problem in detail)
    return str(detail)


def _problem(problem: object) -> str:
    if not isinstance(problem, Mapping):
        return str(problem)
    where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
    return f"{where}: {problem.get('msg', '')}" if where else str(problem.get("msg", ""))


def predictions(response: httpx.Response) -> Predictions:
    document = checked(response)
    watermark = response.headers.get("X-Data-Watermark-Ms")
    return Predictions(
        model_version=int(document["model_version"]),
        scores=[float(p["score"]) for p in document["predictions"]],
        trained=bool(document.get("trained", True)),
        data_watermark_ms=int(watermark) if watermark else None,
    )


def ranking(response: httpx.Response) -> Ranking:
    document = checked(response)
    ranked = [RankedCandidate(c["id"], float(c["score"])) for c in document["candidates"]]
    return Ranking(int(document["model_version"]), ranked, bool(document.get("trained", True)))


def model_info(response: httpx.Response) -> ModelInfo:
    document = checked(response)
    return ModelInfo(
        model_version=int(document["model_version"]),
        manifest=dict(document.get("manifest") or {}),
        pinned=document.get("pinned"),
        trained=bool(document.get("trained", True)),
    )


def models_listing(response: httpx.Response) -> ModelsListing:
    document = checked(response)
    versions = [VersionEntry(v["version"], v.get("manifest"), v.get("error")) for v in document["versions"]]
    return ModelsListing(
        serving=document.get("serving"),
        pinned=document.get("pinned"),
        latest=document.get("latest"),
        versions=versions,
        last_swap=document.get("last_swap"),
    )


def pin_state(response: httpx.Response) -> PinState:
    document = checked(response)
    return PinState(model_version=document.get("model_version"), pinned=document.get("pinned"))


def predict_call(instances: Iterable[Instance]) -> Call[Predictions]:
    return Call("POST", "/v1/predict", predictions, predict_body(instances))


def rank_call(candidates: Iterable[Candidate], context: str | None, top_k: int | None) -> Call[Ranking]:
    return Call("POST", "/v1/rank", ranking, rank_body(candidates, context, top_k))


MODEL_CALL = Call("GET", "/v1/model", model_info)


def model_call(newer_than: int | None, wait_s: float) -> Call[ModelInfo]:
    """``GET /v1/model``, waiting up to ``wait_s`` for a version above ``newer_than``."""
    if newer_than is None or wait_s <= 0:
        return MODEL_CALL
    return Call("GET", f"/v1/model?newer_than={int(newer_than)}&wait_ms={round(wait_s * 1000)}", model_info)


MODELS_CALL = Call("GET", "/v1/models", models_listing)
UNPIN_CALL = Call("POST", "/v1/admin/unpin", pin_state)


def pin_call(version: int) -> Call[PinState]:
    return Call("POST", "/v1/admin/pin", pin_state, {"version": version})
