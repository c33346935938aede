"""One stream's pipeline (streamer.core.session) with a scripted VAD and a scripted transcriber.

The speech audio encodes its own position: sample n of the stream (counted from the session's start) has
magnitude (n + 2**15) / 2**21, exact in float32, with alternating sign. So the scripted transcriber can tell
where any window it gets lies in the stream, and answers with the words a script places at those times, just
as a real model would hear the same words in overlapping windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from streamer.config import SAMPLE_RATE, VAD_FRAME_SAMPLES, DecodeConfig, StreamConfig, VadConfig
from streamer.core.session import StreamSession
from streamer.engines.base import DecodedSegment, DecodeRequest, DecodeResult
from streamer.events import CaptionEvent, Final, Partial, SpeechEnded, SpeechStarted, Word

SPOKEN = "Streaming captions should commit every spoken word once, in order, without gaps or repeats."
SENTENCE = tuple(SPOKEN.split())
WORD_STEP = 0.3
WORD_LENGTH = 0.25
CLOCK_OFFSET = 2**15
CLOCK_SCALE = 2**21
SPEECH_RMS = 0.01
CHUNK = 0.1  # seconds of audio per feed(), as a client would send


# -- scripted audio, VAD and transcriber ------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """Speech regions (stream times) and the words spoken in them."""

    regions: tuple[tuple[float, float], ...]
    total: float
    start_time: float = 0.0
    words: tuple[Word, ...] = field(init=False)

    def __post_init__(self) -> None:
        spoken: list[Word] = []
        for begin, end in self.regions:
            t = begin + 0.05
            while t + WORD_LENGTH <= end - 0.05:
                text = SENTENCE[len(spoken) % len(SENTENCE)]
                spoken.append(Word(round(t, 4), round(t + WORD_LENGTH, 4), text))
                t += WORD_STEP
        object.__setattr__(self, "words", tuple(spoken))

    def audio(self) -> np.ndarray:
        n = np.arange(int(round(self.total * SAMPLE_RATE)))
        clock = ((n + CLOCK_OFFSET) / CLOCK_SCALE * np.where(n % 2, -1.0, 1.0)).astype(np.float32)
        times = self.start_time + n / SAMPLE_RATE
        speaking = np.zeros(len(n), dtype=bool)
        for begin, end in self.regions:
            speaking |= (times >= begin) & (times < end)
        return np.where(speaking, clock, np.float32(0.0))

    def window_start(self, audio: np.ndarray) -> float | None:
        """Where a window of this script's audio starts (stream time), if it holds any speech."""
        voiced = np.flatnonzero(audio)
        if not len(voiced):
            return None
        first = int(voiced[0])
        sample = round(abs(float(audio[first])) * CLOCK_SCALE) - CLOCK_OFFSET - first
        return self.start_time + sample / SAMPLE_RATE


class RmsVad:
    """Speech probability from frame loudness: 0.9 above `SPEECH_RMS`, else 0.05."""

    def probability(self, frame: np.ndarray) -> float:
        return 0.9 if float(np.sqrt(np.mean(np.square(frame)))) > SPEECH_RMS else 0.05


