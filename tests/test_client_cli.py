"""`streamer stream` and `streamer watch`, and the client library under them (`streamer.client`), against a
real `streamer serve` subprocess on 127.0.0.1.

The live-device path (what `mic` uses) is exercised through FFmpeg's `lavfi` input reading a real recording
(`amovie=FILE`): the same code path as a microphone, minus the hardware.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from benchmarks.scoring import normalize, wer
from streamer.audiofile import read_audio
from streamer.client import FLUSH, StreamResult, stream_frames
from streamer.config import SAMPLE_RATE
from streamer.events import Final
from streamer.protocol import FlushMessage
from tests.test_server_crash import free_port, http_json, server_process

FRAME = SAMPLE_RATE // 10  # 100 ms frames
VAD_FRAME_SECONDS = 0.05  # a cut lands on the VAD's last whole frame, at most this far before the flush
LAST_WORD_GAP = 0.5  # mid-speech, the last word before a cut ends at most this long before it
TIME_EPSILON = 1e-3  # times on the wire are rounded to the millisecond


def caption_text(output: str) -> str:
    """The captions a command printed, without their `[start -> end]` times."""
    return " ".join(re.sub(r"^\[[^\]]*\]\s*", "", line) for line in output.splitlines())


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_stream_a_file_and_a_live_device_then_watch(recordings, tmp_path: Path) -> None:
    rec = recordings["jfk_inaugural_excerpt"]
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    with server_process(tmp_path / "data", port, tmp_path / "server.log"):
        from_file = run_cli("stream", str(rec.audio), "--url", url, "--session", "file", "--fast", "--quiet")
        assert from_file.returncode == 0, from_file.stderr
        assert wer(rec.reference, caption_text(from_file.stdout)) < 0.25, from_file.stdout

        device = f"amovie={rec.audio}"
        live = run_cli("stream", device, "--input-format", "lavfi", "--url", url, "--session", "live")
        assert live.returncode == 0, live.stderr
        assert "capturing" in live.stderr
        transcript = http_json(port, "/sessions/live/transcript.json")
        assert isinstance(transcript, dict)
        text = " ".join(f["text"] for f in transcript["finals"])
        assert wer(rec.reference, text) < 0.25, text

        watched = run_cli("watch", "live", "--url", url, "--quiet")
        assert watched.returncode == 0, watched.stderr
        assert wer(rec.reference, caption_text(watched.stdout)) < 0.25, watched.stdout


def test_a_missing_microphone_fails_in_one_line_before_connecting(tmp_path: Path) -> None:
    # Nothing listens on this port: a device error must come first, and without a traceback.
    run = run_cli("stream", "mic:no-such-device", "--url", f"ws://127.0.0.1:{free_port()}", timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "no-such-device" in run.stderr


async def frames_with_flush(
    samples: np.ndarray, flush_at: float | None
) -> AsyncIterator[np.ndarray | FlushMessage]:
    """`samples` in FRAME frames, as fast as the server takes them, with `FLUSH` after the audio up to
    `flush_at` seconds (none if ``None``)."""
    for offset in range(0, len(samples), FRAME):
        yield samples[offset : offset + FRAME]
        if flush_at is not None and offset + FRAME == round(flush_at * SAMPLE_RATE):
            yield FLUSH


def speech_times(result: StreamResult, kind: str) -> list[tuple[int, float]]:
    """(utterance id, time) of each `speech_started` or `speech_ended` the speaker received."""
    return [(m["utterance_id"], m["time"]) for m in result.messages if m["type"] == kind]


def of_utterance(finals: list[Final], utterance: int) -> list[Final]:
    return [f for f in finals if f.utterance_id == utterance]


def test_a_flush_in_continuous_speech_cuts_a_final_at_the_flush(recordings, tmp_path: Path) -> None:
    rec = recordings["ljspeech_LJ001-0001"]  # one sentence with no pause long enough to end an utterance
    samples = np.concatenate([read_audio(rec.audio), np.zeros(2 * SAMPLE_RATE, dtype=np.float32)])
    flush_at = 5.0  # between "concerned, differs" and "from most", mid-sentence
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    with server_process(tmp_path / "data", port, tmp_path / "server.log"):
        whole = asyncio.run(stream_frames(url, frames_with_flush(samples, None), session="whole"))
        cut = asyncio.run(stream_frames(url, frames_with_flush(samples, flush_at), session="cut"))
        journal = http_json(port, "/sessions/cut/transcript.json")
    for result in (whole, cut):
        assert result.error is None and result.ended is not None, result.messages[-3:]
        assert wer(rec.reference, result.text) < 0.2, result.text

    # Without the flush the sentence is one utterance; the flush makes it two, the cut at the flush point.
    assert [u for u, _ in speech_times(whole, "speech_started")] == [0]
    assert {f.utterance_id for f in whole.finals} == {0}
    assert [u for u, _ in speech_times(cut, "speech_started")] == [0, 1]
    (_, cut_at), (_, end) = speech_times(cut, "speech_ended")
    assert flush_at - VAD_FRAME_SECONDS <= cut_at <= flush_at
    assert speech_times(cut, "speech_started")[1][1] == cut_at  # no gap: utterance 1 goes on from the cut
    assert abs(end - speech_times(whole, "speech_ended")[0][1]) <= VAD_FRAME_SECONDS  # where it did unflushed

    # Utterance 0 was finalised at the cut: its last final closes it and ends on the last word before the
    # cut (speech runs on through it), not at a pause of its own. Utterance 1 holds the rest, nothing earlier.
    first, second = of_utterance(cut.finals, 0), of_utterance(cut.finals, 1)
    assert first and second and first[-1].ends_utterance and second[-1].ends_utterance
    assert flush_at - LAST_WORD_GAP <= first[-1].end <= cut_at + TIME_EPSILON, first[-1]
    assert all(w.end <= cut_at + TIME_EPSILON for f in first for w in f.words)
    assert all(f.start >= cut_at - TIME_EPSILON for f in second), second[0]

    # The cut splits the sentence's words, losing and repeating none: utterance 0 is the reference up to
    # the cut, utterance 1 the rest.
    reference = normalize(rec.reference).split()
    before = normalize(" ".join(f.text for f in first)).split()
    after = normalize(" ".join(f.text for f in second)).split()
    split = len(before)
    assert 0.3 * len(reference) < split < 0.7 * len(reference), before
    assert wer(" ".join(reference[:split]), " ".join(before)) < 0.25, before
    assert wer(" ".join(reference[split:]), " ".join(after)) < 0.25, after

    # The journal holds the same finals, cut included.
    assert isinstance(journal, dict)
    assert [Final.from_json(f) for f in journal["finals"]] == cut.finals
