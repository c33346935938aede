"""The streaming pipeline end to end: the real tiny.en model, the real Silero VAD, real recorded speech.

Accuracy is scored against the evaluation set's references with a Whisper-style English normaliser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from benchmarks.scoring import normalize, wer
from streamer.audiofile import iter_audio, read_audio
from streamer.config import SAMPLE_RATE, DecodeConfig, StreamConfig
from streamer.engines.base import DecodeRequest, DecodeResult
from streamer.events import CaptionEvent, Final, Partial, SpeechEnded, SpeechStarted
from streamer.runner import run_stream
from tests.conftest import RECORDINGS

SHORT_IDS = sorted(r for r, rec in RECORDINGS.items() if rec.kind == "short" and rec.duration < 20)
LONGFORM_ID = "lf03_ljspeech_lj001_0001-0032"
MULTISPEAKER_ID = "lf04_multispeaker_turns_assembled"


class RecordingTranscriber:
    """Wraps the real model and remembers what it was asked to decode."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.requests: list[DecodeRequest] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def decode(self, requests):
        self.requests.extend(requests)
        results: list[DecodeResult] = self.inner.decode(requests)
        return results


@dataclass
class Capture:
    events: list[tuple[CaptionEvent, float]] = field(default_factory=list)

    def __call__(self, event: CaptionEvent, stream_time: float) -> None:
        self.events.append((event, stream_time))

    @property
    def finals(self) -> list[Final]:
        return [e for e, _ in self.events if isinstance(e, Final)]

    @property
    def text(self) -> str:
        return " ".join(f.text for f in self.finals)


def stream_file(path, transcriber, detector, config: StreamConfig | None = None):
    capture = Capture()
    recorder = RecordingTranscriber(transcriber)
    stats = run_stream(iter_audio(path), recorder, detector, config or StreamConfig(), capture)
    return capture, recorder, stats


@pytest.fixture(scope="module")
def longform_run(recordings, transcriber, detector):
    rec = recordings[LONGFORM_ID]
    capture, recorder, stats = stream_file(rec.audio, transcriber, detector)
    return rec, capture, recorder, stats


def test_short_utterances_are_transcribed_accurately(recordings, transcriber, detector):
    assert len(SHORT_IDS) >= 15
    refs, hyps = [], []
    for rid in SHORT_IDS:
        rec = recordings[rid]
        capture, _, _ = stream_file(rec.audio, transcriber, detector)
        assert capture.finals, f"{rid}: no captions"
        assert wer(rec.reference, capture.text) < 0.5, f"{rid}: {capture.text!r}"
        refs.append(rec.reference)
        hyps.append(capture.text)
    overall = wer(" ".join(refs), " ".join(hyps))
    assert overall < 0.12, f"overall WER {overall:.3f} on {len(refs)} short recordings"


@pytest.mark.slow
def test_longform_streaming_wer_is_within_ten_percent_of_offline(recordings, transcriber, detector):
    # The multi-speaker file: ten speakers and channels one after another, the nearest to a webinar here. Its
    # offline transcript has about 70 errors, so one word moves the ratio by 1.4 %; on lf03 (17 offline
    # errors) one word is 6 %, too coarse for a 10 % bound. benchmarks/streaming.py reports all three files.
    rec = recordings[MULTISPEAKER_ID]
    capture, _, _ = stream_file(rec.audio, transcriber, detector)
    segments, _ = transcriber.model.transcribe(
        read_audio(rec.audio), language="en", beam_size=1, temperature=0.0, condition_on_previous_text=True
    )
    offline = wer(rec.reference, " ".join(s.text for s in segments))
    streaming = wer(rec.reference, capture.text)
    assert offline < 0.12, f"offline WER {offline:.4f}"
    assert streaming <= offline * 1.10, f"streaming WER {streaming:.4f} vs offline {offline:.4f}"


@pytest.mark.slow
def test_longform_single_reader_streaming_wer(longform_run):
    rec, capture, _, _ = longform_run
    # Offline decoding of this file scores 3.0 %; streaming scores 4.2 % (benchmarks/results).
    assert wer(rec.reference, capture.text) < 0.05


def word_delays(capture: Capture) -> list[float]:
    """For every committed word, the stream time its final was emitted minus the word's end."""
    return [emitted - w.end for e, emitted in capture.events if isinstance(e, Final) for w in e.words]


