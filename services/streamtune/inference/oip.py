"""The Open Inference Protocol (v2) REST API beside ``/v1``: what KServe, Seldon MLServer and
Triton speak, so their clients and gateways can call streamtune.

The model is one: ``STREAMTUNE_MODEL_NAME`` (default ``streamtune``). Inputs are BYTES tensors
``text`` (required), ``context``, ``user_id`` and ``item_id`` (optional, one element per row);
the output is the FP32 tensor ``score``. ``/v2/models/{name}/infer`` scores with the served
version through the dynamic batcher, exactly like ``/v1/predict``;
``/versions/{v}/infer`` scores with version ``v`` while the store still retains it. Errors
answer ``{"error": "..."}`` as the protocol prescribes.

No ``from __future__ import annotations``: FastAPI evaluates the route annotations.
"""

import asyncio
import threading
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from streamtune import __version__
from streamtune.checkpoints import CheckpointStore
from streamtune.errors import ModelLoadError, ModelNotReadyError, QueueFullError
from streamtune.inference.app_parts import ServingLimits, ServingParts
from streamtune.inference.loading import ServedModel
from streamtune.inference.oip_tensors import (
    CONTEXT,
    HEADER_LENGTH,
    ITEM_ID,
    SCORE,
    TEXT,
    USER_ID,
    TensorError,
    decode_request,
    encode_response,
)
from streamtune.inference.routes import RETRY_AFTER_S, VERSION_HEADER


class InferenceContentType:
    """ASGI middleware: a v2 request without a Content-Type is taken as JSON, since the protocol
    says the body is JSON (Triton's clients send none); outside the body limits, which refuse
    bodies that do not say they are JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v2/"):
            headers = scope["headers"]
            if not any(key == b"content-type" for key, _ in headers):
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def error(status: int, message: str, retry: bool = False) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class RetainedVersions:
    """Versions other than the served one, loaded on demand for ``/versions/{v}/infer``; the
    last one asked for is kept, so a client comparing two versions loads each once."""

    def __init__(self, store: CheckpointStore, load: Callable[[int], ServedModel] | None) -> None:
        self._store = store
        self._load = load
        self._lock = threading.Lock()
        self._kept: ServedModel | None = None

    def versions(self) -> list[int]:
        """Every version that can be asked for: the base model (0) and the store's versions."""
        return [0, *self._store.versions()]

    def exists(self, version: int) -> bool:
        return version == 0 or version in self._store.versions()

    def get(self, version: int) -> ServedModel:
        """The loaded ``version``; raises ModelLoadError when it cannot be loaded."""
        if self._load is None:
            raise ModelLoadError("this replica serves only its current version")
        with self._lock:
            if self._kept is None or self._kept.version != version:
                self._kept = self._load(version)
            return self._kept


def oip_router(model_name: str, parts: ServingParts, retained: RetainedVersions, limits: ServingLimits) -> APIRouter:
    """The v2 health, metadata and inference routes of the model ``model_name``; with
    ``parts.rows`` (a hybrid model is served) the ``user_id`` and ``item_id`` inputs reach the
    model, else they are ignored."""
    slot, batcher, rows = parts.slot, parts.batcher, parts.rows
    max_rows, max_chars = limits.max_instances, limits.max_text_chars
    router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])
    bytes_input = {"datatype": "BYTES", "shape": [-1]}

    def metadata() -> dict:
        served = slot.current
        versions = [str(v) for v in retained.versions()] if served else []
        return {
            "name": model_name,
            "versions": versions,
            "platform": "streamtune",
            "inputs": [{"name": name, **bytes_input} for name in (TEXT, CONTEXT, USER_ID, ITEM_ID)],
            "outputs": [{"name": SCORE, "datatype": "FP32", "shape": [-1]}],
            "parameters": {"optional_inputs": [CONTEXT, USER_ID, ITEM_ID]},
        }

    @router.get("")
    async def server_metadata() -> dict:
        """Server name, version and protocol extensions."""
        return {"name": "streamtune", "version": __version__, "extensions": ["binary_tensor_data"]}

    @router.get("/health/live")
    async def live() -> dict:
        return {"live": True}

    @router.get("/health/ready")
    async def ready() -> Response:
        if slot.current is None:
            return error(503, "no model loaded yet", retry=True)
        return JSONResponse({"ready": True})

    @router.get("/models/{name}")
    @router.get("/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        """Inputs and outputs of the model (``text``/``context``/``user_id``/``item_id`` → ``score``)."""
        if name != model_name:
            return error(404, f"unknown model; this server serves {model_name!r}")
        return JSONResponse(metadata())

    @router.get("/models/{name}/ready")
    @router.get("/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        if name != model_name:
            return error(404, f"unknown model; this server serves {model_name!r}")
        if slot.current is None:
            return error(503, "no model loaded yet", retry=True)
        return JSONResponse({"name": model_name, "ready": True})

    @router.post("/models/{name}/infer")
    @router.post("/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        """Score each row of ``text`` (with ``context``) by the served version, or by ``version``."""
        if name != model_name:
            return error(404, f"unknown model; this server serves {model_name!r}")
        try:
            inputs = decode_request(await request.body(), request.headers.get(HEADER_LENGTH), max_rows, max_chars)
        except TensorError as problem:
            return error(400, str(problem))
        texts, contexts = inputs.texts, inputs.contexts
        if rows is not None:
            no_ids = [None] * len(texts)
            users, items = inputs.user_ids or no_ids, inputs.item_ids or no_ids
            texts = [rows.row(*row) for row in zip(users, items, texts, contexts, strict=True)]
            contexts = no_ids
        try:
            if version is None or (slot.current is not None and version == str(slot.current.version)):
                scored = await batcher.score(texts, contexts)
                served_version, scores = scored.version, scored.scores
            else:
                served_version, scores = await _score_retained(version, texts, contexts)
        except QueueFullError as problem:
            return error(429, f"the server is at capacity ({problem}); retry shortly", retry=True)
        except ModelNotReadyError as problem:
            return error(503, str(problem), retry=True)
        except LookupError as problem:
            return error(404, str(problem.args[0]))
        except ModelLoadError as problem:
            return error(409, f"version {version} cannot be served: {problem}")
        body, headers = encode_response(model_name, served_version, scores, inputs.request_id, inputs.binary_output)
        return Response(body, headers={**headers, VERSION_HEADER: str(served_version)})

    async def _score_retained(version: str, texts: list[str], contexts: list[str | None]) -> tuple[int, list[float]]:
        if not version.isdigit() or not retained.exists(int(version)):
            raise LookupError(f"version {version[:20]!r} is not retained in the store")
        model = await asyncio.to_thread(retained.get, int(version))
        # On the batcher's worker, between two batches: one forward pass at a time.
        scores = await asyncio.to_thread(batcher.run_exclusive, lambda: model.predict(texts, contexts))
        return model.version, list(scores)

    return router
