"""The public routes: scoring (predict, rank) and the replica's status (model, health, metrics).

No ``from __future__ import annotations`` here: FastAPI evaluates the annotations of route
functions, and the request classes are local to the router factory.
"""

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import Scope

from streamtune.inference.admission import ClientGoneError
from streamtune.inference.batching import DynamicBatcher, Scored
from streamtune.inference.follower import VersionFollower
from streamtune.inference.hybrid_model import RowMaker
from streamtune.inference.loading import ServedModel
from streamtune.inference.schemas import (
    ModelInfo,
    Prediction,
    PredictResponse,
    RankedCandidate,
    RankResponse,
    RequestModels,
)
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics

VERSION_HEADER = "X-Model-Version"
WATERMARK_HEADER = "X-Data-Watermark-Ms"
# How long the client will wait for this answer, in milliseconds from its arrival.
DEADLINE_HEADER = "X-Request-Deadline-Ms"
# Who asks, for admission control's per-client share (default: the client's address).
CLIENT_HEADER = "X-Client-Id"
# Seconds a client should wait before retrying a 429 or 503: the queue drains in about that long.
RETRY_AFTER_S = 1
# ``GET /v1/model?newer_than=N&wait_ms=M``: at most half a minute per request; the replica looks
# for the swap every 2 ms (a coroutine wake, not a request).
MAX_MODEL_WAIT_MS = 30_000
MODEL_WAIT_STEP_S = 0.002

NOT_READY = {503: {"description": "No model loaded yet (see the Retry-After header)"}}
SCORING_ERRORS = {
    413: {"description": "Request body too large"},
    415: {"description": "Request body is not JSON"},
    429: {"description": "This client holds its share of the queue, or the queue is full: retry after Retry-After"},
    503: {"description": "Overloaded (expected wait over the budget) or no model loaded yet: retry after Retry-After"},
}


def unavailable(status: int, detail: str) -> JSONResponse:
    """A 429 or 503 telling the client when to retry."""
    return JSONResponse({"detail": detail}, status_code=status, headers={"Retry-After": str(RETRY_AFTER_S)})


def versioned_response(
    body: BaseModel, version: int, data_watermark_ms: int | None, exclude_unset: bool = False
) -> Response:
    """``body`` as JSON with the headers naming the version (and its data watermark);
    ``exclude_unset`` leaves out fields never set (a text model's absent known-flags)."""
    headers = {VERSION_HEADER: str(version)}
    if data_watermark_ms is not None:
        headers[WATERMARK_HEADER] = str(data_watermark_ms)
    return Response(body.model_dump_json(exclude_unset=exclude_unset), media_type="application/json", headers=headers)


