"""ASGI middleware of the inference app: request body limits, and latency per route.

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which costs a task and a stream per
request: at hundreds of requests a second on two cores that overhead shows in the latency.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamtune.metrics import ServingMetrics

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_json(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type, parameters (charset) allowed."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class BodyLimits:
    """Refuse request bodies over ``max_bytes`` (413) and bodies that are not JSON (415) before
    any parsing; a body without ``Content-Length`` is counted as it streams in.

    ``on_refused`` is told the reason of each refusal (for the rejected-requests metric).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, on_refused: Callable[[str], object]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send, 413, f"request body over {self.max_bytes} bytes")
            return
        body = await self._read_body(receive)
        if body is None:
            await self._refuse(send, 413, f"request body over {self.max_bytes} bytes")
            return
        if body and not is_json(headers.get("content-type")):
            await self._refuse(send, 415, "request bodies must be JSON (Content-Type: application/json)")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it exceeds the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        self.on_refused("body_too_large" if status == 413 else "unsupported_media_type")
        payload = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A receive callable that yields the already-read body, then defers to the real one."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class RequestTimer:
    """Observe every request's latency, labelled with its route template and status code."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.metrics.request_seconds.labels(endpoint=endpoint, status=str(status)).observe(
                time.perf_counter() - started
            )
