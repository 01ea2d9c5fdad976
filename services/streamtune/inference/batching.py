"""Dynamic batching: requests that arrive together share forward passes.

The event loop never runs the model. A request's rows go into a bounded queue and the handler
awaits a future; one worker thread takes the oldest request, waits at most ``max_wait_s`` from
its arrival for more (never beyond ``max_batch`` rows), and scores them together — the delayed
batching of Clipper (Crankshaw et al., 2017, "Clipper: A Low-Latency Online Prediction Serving
System", NSDI). It waits only while at least one more request is expected within the window
(:class:`ArrivalRate`): a lone client is not made to wait for company that never comes. While
the worker is busy, requests gather by themselves.

The model is read once per batch, so a swap between two batches never mixes versions inside
one, and every answer carries the version that produced its scores. A request is never split
across batches. Admission control (:mod:`streamtune.inference.admission`) refuses a request at
the door when the rows ahead of it, at the scoring rate the worker measures batch by batch,
would keep it waiting past the queue budget or its deadline; ``max_queued`` rows is a hard
ceiling besides (:class:`QueueFullError`, HTTP 429). A request whose client has disconnected or
whose deadline has passed by the time its batch forms is dropped there, never scored.

Work handed in by :meth:`DynamicBatcher.run_exclusive` (a new version's warm-up) goes to the
head of the queue: under full load it runs after the batch in progress, not after every queued
request, so a swap is not starved by the traffic it is meant to serve.

``workers`` threads take batches from the one queue, each running its forward passes alone
(the server sizes them: :func:`streamtune.inference.backends.threads.forward_plan`). On two
cores, two workers with one thread each keep both cores busy with no OpenMP barrier between
them; one worker with two threads stalls at every barrier whose other thread the scheduler has
descheduled, which on shared cores cost 4x the throughput (``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from streamtune.errors import ModelNotReadyError, QueueFullError
from streamtune.inference.admission import Admission, DeadlinePassedError, ScoringRate
from streamtune.inference.arrivals import ArrivalRate
from streamtune.inference.batch_policy import BatchingPolicy
from streamtune.inference.batch_requests import PendingRequest, Scored, WorkerTask, settle
from streamtune.inference.loading import ServedModel
from streamtune.metrics import ServingMetrics

logger = logging.getLogger(__name__)

T = TypeVar("T")


class DynamicBatcher:
    """Coalesces concurrent scoring requests into forward passes on its worker threads."""

    def __init__(
        self,
        current: Callable[[], ServedModel | None],
        metrics: ServingMetrics,
        policy: BatchingPolicy | None = None,
        admission: Admission | None = None,
    ) -> None:
        policy = policy or BatchingPolicy()
        self._current = current
        self._metrics = metrics
        self._max_batch = policy.max_batch
        self._max_wait_s = policy.max_wait_s
        self._max_queued = policy.max_queued
        self._admission = admission
        self._default_deadline_s = policy.default_deadline_s
        self.rate = ScoringRate()
        self._queue: collections.deque[PendingRequest | WorkerTask] = collections.deque()
        self._queued_rows = 0
        self._scoring_rows = 0  # rows of the batches being scored now
        self._client_rows: collections.Counter[str] = collections.Counter()
        self._ready = threading.Condition()
        self._stopping = False
        self._arrivals = ArrivalRate()
        self._workers = [
            threading.Thread(target=self._run, name=f"streamtune-batcher-{index}", daemon=True)
            for index in range(policy.workers)
        ]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then end the worker."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        for worker in self._workers:
            if worker.is_alive():
                worker.join(timeout_s)

    @property
    def queued_rows(self) -> int:
        """Instances waiting for a forward pass."""
        return self._queued_rows

    async def score(
        self,
        texts: Sequence[str],
        contexts: Sequence[str | None],
        client: str = "",
        deadline_s: float | None = None,
    ) -> Scored:
        """Scores for (text, context) pairs, all from one version.

        ``client`` names who asks (for its share of the queue); ``deadline_s`` is how long it
        will wait for the answer (default: the batcher's). Raises a
        :class:`~streamtune.inference.admission.ShedError` when admission control refuses or
        drops the request, :class:`QueueFullError` when the queue is full and
        :class:`ModelNotReadyError` when no version is loaded yet or the batcher is stopping.
        """
        loop = asyncio.get_running_loop()
        deadline_s = self._default_deadline_s if deadline_s is None else deadline_s
        request = PendingRequest(texts, contexts, loop.create_future(), loop, client)
        request.deadline = request.arrived + deadline_s
        with self._ready:
            if self._stopping:
                raise ModelNotReadyError("the server is shutting down")
            if self._queued_rows + request.rows > self._max_queued and self._queued_rows > 0:
                raise QueueFullError(f"{self._queued_rows} instances are already waiting")
            self._check_admission(request.rows, client, deadline_s)
            self._queue.append(request)
            self._queued_rows += request.rows
            self._client_rows[client] += request.rows
            self._arrivals.update(request.arrived)
            self._metrics.inference_queue_rows.set(self._queued_rows)
            self._ready.notify()
        return await request.future

    def admit(self, client: str = "", deadline_s: float | None = None, rows: int = 1) -> None:
        """Raise the :class:`~streamtune.inference.admission.ShedError` that :meth:`score`
        would raise for ``rows`` from ``client`` now, or return; nothing is queued. The door
        asks it before a request's body is parsed, so a shed costs no parsing."""
        with self._ready:
            self._check_admission(rows, client, self._default_deadline_s if deadline_s is None else deadline_s)

    def _check_admission(self, rows: int, client: str, deadline_s: float) -> None:
        if self._admission is None:
            return
        # A request arriving at a random moment finds the batches in progress half done.
        ahead = self._queued_rows + self._scoring_rows / 2
        self._admission.check(rows, ahead, self._client_rows[client], self.rows_per_second, deadline_s)

    def run_exclusive(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the worker between two batches and return its result; called
        from another thread (the one loading a version). Runs inline when no worker runs."""
        if threading.current_thread() in self._workers or not any(w.is_alive() for w in self._workers):
            return function()
        task = WorkerTask(function)
        with self._ready:
            if self._stopping:
                return function()
            self._queue.appendleft(task)  # ahead of queued requests: see the module doc
            self._ready.notify()
        return task.result.result()

    # --- worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        while (work := self._next()) is not None:
            if isinstance(work, WorkerTask):
                self._run_task(work)
            else:
                self._score_batch(work)

    def _next(self) -> list[PendingRequest] | WorkerTask | None:
        """The next task, or the next batch once it is full or its oldest request has waited
        ``max_wait_s``; None when stopping with nothing left."""
        with self._ready:
            while not self._queue and not self._stopping:
                self._ready.wait()
            if not self._queue:
                return None
            head = self._queue[0]
            if isinstance(head, WorkerTask):
                return self._queue.popleft()  # type: ignore[return-value]
            deadline = head.arrived + self._max_wait_s
            while self._queued_rows < self._max_batch and not self._stopping:
                now = time.monotonic()
                if now >= deadline or self._arrivals.expected_within(self._max_wait_s, now) < 1.0:
                    break
                self._ready.wait(deadline - now)
            batch: list[PendingRequest] = []
            rows = 0
            now = time.monotonic()
            limit = self._batch_limit()
            while self._queue and isinstance(self._queue[0], PendingRequest):
                request = self._queue[0]
                if batch and rows + request.rows > limit:
                    break
                self._queue.popleft()
                self._queued_rows -= request.rows
                self._client_rows[request.client] -= request.rows
                if not self._client_rows[request.client]:
                    del self._client_rows[request.client]
                if self._drop_if_dead(request, now):
                    continue
                batch.append(request)
                rows += request.rows
            self._scoring_rows += rows
            self._metrics.inference_queue_rows.set(self._queued_rows)
            return batch

    def _batch_limit(self) -> int:
        """Rows this batch may take: the worker's share of the queue (at most ``max_batch``).

        A worker that took the whole queue would score it alone while the others idle, and its
        last request would wait for every row of that batch: about ``workers`` times the wait
        admission control estimated from all workers' rate. Sharing keeps every worker busy
        and each batch's time near the estimate (called under the lock)."""
        share = math.ceil(self._queued_rows / len(self._workers))
        return max(1, min(self._max_batch, share))

    def _drop_if_dead(self, request: PendingRequest, now: float) -> bool:
        """Settle and report a request nobody waits for any more (client gone, deadline passed)."""
        if request.future.done():  # cancelled: the client disconnected (counted where it was noticed)
            return True
        if now > request.deadline:
            waited = now - request.arrived
            error = DeadlinePassedError(f"deadline passed after {waited:.3f} s in the queue", "deadline_passed")
            self._metrics.requests_rejected.labels(error.reason).inc()
            settle(request, error=error)
            return True
        return False

    def _score_batch(self, batch: list[PendingRequest]) -> None:
        started = time.perf_counter()
        try:
            self._score_live(batch)
        finally:
            rows = sum(request.rows for request in batch)
            busy = time.perf_counter() - started
            with self._ready:  # the rate is read under the lock by admission
                self._scoring_rows -= rows
                self.rate.record(rows, busy)
            self._metrics.inference_busy_seconds.inc(busy)
            if self.rows_per_second is not None:
                self._metrics.inference_rows_per_second.set(self.rows_per_second)

    @property
    def rows_per_second(self) -> float | None:
        """Rows all workers together score per second (each worker's measured rate, times the workers)."""
        rate = self.rate.rows_per_second
        return None if rate is None else rate * len(self._workers)

    def _score_live(self, batch: list[PendingRequest]) -> None:
        live = [request for request in batch if not request.future.done()]  # cancelled: client gone
        if not live:
            return
        served = self._current()  # one reference for the whole batch: no version mixing
        if served is None:
            for request in live:
                settle(request, error=ModelNotReadyError("no model loaded yet"))
            return
        texts = [text for request in live for text in request.texts]
        contexts = [context for request in live for context in request.contexts]
        owner = [index for index, request in enumerate(live) for _ in range(request.rows)]
        starts = [0, *itertools.accumulate(request.rows for request in live)]
        scores = [0.0] * len(texts)
        missing = [request.rows for request in live]
        try:
            # A request is answered as soon as its last row is scored: short rows come first.
            for rows, group_scores in served.score_groups(texts, contexts, self._max_batch):
                self._metrics.inference_batch_size.observe(len(rows))
                for row, score in zip(rows, group_scores, strict=True):
                    scores[row] = score
                    missing[owner[row]] -= 1
                for index in {owner[row] for row in rows}:
                    if missing[index] == 0:
                        part = scores[starts[index] : starts[index + 1]]
                        settle(live[index], Scored(served.version, served.data_watermark_ms, part))
        except Exception as error:  # one bad batch answers its requests; the worker goes on
            logger.exception("a batch of %d instances failed on version %d", len(texts), served.version)
            for index, request in enumerate(live):
                if missing[index]:
                    settle(request, error=error)
            return
        self._metrics.predictions.inc(len(texts))

    @staticmethod
    def _run_task(task: WorkerTask) -> None:
        try:
            task.result.set_result(task.function())
        except BaseException as error:  # handed to the waiting thread, which re-raises it
            task.result.set_exception(error)
