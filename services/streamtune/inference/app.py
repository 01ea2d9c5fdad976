"""Assemble the FastAPI application: routes, request metrics, and the model follower's lifetime.

Nothing heavy happens at import or construction: the model loads in the follower thread after
start-up, and ``/readyz`` answers 503 until it has.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamtune.inference.follower import VersionFollower
from streamtune.inference.loading import ServedModel
from streamtune.inference.schemas import PredictResponse, build_request_models
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics

logger = logging.getLogger(__name__)

VERSION_HEADER = "X-Model-Version"
WATERMARK_HEADER = "X-Data-Watermark-Ms"


def create_app(
    slot: ModelSlot[ServedModel],
    metrics: ServingMetrics,
    start_follower: Callable[[], VersionFollower] | None = None,
    max_instances: int = 256,
    max_text_chars: int = 4096,
) -> FastAPI:
    """The inference app; ``start_follower`` starts the thread that loads and swaps versions."""
    models = build_request_models(max_instances, max_text_chars)
    PredictRequest = models.PredictRequest  # noqa: N806 - a class, built for these limits
    # One inference thread: torch parallelises each forward over the cores already, and a
    # single queue keeps concurrent requests from thrashing the CPU caches.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamtune-infer")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        follower = start_follower() if start_follower else None
        app.state.follower = follower
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()
                follower.join(timeout=10)
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="streamtune inference", version="1", lifespan=lifespan)

    @app.middleware("http")
    async def record_latency(request: Request, call_next):  # noqa: ANN001, ANN202
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        metrics.request_seconds.labels(endpoint=endpoint, status=str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    def not_ready() -> JSONResponse:
        return JSONResponse({"detail": "no model loaded yet"}, status_code=503, headers={"Retry-After": "1"})

    def version_headers(served: ServedModel, response: Response) -> None:
        response.headers[VERSION_HEADER] = str(served.version)
        if served.data_watermark_ms is not None:
            response.headers[WATERMARK_HEADER] = str(served.data_watermark_ms)

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest, response: Response):  # type: ignore[valid-type]
        served = slot.current  # this request finishes on this version, whatever swaps meanwhile
        if served is None:
            return not_ready()
        texts = [instance.text for instance in body.instances]
        contexts = [instance.context for instance in body.instances]
        loop = asyncio.get_running_loop()
        scores = await loop.run_in_executor(executor, served.predict, texts, contexts)
        metrics.predictions.inc(len(scores))
        version_headers(served, response)
        return PredictResponse(model_version=served.version, predictions=[{"score": s} for s in scores])

    @app.get("/v1/model")
    async def model_info(response: Response):
        served = slot.current
        if served is None:
            return not_ready()
        version_headers(served, response)
        return {"model_version": served.version, "manifest": served.manifest}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        served = slot.current
        if served is None:
            return not_ready()
        return {"status": "ready", "model_version": served.version}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
