"""Server parts without sockets or the model: the scheduler with a scripted transcriber, the fan-out queue."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np

from streamer.engines.base import DecodeRequest, DecodeResult
from streamer.server.fanout import Subscriber
from streamer.server.metrics import Metrics
from streamer.server.scheduler import InferenceScheduler


class ScriptedTranscriber:
    """Takes `seconds` per call; records the batches it was given; fails on request ids in `fail`."""

    name = "scripted"

    def __init__(self, seconds: float = 0.05, fail: frozenset[int] = frozenset()) -> None:
        self.seconds = seconds
        self.fail = fail
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()

    def decode(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        self.threads.add(threading.current_thread().name)
        self.batches.append([f"{r.stream_id}:{r.request_id}" for r in requests])
        time.sleep(self.seconds)
        if any(r.request_id in self.fail for r in requests):
            raise RuntimeError("model exploded")
        return [DecodeResult(r.stream_id, r.request_id) for r in requests]


def request(stream: str, rid: int, final: bool = False) -> DecodeRequest:
    return DecodeRequest(stream, rid, np.zeros(16000, dtype=np.float32), final=final)


def run_requests(max_batch: int, transcriber: ScriptedTranscriber) -> InferenceScheduler:
    async def scenario() -> InferenceScheduler:
        scheduler = InferenceScheduler(transcriber, max_batch=max_batch)
        scheduler.start()
        results = await asyncio.gather(*(scheduler.submit(request(f"s{i}", i)) for i in range(6)))
        assert [(r.stream_id, r.request_id) for r in results] == [(f"s{i}", i) for i in range(6)]
        await scheduler.close()
        return scheduler

    return asyncio.run(scenario())


def test_decodes_run_off_the_event_loop_one_by_one_without_batching() -> None:
    transcriber = ScriptedTranscriber()
    scheduler = run_requests(1, transcriber)
    assert [len(b) for b in transcriber.batches] == [1] * 6
    assert all(name.startswith("decode") for name in transcriber.threads)
    assert scheduler.stats.requests == 6 and scheduler.stats.batches == 6


def test_batching_groups_waiting_requests() -> None:
    transcriber = ScriptedTranscriber()
    scheduler = run_requests(4, transcriber)
    assert [len(b) for b in transcriber.batches] == [4, 2]  # all six were queued at once
    assert scheduler.stats.requests == 6 and scheduler.stats.batches == 2


def test_finals_go_first_and_failures_become_error_results() -> None:
    transcriber = ScriptedTranscriber(fail=frozenset({2}))

    async def scenario() -> list[DecodeResult]:
        scheduler = InferenceScheduler(transcriber)
        scheduler.start()
        tasks = [asyncio.create_task(scheduler.submit(request("a", 0)))]
        await asyncio.sleep(0.01)  # "a" is running; the next three queue up
        tasks += [
            asyncio.create_task(scheduler.submit(request("b", 1))),
            asyncio.create_task(scheduler.submit(request("c", 2))),
            asyncio.create_task(scheduler.submit(request("d", 3, final=True))),
        ]
        results = await asyncio.gather(*tasks)
        await scheduler.close()
        return results

    results = asyncio.run(scenario())
    assert [b[0] for b in transcriber.batches] == ["a:0", "d:3", "b:1", "c:2"]
    assert results[2].error == "model exploded" and results[1].error is None


def test_admission_projects_load_from_measured_decode_time() -> None:
    transcriber = ScriptedTranscriber(seconds=0.1)

    async def scenario() -> InferenceScheduler:
        scheduler = InferenceScheduler(transcriber, admission_interval=1.0, admission_headroom=0.9)
        scheduler.start()
        assert scheduler.admits(100)  # nothing measured yet
        for i in range(3):
            await scheduler.submit(request("a", i))
        await scheduler.close()
        return scheduler

    scheduler = asyncio.run(scenario())
    per_request = scheduler.stats.seconds_per_request
    assert per_request is not None and 0.09 < per_request < 0.3
    assert scheduler.projected_load(1) == per_request
    limit = int(0.9 / per_request)
    assert scheduler.admits(limit - 1) and not scheduler.admits(limit + 1)


class StuckConnection:
    """A websocket whose peer never reads: every send blocks."""

    def __init__(self) -> None:
        self.closed: tuple[int, str] | None = None
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)
        await asyncio.Event().wait()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def test_slow_viewer_drops_partials_first_then_is_disconnected() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        connection = StuckConnection()
        viewer = Subscriber(connection, "s", "viewer", 8, metrics)  # type: ignore[arg-type]
        writer = asyncio.create_task(viewer.run())
        await asyncio.sleep(0)
        assert viewer.offer("first", essential=True)
        await asyncio.sleep(0)  # the writer is now stuck sending "first"
        for i in range(8):
            assert viewer.offer(f"partial {i}", essential=False)
        assert not viewer.offer("partial 8", essential=False)  # full: a partial is dropped
        assert viewer.offer("final 1", essential=True)  # evicts the oldest partial
        assert metrics.viewer_messages_dropped == 2
        for i in range(7):
            assert viewer.offer(f"final {i + 2}", essential=True)
        assert viewer.pending == 8 and metrics.viewers_dropped_slow == 0
        assert not viewer.offer("final 9", essential=True)  # only finals left: disconnect
        await asyncio.sleep(0.01)
        assert metrics.viewers_dropped_slow == 1
        assert connection.closed is not None and connection.closed[0] == 4499
        assert not viewer.offer("more", essential=True)
        writer.cancel()

    asyncio.run(scenario())
