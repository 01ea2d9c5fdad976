"""Assemble the FastAPI application: routers, middleware, error answers, and the lifetimes of
the batcher and the model follower.

Nothing heavy happens at import or construction: the model loads in the follower thread after
start-up, and ``/readyz`` answers 503 until it has.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware

from streamtune.errors import ModelNotReadyError, QueueFullError
from streamtune.inference.admin import Pinning, admin_router
from streamtune.inference.admission import ShedError
from streamtune.inference.admission_gate import AdmissionGate, DoorPolicy
from streamtune.inference.app_parts import ApiOptions, ServingParts
from streamtune.inference.follower import VersionFollower
from streamtune.inference.middleware import BodyLimits, RequestTimer
from streamtune.inference.oip import InferenceContentType, RetainedVersions, oip_router
from streamtune.inference.page import add_status_page
from streamtune.inference.routes import (
    VERSION_HEADER,
    WATERMARK_HEADER,
    client_id,
    deadline_from,
    scoring_router,
    status_router,
    unavailable,
)
from streamtune.inference.schemas import build_request_models
from streamtune.inference.validation import render_errors

logger = logging.getLogger(__name__)

# The v2 protocol's infer route as the latency metric names it (the model name a parameter).
OIP_INFER = "/v2/models/{name}/infer"


def create_app(parts: ServingParts, api: ApiOptions | None = None) -> FastAPI:
    """The inference app, serving with ``parts``, presented as ``api`` says (default:
    :class:`ApiOptions`' defaults)."""
    api = api or ApiOptions()
    slot, metrics, batcher, store, rows = parts.slot, parts.metrics, parts.batcher, parts.store, parts.rows
    start_follower, limits, model_name = parts.start_follower, api.limits, api.model_name
    rejected = metrics.requests_rejected

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()  # first: the follower's first load warms up on the batcher's worker
        app.state.follower = start_follower() if start_follower else None
        try:
            yield
        finally:
            if app.state.follower is not None:
                app.state.follower.stop()
                app.state.follower.join(timeout=10)
            batcher.stop()

    app = FastAPI(title="streamtune inference", version="1", lifespan=lifespan)
    app.state.follower = None
    app.state.batcher = batcher

    def follower() -> VersionFollower | None:
        return app.state.follower

    app.add_middleware(
        BodyLimits, max_bytes=limits.max_request_bytes, on_refused=lambda reason: rejected.labels(reason).inc()
    )
    app.add_middleware(InferenceContentType)  # outside the body limits: it only names a missing type
    # Outside both: an overloaded server refuses before reading, parsing or validating anything.
    gated = {"/v1/predict": "/v1/predict", "/v1/rank": "/v1/rank", f"/v2/models/{model_name}/infer": OIP_INFER}
    door = DoorPolicy(gated, batcher.admit, client_id, deadline_from, lambda reason: rejected.labels(reason).inc())
    app.add_middleware(AdmissionGate, policy=door)
    if api.cors_origins:
        # Outside the body limits, so a browser can read their 413/415 too. No credentials: the
        # API has no cookies, and the admin token is not for browsers.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(api.cors_origins),
            allow_methods=["GET", "POST"],
            allow_credentials=False,
            expose_headers=[VERSION_HEADER, WATERMARK_HEADER, "Retry-After"],
        )
    app.add_middleware(RequestTimer, metrics=metrics)  # added last: outermost, so it times refusals too
    models = build_request_models(limits.max_instances, limits.max_text_chars, ids_alone=rows is not None)
    app.include_router(scoring_router(batcher, models, rows))
    app.include_router(status_router(slot, follower, metrics))
    app.include_router(admin_router(Pinning(store, slot, metrics), follower, api.admin_token, api.public_model_info))
    retained = RetainedVersions(store, parts.load_version)
    app.include_router(oip_router(model_name, parts, retained, limits))
    add_status_page(app, api.public_model_info)

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, error: QueueFullError) -> JSONResponse:
        rejected.labels("queue_full").inc()
        return unavailable(429, f"the server is at capacity ({error}); retry shortly")

    @app.exception_handler(ShedError)
    async def shed(request: Request, error: ShedError) -> JSONResponse:
        rejected.labels(error.reason).inc()
        return JSONResponse(
            {"detail": str(error)}, status_code=error.status, headers={"Retry-After": str(error.retry_after_s)}
        )

    @app.exception_handler(ModelNotReadyError)
    async def not_ready(request: Request, error: ModelNotReadyError) -> JSONResponse:
        rejected.labels("not_ready").inc()
        return unavailable(503, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        rejected.labels("invalid").inc()
        return JSONResponse({"detail": render_errors(error.errors())}, status_code=422)

    return app
