"""The evaluation's view of one inference server, on top of :mod:`streamtune.client`: scoring
with bounded retries that honour ``Retry-After``, and waiting for a version to be served."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streamtune.client import Client, RetryPolicy, ServerError, StreamtuneClientError
from streamtune.evaluation.errors import EvaluationError

# 429 (queue full) and 503 (swapping, starting) pass within seconds on a healthy server; a minute
# of them means something is wrong, and the evaluation should say so rather than hang.
SCORING_RETRIES = RetryPolicy(attempts=60, backoff_s=0.2, max_delay_s=5.0)
# How long one ``/v1/model`` request may wait in the server for a newer version: short enough to
# notice a dead child (``check``) within a second.
LONG_POLL_S = 1.0


@dataclass(frozen=True)
class ScoredBatch:
    """The server's answer for one request: which version scored it, and the scores."""

    version: int
    data_watermark_ms: int | None
    scores: list[float]


class ServerClient:
    """Calls one inference server on the loopback interface."""

    def __init__(
        self, port: int, host: str = "127.0.0.1", timeout_s: float = 300.0, retry: RetryPolicy = SCORING_RETRIES
    ) -> None:
        self.host = host
        self.port = port
        url = f"http://{host}:{port}"
        self._scoring = Client(url, timeout_s=timeout_s, retry=retry)
        self._status = Client(url, timeout_s=timeout_s, retry=RetryPolicy(attempts=1))  # callers poll

    def predict(self, instances: Sequence[dict[str, str | None]]) -> ScoredBatch:
        """``POST /v1/predict``; 429 and 503 are retried, a bounded number of times."""
        try:
            scored = self._scoring.predict(instances)
        except StreamtuneClientError as error:
            raise EvaluationError(f"server on port {self.port} refused a prediction: {error}") from error
        return ScoredBatch(scored.model_version, scored.data_watermark_ms, scored.scores)

    def model(self, newer_than: int | None = None, wait_s: float = 0.0) -> tuple[int, dict[str, Any]] | None:
        """``GET /v1/model``: the served version and its manifest, or None before one is loaded;
        with ``newer_than``, answered once a newer version is served or after ``wait_s``."""
        try:
            info = self._status.model(newer_than, wait_s)
        except ServerError:
            return None
        return info.model_version, info.manifest

    def wait_for_model(
        self,
        accept: Callable[[int, dict[str, Any]], bool],
        timeout_s: float,
        what: str,
        check: Callable[[], None] = lambda: None,
        poll_s: float = 0.05,
    ) -> tuple[int, dict[str, Any]]:
        """Ask ``/v1/model`` until ``accept(version, manifest)``; ``check`` raises if a process
        this depends on has died, so a crash is reported at once rather than as a timeout.

        Once a version is served, each further request waits in the server (up to
        :data:`LONG_POLL_S`) for a version above the one just refused, so a new version is seen
        within milliseconds of its swap without polling; ``poll_s`` spaces the requests while
        the server is not up or has no model yet."""
        deadline = time.monotonic() + timeout_s
        refused: int | None = None
        while True:
            check()
            remaining = deadline - time.monotonic()
            try:
                served = self.model(refused, min(LONG_POLL_S, max(remaining, 0.0)))
            except StreamtuneClientError:
                served = None  # not listening yet
            if served is not None and accept(*served):
                return served
            if time.monotonic() > deadline:
                raise EvaluationError(
                    f"timed out after {timeout_s:.0f} s waiting for {what} (now serving {served and served[0]})"
                )
            if served is None:
                time.sleep(poll_s)
            else:
                refused = served[0]

    def close(self) -> None:
        self._scoring.close()
        self._status.close()