class ScriptedTranscriber:
    """Hears the script's words whose middle lies inside the request's window; records every request."""

    name = "scripted"

    def __init__(
        self,
        script: Script,
        fail: Callable[[DecodeRequest], bool] | None = None,
        *,
        loop: Callable[[DecodeRequest], bool] | None = None,
        flicker: bool = False,
    ) -> None:
        self.script = script
        self.fail = fail
        self.loop = loop
        """Answer these requests with a repetition loop (a segment of high compression ratio)."""
        self.flicker = flicker
        """Spell every word differently in each decode, so no two hypotheses ever agree."""
        self.requests: list[DecodeRequest] = []

    def decode(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        return [self._decode(r) for r in requests]

    def _decode(self, request: DecodeRequest) -> DecodeResult:
        self.requests.append(request)
        if self.fail is not None and self.fail(request):
            return DecodeResult(request.stream_id, request.request_id, error="scripted failure")
        start = self.script.window_start(request.audio)
        if start is None:
            return DecodeResult(request.stream_id, request.request_id)
        end = start + request.duration
        suffix = f"-{request.request_id}" if self.flicker else ""
        heard = [
            Word(max(0.0, w.start - start), w.end - start, " " + w.text + suffix, 0.9)
            for w in self.script.words
            if start <= (w.start + w.end) / 2 < end
        ]
        if not heard:
            return DecodeResult(request.stream_id, request.request_id)
        looping = self.loop is not None and self.loop(request)
        segment = DecodedSegment(
            heard[0].start,
            heard[-1].end,
            "".join(w.text for w in heard),
            tuple(heard),
            avg_logprob=-0.2,
            no_speech_prob=0.01,
            compression_ratio=3.5 if looping else 1.3,
        )
        return DecodeResult(request.stream_id, request.request_id, (segment,))


# -- driving a session like streamer.runner does ----------------------------------------------------------


@dataclass
class Trace:
    events: list[tuple[CaptionEvent, float]] = field(default_factory=list)
    """Every event with the stream time (audio received) at which it was produced."""
    requests: list[tuple[DecodeRequest, float]] = field(default_factory=list)
    """Every decode request with the VAD time at which it was asked for."""

    def of(self, kind: type) -> list:
        return [e for e, _ in self.events if isinstance(e, kind)]

    @property
    def finals(self) -> list[Final]:
        return self.of(Final)

    @property
    def partials(self) -> list[Partial]:
        return self.of(Partial)

    def final_words(self) -> list[Word]:
        return [w for f in self.finals for w in f.words]


def drive(
    session: StreamSession,
    transcriber: ScriptedTranscriber,
    audio: np.ndarray,
    *,
    chunk: float = CHUNK,
    lag: int = 0,
    cuts: Sequence[float] = (),
) -> Trace:
    """Feed `audio` chunk by chunk; run each request `lag` chunks after it was asked for (0: at once); call
    `cut` once the stream time reaches each of `cuts`."""
    trace = Trace()
    pending: list[tuple[DecodeRequest, int]] = []
    step = int(round(chunk * SAMPLE_RATE))

    def emit(events: list[CaptionEvent]) -> None:
        trace.events.extend((e, session.time) for e in events)

    def drain(now: int, flush: bool = False) -> None:
        while True:
            if pending:
                waiting, asked = pending[0]
                if not flush and now - asked < lag:
                    return
                pending.pop(0)
                assert session.next_request() is None, "a second request while one is in flight"
                emit(session.on_result(transcriber.decode([waiting])[0]))
            request = session.next_request()
            if request is None:
                return
            trace.requests.append((request, session.vad_time))
            pending.append((request, now))

    pending_cuts = sorted(cuts)
    for i, pos in enumerate(range(0, len(audio), step)):
        emit(session.feed(audio[pos : pos + step]))
        drain(i)
        while pending_cuts and session.time >= pending_cuts[0] - 1e-9:
            pending_cuts.pop(0)
            emit(session.cut())
            drain(i)
    emit(session.finish())
    drain(0, flush=True)
    assert session.idle
    return trace


def run(
    script: Script,
    config: StreamConfig | None = None,
    *,
    fail: Callable[[DecodeRequest], bool] | None = None,
    loop: Callable[[DecodeRequest], bool] | None = None,
    flicker: bool = False,
    lag: int = 0,
    chunk: float = CHUNK,
    first_index: int = 0,
    first_utterance_id: int = 0,
    context: str = "",
    cuts: Sequence[float] = (),
) -> tuple[Trace, ScriptedTranscriber]:
    transcriber = ScriptedTranscriber(script, fail, loop=loop, flicker=flicker)
    session = StreamSession(
        "test",
        config or StreamConfig(),
        RmsVad(),
        start_time=script.start_time,
        first_index=first_index,
        first_utterance_id=first_utterance_id,
        context=context,
    )
    return drive(session, transcriber, script.audio(), chunk=chunk, lag=lag, cuts=cuts), transcriber


def assert_same_words(heard: Sequence[Word], spoken: Sequence[Word]) -> None:
    """The same words in the same order, each placed on the scripted word (a word cut by a window edge is
    clipped to it, so compare overlap rather than exact times)."""
    assert [w.text for w in heard] == [w.text for w in spoken]
    for got, want in zip(heard, spoken, strict=True):
        assert got.start < want.end and got.end > want.start, (got, want)
        assert abs(got.start - want.start) < WORD_LENGTH / 2 or abs(got.end - want.end) < WORD_LENGTH / 2


def assert_captions_consistent(trace: Trace, script: Script) -> None:
    """The invariants of streamer.events, plus: every scripted word is finalised exactly once."""
    finals = trace.finals
    assert [f.index for f in finals] == list(range(finals[0].index, finals[0].index + len(finals)))
    for before, after in zip(finals, finals[1:], strict=False):
        assert before.end <= after.start + 1e-6, "finals overlap or go back in time"
        assert before.utterance_id <= after.utterance_id
    for f in finals:
        assert f.words and f.text == " ".join(w.text for w in f.words)
        assert f.start == f.words[0].start and f.end == f.words[-1].end
        assert all(f.start <= w.start <= w.end <= f.end for w in f.words)
    # Partials extend the committed text of their utterance.
    committed: dict[int, list[str]] = {}
    for event, _ in trace.events:
        if isinstance(event, Final):
            committed.setdefault(event.utterance_id, []).append(event.text)
        elif isinstance(event, Partial):
            assert event.text.startswith(event.stable)
            assert event.stable == " ".join(committed.get(event.utterance_id, []))
    assert_utterances_closed(trace)
    # Words lie inside their utterance.
    spans = utterance_spans(trace)
    for f in finals:
        start, end = spans[f.utterance_id]
        assert start - 1e-6 <= f.start and f.end <= end + 1e-6
    assert_same_words(trace.final_words(), script.words)


def assert_utterances_closed(trace: Trace) -> None:
    """Each utterance's captions end with exactly one complete partial, its whole text as stable; the final
    just before it, if of the same utterance, is the only one with ends_utterance."""
    captions: dict[int, list[Final | Partial]] = {}
    for event, _ in trace.events:
        if isinstance(event, Final | Partial):
            captions.setdefault(event.utterance_id, []).append(event)
    assert captions.keys() == {e.utterance_id for e in trace.of(SpeechEnded)}
    for utterance, events in captions.items():
        last = events[-1]
        assert isinstance(last, Partial) and last.complete and last.unstable == "", (utterance, last)
        assert not any(isinstance(e, Partial) and e.complete for e in events[:-1])
        finals = [e for e in events if isinstance(e, Final)]
        assert last.stable == " ".join(f.text for f in finals)
        closing = [f for f in finals if f.ends_utterance]
        assert closing == ([events[-2]] if len(events) > 1 and isinstance(events[-2], Final) else [])


def utterance_spans(trace: Trace) -> dict[int, tuple[float, float]]:
    starts = {e.utterance_id: e.time for e in trace.of(SpeechStarted)}
    ends = {e.utterance_id: e.time for e in trace.of(SpeechEnded)}
    assert starts.keys() == ends.keys()
    return {u: (starts[u], ends[u]) for u in starts}


# -- tests ------------------------------------------------------------------------------------------------


def test_scripted_audio_tells_the_transcriber_where_a_window_lies() -> None:
    script = Script(regions=((1.0, 3.0),), total=4.0)
    audio = script.audio()
    window = audio[int(0.5 * SAMPLE_RATE) : int(2.0 * SAMPLE_RATE)]
    assert script.window_start(window) == pytest.approx(0.5)
    assert script.window_start(audio[: int(0.9 * SAMPLE_RATE)]) is None
    assert float(np.sqrt(np.mean(np.square(audio[SAMPLE_RATE : SAMPLE_RATE + 512])))) > SPEECH_RMS


def test_silence_costs_no_decodes_and_gives_no_captions() -> None:
    trace, transcriber = run(Script(regions=(), total=10.0))
    assert transcriber.requests == []
    assert trace.events == []


def test_one_utterance_is_captioned_completely_and_consistently() -> None:
    script = Script(regions=((1.0, 6.0),), total=8.0)
    trace, _ = run(script)
    assert isinstance(trace.events[0][0], SpeechStarted)
    (started,) = trace.of(SpeechStarted)
    (ended,) = trace.of(SpeechEnded)
    assert started.utterance_id == ended.utterance_id == 0
    assert started.time == pytest.approx(1.0 - 0.25, abs=0.04)  # speech_pad before the speech
    assert ended.time == pytest.approx(6.0 + 0.25, abs=0.04)
    assert len(trace.finals) >= 2, "words are committed while the utterance goes on"
    assert len(trace.partials) >= 3
    assert_captions_consistent(trace, script)
    # The last partial shows the whole utterance as stable.
    last = trace.partials[-1]
    assert last.unstable == "" and last.stable == " ".join(w.text for w in script.words)


@pytest.mark.parametrize("pause_wait", [0.0, 0.6])
def test_partial_decodes_come_every_interval_of_new_audio(pause_wait: float) -> None:
    # Speech without a pause between words: a due decode waits pause_wait for one, then runs anyway.
    config = StreamConfig(decode=DecodeConfig(interval=1.0, pause_wait=pause_wait))
    script = Script(regions=((1.0, 9.0),), total=11.0)
    trace, _ = run(script, config)
    partial_times = [t for r, t in trace.requests if not r.final]
    gaps = np.diff(partial_times)
    period = 1.0 + pause_wait
    assert len(gaps) > 0 and gaps.min() >= period - 1e-6
    assert gaps.max() <= period + CHUNK + VAD_FRAME_SAMPLES / SAMPLE_RATE + 1e-6
    utterance = 9.0 - 1.0 + 0.5  # speech plus both pads
    assert utterance / period - 2 <= len(partial_times) <= utterance / period + 1


def test_a_due_partial_decode_waits_for_a_pause_between_words() -> None:
    # One utterance of 0.45 s words with 0.25 s of silence between them (shorter than min_silence).
    regions = tuple((1.0 + 0.7 * i, 1.45 + 0.7 * i) for i in range(14))
    script = Script(regions=regions, total=12.0)
    frame = VAD_FRAME_SAMPLES

    def window_ends_at_a_pause(request: DecodeRequest) -> bool:
        return RmsVad().probability(request.audio[-frame:]) < VadConfig().threshold

    waiting, _ = run(script, StreamConfig(decode=DecodeConfig(pause_wait=0.6)))
    eager, _ = run(script, StreamConfig(decode=DecodeConfig(pause_wait=0.0)))
    assert len(waiting.of(SpeechStarted)) == 1
    partials = [r for r, _ in waiting.requests if not r.final]
    assert len(partials) >= 5
    assert all(window_ends_at_a_pause(r) for r in partials)
    assert not all(window_ends_at_a_pause(r) for r, _ in eager.requests if not r.final)
    assert_captions_consistent(waiting, script)


def test_shorter_interval_means_more_partial_decodes() -> None:
    script = Script(regions=((1.0, 9.0),), total=11.0)
    slow, _ = run(script, StreamConfig(decode=DecodeConfig(interval=2.0, pause_wait=0.0)))
    fast, _ = run(script, StreamConfig(decode=DecodeConfig(interval=0.5, pause_wait=0.0)))
    count = [sum(not r.final for r, _ in t.requests) for t in (slow, fast)]
    assert count[1] >= 3 * count[0]
    assert_captions_consistent(fast, script)


def test_at_most_one_request_is_in_flight() -> None:
    # The harness asserts next_request() is None while a request is out; a lagging scheduler stresses it.
    script = Script(regions=((0.5, 5.0), (6.0, 9.0)), total=11.0)
    trace, _ = run(script, lag=7)
    assert len(trace.requests) >= 4
    assert_captions_consistent(trace, script)


def test_next_request_is_none_until_the_result_comes_back() -> None:
    script = Script(regions=((0.5, 5.0),), total=5.0)
    session = StreamSession("s", StreamConfig(), RmsVad())
    session.feed(script.audio()[: 3 * SAMPLE_RATE])
    request = session.next_request()
    assert request is not None
    assert session.next_request() is None
    session.feed(script.audio()[3 * SAMPLE_RATE :])
    assert session.next_request() is None
    session.on_result(ScriptedTranscriber(script).decode([request])[0])
    assert session.next_request() is not None


def test_a_result_for_another_request_is_refused() -> None:
    script = Script(regions=((0.5, 5.0),), total=3.0)
    session = StreamSession("s", StreamConfig(), RmsVad())
    session.feed(script.audio())
    request = session.next_request()
    assert request is not None
    with pytest.raises(RuntimeError, match="unexpected decode result"):
        session.on_result(DecodeResult("s", request.request_id + 1))


def test_final_requests_use_the_configured_beam_and_temperatures() -> None:
    decode = DecodeConfig(beam_size=5, final_temperatures=(0.0, 0.2, 0.4), language="en")
    script = Script(regions=((1.0, 5.0), (7.0, 10.0)), total=12.0)
    trace, _ = run(script, StreamConfig(decode=decode))
    finals = [r for r, _ in trace.requests if r.final]
    partials = [r for r, _ in trace.requests if not r.final]
    assert len(finals) == 2, "one final decode per utterance"
    assert all(r.beam_size == 5 and r.temperatures == (0.0, 0.2, 0.4) for r in finals)
    assert partials and all(r.beam_size == 1 and r.temperatures == (0.0,) for r in partials)
    assert all(r.language == "en" and r.stream_id == "test" for r, _ in trace.requests)
    assert [r.request_id for r, _ in trace.requests] == list(range(len(trace.requests)))


def test_prompt_carries_committed_text_before_the_window() -> None:
    script = Script(regions=((1.0, 5.0), (7.0, 10.0)), total=12.0)
    trace, _ = run(script)
    first_of_second = next(r for r, t in trace.requests if t > 7.0)
    first_utterance = " ".join(w.text for f in trace.finals if f.utterance_id == 0 for w in f.words)
    assert first_of_second.prompt and first_utterance.endswith(first_of_second.prompt)
    assert trace.requests[0][0].prompt == ""


def test_prompt_starts_with_the_context_of_a_resumed_transcript() -> None:
    script = Script(regions=((1.0, 5.0),), total=6.0)
    trace, _ = run(script, context="Earlier we said hello.")
    prompts = [r.prompt for r, _ in trace.requests]
    assert prompts[0] == "Earlier we said hello."
    assert all(p.startswith("Earlier we said hello.") for p in prompts)


def test_prompt_is_limited_to_prompt_chars_at_a_word_boundary() -> None:
    decode = DecodeConfig(prompt_chars=40)
    script = Script(regions=((1.0, 25.0),), total=26.0)
    trace, _ = run(script, StreamConfig(decode=decode))
    committed = " ".join(w.text for w in trace.final_words())
    prompts = [r.prompt for r, _ in trace.requests if r.prompt]
    assert prompts
    for prompt in prompts:
        assert 0 < len(prompt) <= 40
        assert (" " + prompt + " ") in (" " + committed + " ")


def test_a_repetition_loop_resets_the_prompt_and_loses_no_text() -> None:
    script = Script(regions=((1.0, 4.0), (5.0, 9.0)), total=10.0)
    # The first decode prompted with committed text answers with a loop.
    trace, transcriber = run(script, loop=lambda r: bool(r.prompt))
    prompted = [i for i, r in enumerate(transcriber.requests) if r.prompt]
    assert len(prompted) == 1, "after the loop, the old text is no longer used as the prompt"
    assert transcriber.requests[prompted[0] + 1].prompt == ""
    assert_captions_consistent(trace, script)


def test_long_utterance_without_pauses_is_committed_with_bounded_delay() -> None:
    decode = DecodeConfig()
    script = Script(regions=((1.0, 61.0),), total=63.0)
    trace, _ = run(script, StreamConfig(decode=decode))
    assert_captions_consistent(trace, script)
    emitted_at = [t for f, t in trace.events if isinstance(f, Final) for _ in f.words]
    # Two agreeing decodes, each at most interval + pause_wait apart (no pause to wait for here).
    bound = 2 * (decode.interval + decode.pause_wait) + 0.5
    late = [(w, t) for w, t in zip(script.words, emitted_at, strict=True) if t > w.end + bound]
    # Only the words of the final decode may wait for the end of the utterance (plus min_silence).
    assert all(w.end > 61.0 - bound for w, _ in late), late[:3]
    longest = max(r.duration for r, _ in trace.requests)
    assert longest <= decode.max_buffer + decode.interval + decode.pause_wait + 1e-6


@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_a_trimmed_window_rehears_trim_overlap_seconds_before_the_cut(overlap: float) -> None:
    script = Script(regions=((1.0, 31.0),), total=33.0)
    trace, transcriber = run(script, StreamConfig(decode=DecodeConfig(trim_overlap=overlap)))
    assert_captions_consistent(trace, script)  # the re-heard words are not committed twice
    committed_ends = [w.end for w in trace.final_words()]
    starts = {script.window_start(r.audio) for r in transcriber.requests}
    trimmed = sorted(s for s in starts if s is not None and s > 1.0)
    assert len(trimmed) >= 2
    for start in trimmed:
        assert min(abs(start + overlap - end) for end in committed_ends) < 1e-3, start


def test_hypotheses_that_never_agree_are_force_committed_at_max_buffer() -> None:
    decode = DecodeConfig()
    script = Script(regions=((1.0, 41.0),), total=43.0)
    trace, _ = run(script, StreamConfig(decode=decode), flicker=True)
    heard = trace.final_words()
    assert [w.text.split("-")[0] for w in heard] == [w.text for w in script.words]
    assert [w.end for w in heard] == sorted(w.end for w in heard)
    longest = max(r.duration for r, _ in trace.requests)
    assert decode.max_buffer < longest <= decode.max_buffer + decode.interval + decode.pause_wait + 1e-6
    # Words are committed while the speaker goes on, at most a full buffer late.
    emitted_at = [t for f, t in trace.events if isinstance(f, Final) for _ in f.words]
    for word, t in zip(script.words, emitted_at, strict=True):
        assert t <= max(
            word.end + decode.max_buffer + decode.interval + decode.pause_wait + CHUNK, 41.0 + 1.0
        )
    assert any(t < 40.0 for t in emitted_at)


def test_max_utterance_split_loses_and_repeats_no_word() -> None:
    config = StreamConfig(vad=VadConfig(max_utterance=10.0))
    script = Script(regions=((0.5, 40.0),), total=41.0)
    trace, _ = run(script, config)
    assert len(trace.of(SpeechStarted)) == 3  # split every max_utterance + SPLIT_GRACE of unbroken speech
    assert_captions_consistent(trace, script)


def test_finals_of_one_utterance_all_come_before_the_next() -> None:
    script = Script(regions=((0.5, 4.0), (5.0, 8.0), (9.0, 12.0)), total=13.0)
    trace, _ = run(script, lag=15)  # a slow scheduler: utterances end before their decodes
    ids = [f.utterance_id for f in trace.finals]
    assert ids == sorted(ids) and set(ids) == {0, 1, 2}
    assert_captions_consistent(trace, script)


def test_resumed_session_continues_times_indexes_and_utterance_ids() -> None:
    script = Script(regions=((101.0, 104.0), (105.0, 107.0)), total=8.0, start_time=100.0)
    trace, _ = run(script, first_index=7, first_utterance_id=3)
    assert trace.finals[0].index == 7
    assert {f.utterance_id for f in trace.finals} == {3, 4}
    assert all(e.time >= 100.0 for e in trace.of(SpeechStarted) + trace.of(SpeechEnded))
    assert all(w.start >= 100.0 for w in trace.final_words())
    assert_captions_consistent(trace, script)


def test_session_time_counts_audio_from_the_start_time() -> None:
    session = StreamSession("s", StreamConfig(), RmsVad(), start_time=100.0)
    session.feed(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
    assert session.time == pytest.approx(100.5)
    assert session.vad_time <= session.time


def test_failed_partial_decodes_lose_no_text() -> None:
    script = Script(regions=((1.0, 8.0),), total=10.0)
    failures = {2, 3}
    trace, transcriber = run(script, fail=lambda r: r.request_id in failures)
    assert any(r.request_id in failures for r in transcriber.requests)
    assert_captions_consistent(trace, script)


def test_a_failing_model_produces_no_captions_but_does_not_stop_the_stream() -> None:
    script = Script(regions=((1.0, 4.0),), total=5.0)
    trace, transcriber = run(script, fail=lambda r: True)
    assert trace.finals == []
    assert len(transcriber.requests) >= 2
    assert trace.of(SpeechEnded)


def test_a_failed_final_decode_keeps_the_words_partials_showed() -> None:
    script = Script(regions=((1.0, 4.0),), total=6.0)
    trace, _ = run(script, fail=lambda r: r.final)
    shown = trace.partials[-2].text  # the last partial before the failed final decode
    assert shown
    assert " ".join(f.text for f in trace.finals) == shown


def test_feed_after_finish_raises() -> None:
    session = StreamSession("s", StreamConfig(), RmsVad())
    session.feed(np.zeros(1600, dtype=np.float32))
    session.finish()
    assert session.finish() == []
    with pytest.raises(RuntimeError, match="after finish"):
        session.feed(np.zeros(1600, dtype=np.float32))


def test_finish_in_the_middle_of_speech_closes_the_utterance() -> None:
    script = Script(regions=((1.0, 10.0),), total=4.0)  # the stream stops while the speaker talks
    trace, _ = run(script)
    ended = trace.of(SpeechEnded)
    assert ended and ended[0].time <= 4.0
    assert_same_words(trace.final_words(), [w for w in script.words if (w.start + w.end) / 2 < 4.0])


def test_cut_mid_speech_finalises_the_open_utterance_at_once() -> None:
    script = Script(regions=((1.0, 9.0),), total=10.0)  # one utterance: the speaker never pauses
    trace, transcriber = run(script, cuts=[4.0])
    assert_captions_consistent(trace, script)  # every word once, in order, across the cut
    ended = trace.of(SpeechEnded)
    started = trace.of(SpeechStarted)
    assert [e.utterance_id for e in started] == [0, 1] and [e.utterance_id for e in ended] == [0, 1]
    assert ended[0].time == pytest.approx(4.0, abs=0.04)  # where the audio received ended
    assert started[1].time == ended[0].time  # the speech that goes on continues the stream
    # The cut utterance's final decode is the very next request, and its last final and complete partial
    # come out at once, 5 s before the pause that would otherwise have ended it.
    final_request, asked_at = next((r, t) for r, t in trace.requests if r.final)
    assert asked_at == pytest.approx(4.0, abs=0.04)
    assert final_request.duration == pytest.approx(ended[0].time - trace.of(SpeechStarted)[0].time, abs=1e-3)
    emitted = {id(e): t for e, t in trace.events}
    (closing,) = [p for p in trace.partials if p.complete and p.utterance_id == 0]
    assert emitted[id(closing)] == pytest.approx(4.0, abs=CHUNK + 1e-6)
    assert [f.utterance_id for f in trace.finals if f.ends_utterance] == [0, 1]
    assert len([r for r in transcriber.requests if r.final]) == 2


def test_cut_waits_for_a_partial_decode_in_flight_and_loses_nothing() -> None:
    script = Script(regions=((0.5, 6.0), (7.0, 9.0)), total=10.0)
    trace, _ = run(script, lag=4, cuts=[2.55, 3.0, 8.0])  # a slow scheduler; cuts in quick succession
    assert_captions_consistent(trace, script)
    assert len(trace.of(SpeechEnded)) >= 4


def test_cut_without_an_open_utterance_changes_nothing() -> None:
    script = Script(regions=((1.0, 3.0),), total=6.0)
    plain, _ = run(script)
    cut, _ = run(script, cuts=[0.5, 5.0])  # before the speech and after its end
    assert [type(e) for e, _ in cut.events] == [type(e) for e, _ in plain.events]
    assert cut.finals == plain.finals
    session = StreamSession("s", StreamConfig(), RmsVad())
    session.finish()
    assert session.cut() == []


class DeafFinalTranscriber(ScriptedTranscriber):
    """Hears nothing in final decodes: the utterance's words must all come from its partial decodes."""

    def decode(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        return [DecodeResult(r.stream_id, r.request_id) if r.final else self._decode(r) for r in requests]


def test_a_final_decode_that_adds_nothing_still_closes_the_utterance() -> None:
    script = Script(regions=((1.0, 6.0),), total=8.0)
    session = StreamSession("test", StreamConfig(), RmsVad())
    trace = drive(session, DeafFinalTranscriber(script), script.audio())
    assert trace.finals and not any(f.ends_utterance for f in trace.finals)
    closing = trace.partials[-1]
    assert closing.complete and closing.stable == " ".join(f.text for f in trace.finals)
    assert_utterances_closed(trace)


@pytest.mark.parametrize("chunk", [0.02, 0.37, 1.5])
def test_chunk_size_does_not_change_the_transcript(chunk: float) -> None:
    script = Script(regions=((1.0, 6.0), (7.0, 9.0)), total=10.0)
    trace, _ = run(script, chunk=chunk)
    assert_captions_consistent(trace, script)


class MurmurVad(RmsVad):
    """Like RmsVad, but quiet sound (RMS between 0.001 and 0.01) gets 0.4: between the VAD thresholds."""

    def probability(self, frame: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(np.square(frame))))
        return 0.9 if rms > SPEECH_RMS else 0.4 if rms > 0.001 else 0.05


def first_decode_and_words(trace: Trace) -> tuple[DecodeRequest, float, SpeechStarted, list[Word]]:
    (started,) = trace.of(SpeechStarted)
    first, asked_at = trace.requests[0]
    return first, asked_at, started, trace.final_words()


def test_an_utterance_confirmed_late_still_gets_all_its_audio() -> None:
    # speech_pad + min_speech > PREROLL_SECONDS: the start is dated 1.5 s before the utterance is confirmed.
    config = StreamConfig(vad=VadConfig(speech_pad=0.5, min_speech=1.0))
    script = Script(regions=((3.0, 7.0),), total=9.0)
    trace, _ = run(script, config)
    first, asked_at, started, heard = first_decode_and_words(trace)
    assert first.duration == pytest.approx(asked_at - started.time, abs=1e-3)
    assert heard[0].start == pytest.approx(script.words[0].start, abs=0.01)


def test_speech_after_a_long_murmur_gets_all_its_audio() -> None:
    # Default config: one loud frame at 3.0 s, then 1.5 s of murmur between the thresholds keeps the VAD
    # candidate alive; the utterance is confirmed at ~4.7 s but dated from 3.0 - speech_pad.
    script = Script(regions=((3.0, 3.04), (4.5, 8.0)), total=9.0)
    audio = script.audio()
    t = np.arange(len(audio)) / SAMPLE_RATE
    audio = np.where((t >= 3.04) & (t < 4.5), np.float32(0.005), audio).astype(np.float32)
    trace = drive(StreamSession("test", StreamConfig(), MurmurVad()), ScriptedTranscriber(script), audio)
    first, asked_at, started, heard = first_decode_and_words(trace)
    assert started.time == pytest.approx(3.0 - 0.25, abs=0.04)
    assert first.duration == pytest.approx(asked_at - started.time, abs=1e-3)
    assert heard[0].start == pytest.approx(script.words[0].start, abs=0.01)
