"""The inference scheduler: one shared model serves every session's decode requests, off the event loop.

Sessions `submit` a `DecodeRequest` and await its `DecodeResult`. Requests wait in one bounded priority
queue (finalising decodes before partial ones, then first come first served). One worker task per model
replica takes the next request plus, when batching is on (`max_batch` > 1), whatever else is already
queued, up to `max_batch`, and runs them as one `transcriber.decode(batch)` call on its executor thread.
Batching never waits for more requests to arrive, so it adds no latency; it only groups what is waiting.

Overflow policy: when the queue is full, `submit` waits (backpressure on that session's decode loop only).
Each session has at most one request in flight, so the queue holds at most one request per speaker.

A transcriber that raises is logged and answered with an error result: the session carries on.

Admission: a speaker needs at least one decode per `admission_interval` seconds of audio for its captions
to keep up (partials degrade to that cadence under load; finals always run). With `d` the moving average of
model seconds per request, `n` speakers project a utilisation of ``n * d / (admission_interval * replicas)``;
a new speaker is admitted while that stays at or below `admission_headroom`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from streamer.engines.base import DecodeRequest, DecodeResult, Transcriber
from streamer.server.metrics import DECODE_BUCKETS, Histogram

logger = logging.getLogger(__name__)

EWMA_WEIGHT = 0.2
"""Weight of the newest decode in the moving average of seconds per request."""
BUSY_WINDOW = 10.0
"""Seconds over which the model's busy fraction is reported."""
FINAL_PRIORITY = 0
PARTIAL_PRIORITY = 1


@dataclass(order=True, slots=True)
class _Job:
    priority: int
    seq: int
    request: DecodeRequest = field(compare=False)
    future: asyncio.Future[DecodeResult] = field(compare=False)
    queued_at: float = field(compare=False, default=0.0)


@dataclass(slots=True)
class SchedulerStats:
    decode_seconds: Histogram = field(default_factory=lambda: Histogram(DECODE_BUCKETS))
    """Wall time of each `decode` call (one batch)."""
    wait_seconds: Histogram = field(default_factory=lambda: Histogram(DECODE_BUCKETS))
    """Time requests spent queued."""
    requests: int = 0
    batches: int = 0
    failures: int = 0
    audio_seconds: float = 0.0
    seconds_per_request: float | None = None


class InferenceScheduler:
    def __init__(
        self,
        transcriber: Transcriber,
        *,
        max_batch: int = 1,
        queue_size: int = 64,
        replicas: int = 1,
        admission_interval: float = 3.0,
        admission_headroom: float = 0.9,
    ) -> None:
        self.transcriber = transcriber
        self.max_batch = max_batch
        self.replicas = replicas
        self.admission_interval = admission_interval
        self.admission_headroom = admission_headroom
        self.stats = SchedulerStats()
        self._queue: asyncio.PriorityQueue[_Job] = asyncio.PriorityQueue(maxsize=queue_size)
        self._seq = itertools.count()
        self._executor = ThreadPoolExecutor(max_workers=replicas, thread_name_prefix="decode")
        self._workers: list[asyncio.Task[None]] = []
        self._busy: deque[tuple[float, float]] = deque()  # (end, duration) of recent decode calls
        self._running = 0

    def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(i), name=f"decode-{i}") for i in range(self.replicas)
            ]

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        while not self._queue.empty():
            job = self._queue.get_nowait()
            job.future.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, request: DecodeRequest) -> DecodeResult:
        """Queues the request and waits for its result (never raises for a model failure)."""
        loop = asyncio.get_running_loop()
        priority = FINAL_PRIORITY if request.final else PARTIAL_PRIORITY
        job = _Job(priority, next(self._seq), request, loop.create_future(), time.perf_counter())
        await self._queue.put(job)
        return await job.future

    # -- load -----------------------------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> int:
        return self._running

    def busy_fraction(self) -> float:
        now = time.perf_counter()
        self._expire(now)
        busy = sum(min(duration, BUSY_WINDOW) for _, duration in self._busy)
        return min(1.0, busy / (BUSY_WINDOW * self.replicas))

    def projected_load(self, speakers: int) -> float:
        """Projected model utilisation with `speakers` live speakers (0 before the first decode)."""
        per_request = self.stats.seconds_per_request
        if per_request is None:
            return 0.0
        return speakers * per_request / (self.admission_interval * self.replicas)

    def admits(self, speakers_now: int) -> bool:
        """Whether one more speaker keeps everyone within real time."""
        return self.projected_load(speakers_now + 1) <= self.admission_headroom

    # -- worker ---------------------------------------------------------------------------------------------

    def _take_batch(self, first: _Job) -> list[_Job]:
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _work(self, worker: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._take_batch(await self._queue.get())
            started = time.perf_counter()
            for job in batch:
                self.stats.wait_seconds.observe(started - job.queued_at)
            self._running += len(batch)
            try:
                results = await loop.run_in_executor(self._executor, self._decode, [j.request for j in batch])
            finally:
                self._running -= len(batch)
            elapsed = time.perf_counter() - started
            self._account(batch, elapsed)
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)

    def _decode(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        """Runs on the executor thread."""
        try:
            results = list(self.transcriber.decode(requests))
            if len(results) != len(requests):
                raise RuntimeError(
                    f"transcriber returned {len(results)} results for {len(requests)} requests"
                )
            return results
        except Exception as exc:  # the model is I/O: any failure becomes an error result for the sessions
            logger.exception("decode of a batch of %d failed", len(requests))
            self.stats.failures += 1
            return [DecodeResult(r.stream_id, r.request_id, (), None, error=str(exc)) for r in requests]

    def _account(self, batch: list[_Job], elapsed: float) -> None:
        stats = self.stats
        stats.decode_seconds.observe(elapsed)
        stats.batches += 1
        stats.requests += len(batch)
        stats.audio_seconds += sum(j.request.duration for j in batch)
        per_request = elapsed / len(batch)
        previous = stats.seconds_per_request
        stats.seconds_per_request = (
            per_request if previous is None else (1 - EWMA_WEIGHT) * previous + EWMA_WEIGHT * per_request
        )
        now = time.perf_counter()
        self._busy.append((now, elapsed))
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._busy and self._busy[0][0] < now - BUSY_WINDOW:
            self._busy.popleft()
