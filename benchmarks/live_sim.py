"""A live stream on this machine, simulated without waiting: audio arrives on its own clock, each decode
takes the time it really took, and events are stamped with the simulated wall time they would appear at.

One stream, one model worker: what a single speaker on an otherwise idle server experiences.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from streamer.config import SAMPLE_RATE, StreamConfig
from streamer.core.session import StreamSession
from streamer.engines.base import DecodeRequest, DecodeResult, SpeechDetector, Transcriber
from streamer.events import CaptionEvent, Final, Partial


@dataclass
class LiveRun:
    events: list[tuple[CaptionEvent, float]] = field(default_factory=list)
    decode_seconds: list[float] = field(default_factory=list)
    audio_seconds: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    final_lag: float = 0.0
    """How far behind the audio the last final came out (seconds after the audio ended)."""

    @property
    def finals(self) -> list[Final]:
        return [e for e, _ in self.events if isinstance(e, Final)]

    @property
    def text(self) -> str:
        return " ".join(f.text for f in self.finals)

    def word_delays(self) -> tuple[list[float], list[float]]:
        """Per final word: (first shown in a partial - word end, final emitted - word end), seconds."""
        first_seen: list[float] = []
        finalized: list[float] = []
        partial_times: dict[int, list[tuple[int, float]]] = {}
        position: dict[int, int] = {}
        for event, at in self.events:
            if isinstance(event, Partial):
                partial_times.setdefault(event.utterance_id, []).append((len(event.text.split()), at))
        for event, at in self.events:
            if not isinstance(event, Final):
                continue
            for word in event.words:
                k = position.get(event.utterance_id, 0)
                position[event.utterance_id] = k + 1
                seen = next((t for n, t in partial_times.get(event.utterance_id, []) if n > k), at)
                first_seen.append(min(seen, at) - word.end)
                finalized.append(at - word.end)
        return first_seen, finalized

    def flicker(self) -> float:
        """Shown words later changed, per final word: between consecutive partials of one utterance, each
        word of the earlier one that does not survive, in order, into the later one counts once (the same
        measure as the WhisperLive harness's)."""
        import difflib

        from streamer.core.agreement import normalize_word

        revised = 0
        previous: dict[int, list[str]] = {}
        for event, _ in self.events:
            if not isinstance(event, Partial):
                continue
            now = [normalize_word(w) for w in event.text.split()]
            before = previous.get(event.utterance_id)
            if before:
                matcher = difflib.SequenceMatcher(a=before, b=now, autojunk=False)
                revised += len(before) - sum(block.size for block in matcher.get_matching_blocks())
            previous[event.utterance_id] = now
        words = sum(len(f.words) for f in self.finals)
        return revised / words if words else float("nan")


@dataclass
class _InFlight:
    result: DecodeResult
    done_at: float


def simulate_live(
    audio: np.ndarray,
    transcriber: Transcriber,
    detector: SpeechDetector,
    config: StreamConfig,
    chunk_seconds: float = 0.1,
) -> LiveRun:
    run = LiveRun(audio_seconds=len(audio) / SAMPLE_RATE)
    session = StreamSession("bench", config, detector.stream())
    chunk = int(chunk_seconds * SAMPLE_RATE)
    in_flight: _InFlight | None = None
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def start(at: float) -> _InFlight | None:
        request: DecodeRequest | None = session.next_request()
        if request is None:
            return None
        t0 = time.perf_counter()
        result = transcriber.decode([request])[0]
        took = time.perf_counter() - t0
        run.decode_seconds.append(took)
        return _InFlight(result, at + took)

    def complete(job: _InFlight) -> _InFlight | None:
        run.events.extend((e, job.done_at) for e in session.on_result(job.result))
        return start(job.done_at)

    for offset in range(0, len(audio), chunk):
        arrival = min(offset + chunk, len(audio)) / SAMPLE_RATE
        while in_flight is not None and in_flight.done_at <= arrival:
            in_flight = complete(in_flight)
        run.events.extend((e, arrival) for e in session.feed(audio[offset : offset + chunk]))
        if in_flight is None:
            in_flight = start(arrival)
    end = len(audio) / SAMPLE_RATE
    run.events.extend((e, end) for e in session.finish())
    now = end
    if in_flight is None:
        in_flight = start(now)
    while in_flight is not None:
        now = in_flight.done_at
        in_flight = complete(in_flight)
    run.final_lag = max(0.0, now - end)
    run.cpu_seconds = time.process_time() - cpu0
    run.wall_seconds = time.perf_counter() - wall0
    return run
