"""A small HTTP client for the inference server's REST API, as any application would call it.

Standard library only (``http.client`` with one kept-alive connection), so the evaluation needs
no HTTP package beyond what the server itself installs.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streamtune.evaluation.errors import EvaluationError

WATERMARK_HEADER = "x-data-watermark-ms"  # headers are compared in lower case
_RETRY_STATUSES = {429, 503}  # queue full / no model yet: both say "try again shortly"
_RETRY_PAUSE_S = 0.2


@dataclass(frozen=True)
class ScoredBatch:
    """The server's answer for one request: which version scored it, and the scores."""

    version: int
    data_watermark_ms: int | None
    scores: list[float]


class ServerClient:
    """Calls one inference server on the loopback interface."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 300.0) -> None:
        self.host = host
        self.port = port
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def predict(self, instances: Sequence[dict[str, str | None]]) -> ScoredBatch:
        """``POST /v1/predict``; retried while the server answers 429 or 503."""
        while True:
            status, headers, body = self._request("POST", "/v1/predict", {"instances": list(instances)})
            if status not in _RETRY_STATUSES:
                break
            time.sleep(_RETRY_PAUSE_S)
        if status != 200:
            raise EvaluationError(f"server on port {self.port} answered {status} to a prediction: {body[:300]!r}")
        document = json.loads(body)
        watermark = headers.get(WATERMARK_HEADER)
        return ScoredBatch(
            version=int(document["model_version"]),
            data_watermark_ms=int(watermark) if watermark else None,
            scores=[float(prediction["score"]) for prediction in document["predictions"]],
        )

    def model(self) -> tuple[int, dict[str, Any]] | None:
        """``GET /v1/model``: the served version and its manifest, or None before one is loaded."""
        status, _, body = self._request("GET", "/v1/model")
        if status != 200:
            return None
        document = json.loads(body)
        return int(document["model_version"]), dict(document.get("manifest") or {})

    def wait_for_model(
        self,
        accept: Callable[[int, dict[str, Any]], bool],
        timeout_s: float,
        what: str,
        check: Callable[[], None] = lambda: None,
    ) -> tuple[int, dict[str, Any]]:
        """Poll ``/v1/model`` until ``accept(version, manifest)``; ``check`` raises if a process
        this depends on has died, so a crash is reported at once rather than as a timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            check()
            try:
                served = self.model()
            except (OSError, http.client.HTTPException):
                served = None  # not listening yet
            if served is not None and accept(*served):
                return served
            if time.monotonic() > deadline:
                raise EvaluationError(
                    f"timed out after {timeout_s:.0f} s waiting for {what} (now serving {served and served[0]})"
                )
            time.sleep(0.05)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _request(self, method: str, path: str, payload: object = None) -> tuple[int, dict[str, str], bytes]:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in range(2):  # a kept-alive connection the server closed is reopened once
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self._timeout_s)
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")
