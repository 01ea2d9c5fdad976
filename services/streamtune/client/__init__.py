"""Python client of the streamtune inference server.

>>> from streamtune.client import Client
>>> with Client("http://127.0.0.1:8000") as client:  # doctest: +SKIP
...     client.predict(["a wonderful film"]).scores

:class:`Client` (blocking) and :class:`AsyncClient` (asyncio) offer ``predict``, ``rank``,
``model``, ``models``, ``pin`` and ``unpin``, return typed results, retry 429/503 answers a
bounded number of times honouring ``Retry-After``, and raise exceptions carrying the server's
message.
"""

from streamtune.client.async_client import AsyncClient
from streamtune.client.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    ServerError,
    ServerUnreachableError,
    StreamtuneClientError,
)
from streamtune.client.retry import RetryPolicy
from streamtune.client.sync_client import Client
from streamtune.client.types import ModelInfo, ModelsListing, PinState, Predictions, RankedCandidate, Ranking

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "InvalidRequestError",
    "ModelInfo",
    "ModelsListing",
    "NotFoundError",
    "OverloadedError",
    "PinState",
    "Predictions",
    "RankedCandidate",
    "Ranking",
    "RetryPolicy",
    "ServerError",
    "ServerUnreachableError",
    "StreamtuneClientError",
]
