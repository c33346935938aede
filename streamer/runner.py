"""Drives a `StreamSession` synchronously over a sequence of audio chunks (the file transcriber's loop).

Decodes run as soon as the session asks for them, before more audio is fed: the captions are those a live
stream would get on a machine fast enough to keep up. With `realtime=True` the audio is paced by its own
clock instead, and decodes that take longer than the audio delay the captions as they would live.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from streamer.config import SAMPLE_RATE, StreamConfig
from streamer.core.session import StreamSession
from streamer.engines.base import SpeechDetector, Transcriber
from streamer.events import CaptionEvent, Final


@dataclass(slots=True)
class RunStats:
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    decode_seconds: float = 0.0
    decodes: int = 0
    final_decodes: int = 0
    finals: list[Final] = field(default_factory=list)

    @property
    def speed(self) -> float:
        """Times real time."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


EventSink = Callable[[CaptionEvent, float], None]
"""Called with each event and the stream time at which it was produced."""


def run_stream(
    chunks: Iterable[np.ndarray],
    transcriber: Transcriber,
    detector: SpeechDetector,
    config: StreamConfig,
    on_event: EventSink | None = None,
    *,
    realtime: bool = False,
    stream_id: str = "file",
) -> RunStats:
    session = StreamSession(stream_id, config, detector.stream())
    stats = RunStats()
    started = time.perf_counter()

    def emit(events: list[CaptionEvent]) -> None:
        for event in events:
            if isinstance(event, Final):
                stats.finals.append(event)
            if on_event is not None:
                on_event(event, session.time)

    def drain() -> None:
        while (request := session.next_request()) is not None:
            t0 = time.perf_counter()
            result = transcriber.decode([request])[0]
            stats.decode_seconds += time.perf_counter() - t0
            stats.decodes += 1
            stats.final_decodes += int(request.final)
            emit(session.on_result(result))

    for chunk in chunks:
        if realtime:
            delay = started + stats.audio_seconds - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        stats.audio_seconds += len(chunk) / SAMPLE_RATE
        emit(session.feed(chunk))
        drain()
    emit(session.finish())
    drain()
    stats.wall_seconds = time.perf_counter() - started
    return stats
