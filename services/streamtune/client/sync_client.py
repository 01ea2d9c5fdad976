"""The blocking client: one kept-alive ``httpx.Client`` per :class:`Client`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import httpx

from streamtune.client import protocol
from streamtune.client.protocol import Call, Candidate, Instance, T
from streamtune.client.retry import Attempts, RetryPolicy
from streamtune.client.types import ModelInfo, ModelsListing, PinState, Predictions, Ranking


class Client:
    """Calls one streamtune inference server (or the load balancer in front of replicas).

    Parameters
    ----------
    base_url
        E.g. ``http://127.0.0.1:8000``.
    token
        ``STREAMTUNE_ADMIN_TOKEN``, for :meth:`pin`, :meth:`unpin` (and :meth:`models` when the
        server keeps model information private).
    timeout_s
        Per request: connecting, and waiting for each part of the answer.
    retry
        Retries of 429/503 answers and refused connections (bounded, honouring ``Retry-After``).

    Errors are :class:`~streamtune.client.errors.ServerError` subclasses carrying the server's
    message, or :class:`~streamtune.client.errors.ServerUnreachableError`.

    >>> with Client("http://127.0.0.1:8000") as client:  # doctest: +SKIP
    ...     client.predict([("a wonderful film", "likes drama")]).scores
    [0.73]
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def predict(self, instances: Iterable[Instance]) -> Predictions:
        """Scores of texts, (text, context) pairs or ``{"text", "context"}`` dicts."""
        return self._call(protocol.predict_call(instances))

    def rank(self, candidates: Iterable[Candidate], context: str | None = None, top_k: int | None = None) -> Ranking:
        """Candidates ((id, text) pairs) best first for ``context``, at most ``top_k``."""
        return self._call(protocol.rank_call(candidates, context, top_k))

    def model(self, newer_than: int | None = None, wait_s: float = 0.0) -> ModelInfo:
        """The version this replica serves, with its manifest; with ``newer_than``, the server
        answers as soon as it serves a version above it, or after ``wait_s`` (keep it below
        ``timeout_s``) with the version still served."""
        return self._call(protocol.model_call(newer_than, wait_s))

    def models(self) -> ModelsListing:
        """Every version in the store with its training metrics."""
        return self._call(protocol.MODELS_CALL)

    def pin(self, version: int) -> PinState:
        """Serve ``version`` on this replica until :meth:`unpin` (admin token needed)."""
        return self._call(protocol.pin_call(version))

    def unpin(self) -> PinState:
        """Follow the store's latest version again (admin token needed)."""
        return self._call(protocol.UNPIN_CALL)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, call: Call[T]) -> T:
        attempts = Attempts(self.retry)
        while True:
            attempts.start()
            try:
                response = self._http.request(call.method, call.path, json=call.body)
            except httpx.TransportError as error:
                delay = attempts.after_failure(error, f"{call.method} {self.base_url}{call.path}")
            else:
                delay = attempts.after_answer(response.status_code, response.headers.get("Retry-After"))
                if delay is None:
                    return call.parse(response)
            self._sleep(delay)
