"""The asyncio client: the calls of :class:`~streamtune.client.Client`, awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import httpx

from streamtune.client import protocol
from streamtune.client.protocol import Call, Candidate, Instance, T
from streamtune.client.retry import Attempts, RetryPolicy
from streamtune.client.types import ModelInfo, ModelsListing, PinState, Predictions, Ranking


class AsyncClient:
    """Like :class:`~streamtune.client.Client` (same parameters, results and errors), for
    asyncio code: one ``httpx.AsyncClient``; close it with ``aclose()`` or ``async with``."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)

    async def predict(self, instances: Iterable[Instance]) -> Predictions:
        return await self._call(protocol.predict_call(instances))

    async def rank(
        self, candidates: Iterable[Candidate], context: str | None = None, top_k: int | None = None
    ) -> Ranking:
        return await self._call(protocol.rank_call(candidates, context, top_k))

    async def model(self, newer_than: int | None = None, wait_s: float = 0.0) -> ModelInfo:
        return await self._call(protocol.model_call(newer_than, wait_s))

    async def models(self) -> ModelsListing:
        return await self._call(protocol.MODELS_CALL)

    async def pin(self, version: int) -> PinState:
        return await self._call(protocol.pin_call(version))

    async def unpin(self) -> PinState:
        return await self._call(protocol.UNPIN_CALL)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _call(self, call: Call[T]) -> T:
        attempts = Attempts(self.retry)
        while True:
            attempts.start()
            try:
                response = await self._http.request(call.method, call.path, json=call.body)
            except httpx.TransportError as error:
                delay = attempts.after_failure(error, f"{call.method} {self.base_url}{call.path}")
            else:
                delay = attempts.after_answer(response.status_code, response.headers.get("Retry-After"))
                if delay is None:
                    return call.parse(response)
            await self._sleep(delay)