@pytest.mark.slow
def test_confident_commit_makes_finals_come_sooner_on_real_speech(longform_run, transcriber, detector):
    rec, default_capture, _, _ = longform_run
    config = StreamConfig(decode=DecodeConfig(confident_commit=0.9))
    capture, _, _ = stream_file(rec.audio, transcriber, detector, config)
    sooner = float(np.median(word_delays(capture)))
    default = float(np.median(word_delays(default_capture)))
    # Stream time only (decodes take no time here): one vote instead of two saves about one decode interval.
    assert sooner < default - 0.3, f"median word-to-final delay {sooner:.2f} s vs {default:.2f} s by default"
    assert wer(rec.reference, capture.text) < 0.1
    finals = capture.finals
    assert [f.index for f in finals] == list(range(len(finals)))
    assert all(after.start >= before.end for before, after in zip(finals, finals[1:], strict=False))


@pytest.mark.slow
def test_finals_are_immutable_ordered_and_partials_extend_them(longform_run):
    _, capture, _, _ = longform_run
    finals = capture.finals
    assert [f.index for f in finals] == list(range(len(finals)))
    for before, after in zip(finals, finals[1:], strict=False):
        assert after.start >= before.end, (before, after)
        assert after.utterance_id >= before.utterance_id
    for f in finals:
        assert f.words and f.text == " ".join(w.text for w in f.words)
        assert f.start <= f.end
        assert all(f.start - 1e-6 <= w.start <= w.end <= f.end + 1e-6 for w in f.words)
    committed: dict[int, list[str]] = {}
    partials = 0
    for event, _ in capture.events:
        if isinstance(event, Final):
            committed.setdefault(event.utterance_id, []).append(event.text)
        elif isinstance(event, Partial):
            partials += 1
            assert event.text.startswith(event.stable)
            assert event.stable == " ".join(committed.get(event.utterance_id, []))
    assert partials > len(finals) / 2


@pytest.mark.slow
def test_speaker_without_pauses_gets_finals_within_bounded_delay(longform_run):
    rec, capture, recorder, _ = longform_run
    # lf03 joins sentences with 0.3 s gaps: shorter than the silence that ends an utterance.
    finals = capture.finals
    utterance_lengths: dict[int, float] = {}
    for event, _ in capture.events:
        if isinstance(event, SpeechStarted):
            utterance_lengths[event.utterance_id] = -event.time
        elif isinstance(event, SpeechEnded):
            utterance_lengths[event.utterance_id] += event.time
    assert max(utterance_lengths.values()) > 30, "expected long utterances from a speaker who never pauses"
    delays = [emitted - f.end for f, emitted in ((e, t) for e, t in capture.events if isinstance(e, Final))]
    assert max(delays) < 8.0, f"max final delay {max(delays):.2f} s"
    assert float(np.median(delays)) < 3.0
    longest = max(len(r.audio) for r in recorder.requests) / SAMPLE_RATE
    decode = DecodeConfig()
    bound = decode.max_buffer + decode.interval + decode.pause_wait + 0.5  # a due decode, then one chunk
    assert longest <= bound, f"decode window of {longest:.1f} s"
    assert len(finals) > 40


def test_silence_and_noise_produce_no_captions_and_silence_no_decodes(transcriber, detector):
    rng = np.random.default_rng(7)
    silence = np.zeros(SAMPLE_RATE * 10, dtype=np.float32)
    noise = (rng.standard_normal(SAMPLE_RATE * 10) * 0.01).astype(np.float32)
    hum = (0.05 * np.sin(2 * np.pi * 50 * np.arange(SAMPLE_RATE * 10) / SAMPLE_RATE)).astype(np.float32)
    for name, audio in (("silence", silence), ("noise", noise), ("hum", hum)):
        capture = Capture()
        recorder = RecordingTranscriber(transcriber)
        chunks = [audio[i : i + 1600] for i in range(0, len(audio), 1600)]
        run_stream(chunks, recorder, detector, StreamConfig(), capture)
        assert capture.finals == [], f"{name}: {capture.text!r}"
        if name == "silence":
            assert recorder.requests == []


def test_speech_after_silence_keeps_its_times(recordings, transcriber, detector):
    rec = recordings["jfk_inaugural_excerpt"]
    speech = read_audio(rec.audio)
    audio = np.concatenate([np.zeros(SAMPLE_RATE * 5, dtype=np.float32), speech])
    chunks = [audio[i : i + 3200] for i in range(0, len(audio), 3200)]
    capture = Capture()
    run_stream(chunks, transcriber, detector, StreamConfig(), capture)
    assert wer(rec.reference, capture.text) < 0.25
    assert 4.5 < capture.finals[0].start < 6.5
    assert "country" in normalize(capture.text)