async def score_for(
    request: Request, batcher: DynamicBatcher, texts: Sequence[str], contexts: Sequence[str | None]
) -> Scored:
    """Score through the batcher on behalf of ``request``'s client, within its deadline; if the
    client disconnects first, its rows are withdrawn before they reach the model."""
    client = client_id(request.headers, request.scope)
    deadline_s = deadline_from(request.headers)
    scoring = asyncio.ensure_future(batcher.score(texts, contexts, client, deadline_s))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((scoring, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not scoring.done():
        scoring.cancel()  # the batcher skips a cancelled request when its batch forms
        raise ClientGoneError("the client disconnected before its request was scored", "client_gone")
    return scoring.result()


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body is already read: nothing else can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def client_id(headers: Mapping[str, str], scope: Scope) -> str:
    """Who asks, for admission control's client share: ``X-Client-Id``, else the address."""
    address = scope.get("client")
    return headers.get(CLIENT_HEADER) or (address[0] if address else "")


def deadline_from(headers: Mapping[str, str]) -> float | None:
    """Seconds the client will wait (``X-Request-Deadline-Ms``); None when absent or invalid."""
    header = headers.get(DEADLINE_HEADER)
    try:
        value = float(header) / 1000 if header else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def _known(score: float) -> dict[str, bool]:
    """A hybrid score's known-flags as response fields; nothing for a text model's score."""
    if not hasattr(score, "user_known"):
        return {}
    return {"user_known": score.user_known, "item_known": score.item_known}


def scoring_router(batcher: DynamicBatcher, models: RequestModels, rows: RowMaker | None = None) -> APIRouter:
    """``/v1/predict`` and ``/v1/rank``, both scored through the dynamic batcher. With ``rows``
    (a hybrid model is served) instances go to the model as rows with ids, and every score says
    whether its user and item were known; a text model scores texts and ignores ids."""
    router = APIRouter(tags=["scoring"])
    PredictRequest, RankRequest = models.PredictRequest, models.RankRequest

    @router.post("/v1/predict", response_model=PredictResponse, responses=SCORING_ERRORS)
    async def predict(body: PredictRequest, request: Request) -> Response:  # type: ignore[valid-type]
        """Score each instance with the served version."""
        instances = body.instances  # type: ignore[attr-defined]
        contexts = [i.context for i in instances]
        if rows is None:
            scored = await score_for(request, batcher, [i.text for i in instances], contexts)
        else:
            hybrid_rows = [rows.row(i.user_id, i.item_id, i.text, i.context) for i in instances]
            scored = await score_for(request, batcher, hybrid_rows, [None] * len(instances))
        predictions = [Prediction.model_construct(score=float(score), **_known(score)) for score in scored.scores]
        response = PredictResponse.model_construct(
            model_version=scored.version, predictions=predictions, trained=scored.version > 0
        )
        return versioned_response(response, scored.version, scored.data_watermark_ms, exclude_unset=True)

    @router.post("/v1/rank", response_model=RankResponse, responses=SCORING_ERRORS)
    async def rank(body: RankRequest, request: Request) -> Response:  # type: ignore[valid-type]
        """Score every candidate against the context (and, for a hybrid model, the user); best
        first, at most ``top_k``. For a hybrid model a candidate's id is its item id."""
        candidates, context = body.candidates, body.context  # type: ignore[attr-defined]
        if rows is None:
            scored = await score_for(request, batcher, [c.text for c in candidates], [context] * len(candidates))
        else:
            user = body.user_id  # type: ignore[attr-defined]
            hybrid_rows = [rows.row(user, c.id, c.text, context) for c in candidates]
            scored = await score_for(request, batcher, hybrid_rows, [None] * len(candidates))
        order = sorted(range(len(candidates)), key=lambda index: -scored.scores[index])  # stable on ties
        ranked = [
            RankedCandidate.model_construct(
                id=candidates[i].id, score=float(scored.scores[i]), **_known(scored.scores[i])
            )
            for i in order
        ]
        response = RankResponse.model_construct(
            model_version=scored.version,
            candidates=ranked[: body.top_k],  # type: ignore[attr-defined]
            trained=scored.version > 0,
        )
        return versioned_response(response, scored.version, scored.data_watermark_ms, exclude_unset=True)

    return router


def status_router(
    slot: ModelSlot[ServedModel], follower: Callable[[], VersionFollower | None], metrics: ServingMetrics
) -> APIRouter:
    """``/v1/model``, ``/healthz``, ``/readyz`` (200 only while a model is loaded), ``/metrics``."""
    router = APIRouter(tags=["status"])

    @router.get("/v1/model", response_model=ModelInfo, responses=NOT_READY)
    async def model_info(
        newer_than: int | None = Query(None, ge=0, description="wait for a version above this one…"),
        wait_ms: int = Query(0, ge=0, le=MAX_MODEL_WAIT_MS, description="…for at most this long"),
    ) -> Response:
        """The version this replica serves, its manifest, and its pin.

        With ``newer_than`` and ``wait_ms``, the answer waits until a version above
        ``newer_than`` is served or ``wait_ms`` has passed (then it names the version still
        served): a client waiting for a fresh version hears of it within milliseconds without
        polling the replica.
        """
        served = slot.current
        if newer_than is not None and wait_ms:
            deadline = time.monotonic() + wait_ms / 1000
            while (served is None or served.version <= newer_than) and time.monotonic() < deadline:
                await asyncio.sleep(MODEL_WAIT_STEP_S)
                served = slot.current
        if served is None:
            return unavailable(503, "no model loaded yet")
        running = follower()
        pinned = running.pinned if running else None
        info = ModelInfo(
            model_version=served.version, manifest=served.manifest, pinned=pinned, trained=served.version > 0
        )
        return versioned_response(info, served.version, served.data_watermark_ms)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", responses=NOT_READY)
    async def readyz() -> Response:
        served = slot.current
        if served is None:
            return unavailable(503, "no model loaded yet")
        return JSONResponse({"status": "ready", "model_version": served.version})

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
