"""What waits in the dynamic batcher's queue: scoring requests and worker tasks, and how an
answer reaches the event loop that waits for it."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """Scores of one request and the version that produced them."""

    version: int
    data_watermark_ms: int | None
    scores: list[float]


@dataclass
class PendingRequest:
    """One request's rows waiting to be scored, and where its answer goes."""

    texts: Sequence[str]
    contexts: Sequence[str | None]
    future: asyncio.Future[Scored]
    loop: asyncio.AbstractEventLoop
    client: str = ""
    deadline: float = math.inf  # monotonic time after which nobody waits for the answer
    arrived: float = field(default_factory=time.monotonic)

    @property
    def rows(self) -> int:
        return len(self.texts)


@dataclass
class WorkerTask:
    """A function to run on the worker between two batches (a warm-up)."""

    function: Callable[[], object]
    result: Future = field(default_factory=Future)


def settle(request: PendingRequest, result: Scored | None = None, error: BaseException | None = None) -> None:
    """Complete a request's future from the worker thread, on its event loop."""

    def complete() -> None:
        if request.future.done():
            return
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(result)

    try:
        request.loop.call_soon_threadsafe(complete)
    except RuntimeError:  # the loop is closed: nobody waits for this answer any more
        logger.debug("dropped an answer for a closed event loop")
