"""Drop-in endpoints (streamer.server.compat) driven by the other APIs' own client libraries.

Against an in-process server with the scripted transcriber and VAD of test_session (no model): the real
`openai` client, WhisperLive's own `Client` class driven as `TranscriptionTeeClient.play_file` drives it
(the scripted audio encodes its clock in exact float samples, which the tee client's 16-bit resampling
would destroy; its module imports PyAudio at the top, stubbed when PyAudio is missing), and the real
`deepgram-sdk` v3 live client. ``-m slow`` selects the tests that run the real model over real speech with
the unmodified clients (WhisperLive's `TranscriptionClient`, PyAudio included) and check the word error
rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import sys
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from benchmarks.scoring import wer
from streamer.audiofile import read_audio
from streamer.config import SAMPLE_RATE
from streamer.server import http as http_routes
from streamer.server.app import StreamerServer
from streamer.server.compat.deepgram import ResultsView, parse_options
from streamer.server.compat.openai import BadRequest, parse_form
from streamer.server.compat.whisperlive import SegmentsView
from streamer.server.settings import ServerConfig
from tests.test_session import Script, ScriptedTranscriber
from tests.test_sinks import ScriptedDetector, http, scripted_server

TOKEN = "compat-speaker-token-123"
SCRIPT = Script(regions=((0.5, 4.0), (5.0, 9.0)), total=10.0)
TIMEOUT = 30.0
PACE = 0.5
"""Seconds of wall time per second of audio when a test streams like a live source (twice real time)."""


def float_wav(samples: np.ndarray) -> bytes:
    """A 32-bit float mono WAV (the scripted audio survives PyAV's decoding bit for bit)."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, SAMPLE_RATE, SAMPLE_RATE * 4, 4, 32)  # 3: IEEE float
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + (b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    )


def spoken(script: Script) -> str:
    return " ".join(w.text for w in script.words)


@contextlib.asynccontextmanager
async def real_server(tmp_path: Path, transcriber: Any, detector: Any) -> AsyncIterator[str]:
    """A server with the real model and VAD (conftest's session fixtures: loaded once)."""
    server = StreamerServer(ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path), transcriber, detector)
    port = await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.shutdown()


# -- pure translation -------------------------------------------------------------------------------------


def multipart(fields: dict[str, str], file: bytes) -> tuple[str, bytes]:
    boundary = "b0undary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    head = "".join(parts) + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    )
    return (
        f"multipart/form-data; boundary={boundary}",
        head.encode() + file + f"\r\n--{boundary}--\r\n".encode(),
    )


def test_openai_form_parsing() -> None:
    content_type, body = multipart(
        {"model": "whisper-1", "response_format": "verbose_json", "timestamp_granularities[]": "word"},
        b"\0\1\r\n",
    )
    form = parse_form(content_type, body)
    assert form.file == b"\0\1\r\n" and form.filename == "a.wav"
    assert form.response_format == "verbose_json" and form.word_timestamps
    with pytest.raises(BadRequest):
        parse_form(*multipart({"response_format": "xml"}, b"x"))
    with pytest.raises(BadRequest):
        parse_form("application/json", b"{}")


def test_whisperlive_segments_keep_the_last_n_completed_and_the_tail() -> None:
    view = SegmentsView("u1", 2)
    for i in range(3):
        out = list(view({"type": "final", "start": i, "end": i + 0.5, "text": f"w{i}", "words": []}))
    tail = json.loads(
        list(view({"type": "partial", "start": 2.0, "end": 3.2, "stable": "w2", "unstable": "x"}))[0]
    )
    assert tail["uid"] == "u1"
    assert tail["segments"] == [
        {"start": "1.000", "end": "1.500", "text": "w1", "completed": True},
        {"start": "2.000", "end": "2.500", "text": "w2", "completed": True},
        {"start": "2.500", "end": "3.200", "text": "x", "completed": False},
    ]
    assert json.loads(out[0])["segments"][-1]["completed"] is True


def test_deepgram_results_shape() -> None:
    view = ResultsView(
        parse_options({"interim_results": "true", "utterance_end_ms": "1000", "vad_events": "true"})
    )
    assert json.loads(list(view({"type": "speech_started", "utterance_id": 0, "time": 0.5}))[0])["type"] == (
        "SpeechStarted"
    )
    word = {"start": 0.5, "end": 0.9, "text": "Hello,", "probability": 0.8}
    ended = list(view({"type": "speech_ended", "utterance_id": 0, "time": 1.2}))
    result = json.loads(
        list(
            view(
                {
                    "type": "final",
                    "utterance_id": 0,
                    "start": 0.5,
                    "end": 0.9,
                    "text": "Hello,",
                    "words": [word],
                    "ends_utterance": True,
                }
            )
        )[0]
    )
    assert json.loads(ended[0])["type"] == "UtteranceEnd"
    assert result["is_final"] and result["speech_final"] and result["channel_index"] == [0, 1]
    assert not result["from_finalize"]
    alt = result["channel"]["alternatives"][0]
    assert alt["transcript"] == "Hello," and alt["confidence"] == 0.8
    assert alt["words"] == [
        {"word": "hello", "start": 0.5, "end": 0.9, "confidence": 0.8, "punctuated_word": "Hello,"}
    ]


def dg_final(utterance: int, text: str, closing: bool) -> dict[str, Any]:
    word = {"start": 1.0, "end": 1.5, "text": text, "probability": 0.9}
    return {"type": "final", "utterance_id": utterance, "start": 1.0, "end": 1.5, "text": text,
            "words": [word], "ends_utterance": closing}  # fmt: skip


def dg_complete(utterance: int, stable: str) -> dict[str, Any]:
    return {"type": "partial", "utterance_id": utterance, "start": 1.0, "end": 1.5, "stable": stable,
            "unstable": "", "complete": True}  # fmt: skip


def test_deepgram_speech_final_once_per_utterance_and_from_finalize_once_per_finalize() -> None:
    view = ResultsView(parse_options({}))

    def results(message: dict[str, Any]) -> list[dict[str, Any]]:
        return [json.loads(m) for m in view(message)]

    def flags(result: dict[str, Any]) -> tuple[str, bool, bool, bool]:
        text = result["channel"]["alternatives"][0]["transcript"]
        return text, result["is_final"], result["speech_final"], result["from_finalize"]

    # Nothing to finalise: the Finalize is answered at once by an empty final.
    answer = view.finalize()
    assert answer is not None and flags(json.loads(answer)) == ("", True, False, True)
    # Utterance 0 ends at a pause; its final decode commits the last words: speech_final on them.
    assert results({"type": "speech_started", "utterance_id": 0, "time": 0.5}) == []
    assert [flags(r) for r in results(dg_final(0, "One", False))] == [("One", True, False, False)]
    assert results({"type": "speech_ended", "utterance_id": 0, "time": 2.0}) == []
    assert [flags(r) for r in results(dg_final(0, "two.", True))] == [("two.", True, True, False)]
    assert results(dg_complete(0, "One two.")) == []
    # Utterance 1 is cut by Finalize; its final decode adds nothing, so an empty final carries both flags.
    results({"type": "speech_started", "utterance_id": 1, "time": 3.0})
    assert [flags(r) for r in results(dg_final(1, "Three", False))] == [("Three", True, False, False)]
    results({"type": "speech_ended", "utterance_id": 1, "time": 4.0})
    assert view.finalize() is None  # answered when utterance 1 is complete
    assert [flags(r) for r in results(dg_complete(1, "Three"))] == [("", True, True, True)]
    # Utterance 2: cut, and its last final answers.
    results({"type": "speech_started", "utterance_id": 2, "time": 5.0})
    assert view.finalize() is None
    assert [flags(r) for r in results(dg_final(2, "Four.", True))] == [("Four.", True, True, True)]
    assert results(dg_complete(2, "Four.")) == []
    assert not view.undecided and not view.finalizing and not view.answered


# -- OpenAI: the real openai client -----------------------------------------------------------------------


def openai_client(address: str, key: str) -> Any:
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"http://{address}/v1", api_key=key, max_retries=0, timeout=TIMEOUT * 4)


def test_openai_client_transcribes_an_upload_as_a_session(tmp_path: Path) -> None:
    audio = tmp_path / "talk.wav"
    audio.write_bytes(float_wav(SCRIPT.audio()))

    async def scenario() -> None:
        async with scripted_server(tmp_path / "data", SCRIPT, speaker_token=TOKEN) as (_, address):
            client = openai_client(address, TOKEN)

            def create(**kwargs: Any) -> Any:
                with audio.open("rb") as file:
                    return client.audio.transcriptions.create(model="whisper-1", file=file, **kwargs)

            plain = await asyncio.to_thread(create)
            assert plain.text == spoken(SCRIPT)
            text = await asyncio.to_thread(create, response_format="text")
            assert text.strip() == spoken(SCRIPT)
            srt = await asyncio.to_thread(create, response_format="srt")
            assert srt.startswith("1\n00:00:00,") and "-->" in srt
            vtt = await asyncio.to_thread(create, response_format="vtt")
            assert vtt.startswith("WEBVTT")
            verbose = await asyncio.to_thread(
                create,
                response_format="verbose_json",
                timestamp_granularities=["word", "segment"],
                language="en",
            )
            assert verbose.language == "en" and verbose.duration == pytest.approx(SCRIPT.total)
            assert " ".join(s.text.strip() for s in verbose.segments) == spoken(SCRIPT)
            assert [w.word for w in verbose.words] == [w.text for w in SCRIPT.words]
            assert all(0.0 <= w.start < w.end <= SCRIPT.total for w in verbose.words)

            status, sessions = await http(address, "GET", "/sessions")
            uploads = [s for s in sessions if s["id"].startswith("upload-")]
            assert status == 200 and len(uploads) == 5 and not any(s["live"] for s in uploads)
            status, doc = await http(address, "GET", f"/sessions/{uploads[0]['id']}/transcript.json")
            assert status == 200 and " ".join(f["text"] for f in doc["finals"]) == spoken(SCRIPT)

            openai = pytest.importorskip("openai")
            with pytest.raises(openai.AuthenticationError):
                await asyncio.to_thread(
                    openai_client(address, "wrong").audio.transcriptions.create,
                    model="whisper-1",
                    file=audio.read_bytes(),
                )

    asyncio.run(scenario())


def test_openai_route_refuses_bad_uploads(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with scripted_server(tmp_path, SCRIPT) as (_, address):
            openai = pytest.importorskip("openai")
            client = openai_client(address, "any")
            with pytest.raises(openai.BadRequestError):
                await asyncio.to_thread(
                    client.audio.transcriptions.create, model="whisper-1", file=("x.wav", b"not audio at all")
                )
            status, _ = await http(address, "GET", "/v1/audio/transcriptions")
            assert status == 405
            status, sessions = await http(address, "GET", "/sessions")
            assert sessions == []

    asyncio.run(scenario())


def test_openai_route_answers_413_without_reading_an_oversized_body(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with scripted_server(tmp_path, SCRIPT) as (_, address):
            host, port = address.rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            size = 26 * 1024 * 1024
            writer.write(
                f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {address}\r\n"
                f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {size}\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
            writer.close()
            assert status_line.split()[1] == b"413"

    asyncio.run(scenario())


class SlowTranscriber(ScriptedTranscriber):
    def decode(self, requests: Any) -> Any:
        time.sleep(0.15)
        return super().decode(requests)


def test_an_upload_may_outlast_the_handshake_timeout_which_still_holds_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_routes, "OPEN_TIMEOUT", 0.3)
    audio = tmp_path / "talk.wav"
    audio.write_bytes(float_wav(SCRIPT.audio()))

    async def scenario() -> None:
        config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
        server = StreamerServer(config, SlowTranscriber(SCRIPT), ScriptedDetector())  # type: ignore[arg-type]
        port = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)  # says nothing
            started = time.monotonic()
            with audio.open("rb") as file:
                answer = await asyncio.to_thread(
                    openai_client(f"127.0.0.1:{port}", "any").audio.transcriptions.create,
                    model="whisper-1",
                    file=file,
                )
            assert answer.text == spoken(SCRIPT) and time.monotonic() - started > 0.3
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # dropped after OPEN_TIMEOUT
            writer.close()
        finally:
            await server.shutdown()

    asyncio.run(scenario())


# -- WhisperLive: its own Client class --------------------------------------------------------------------


def whisperlive_client_class() -> Any:
    pytest.importorskip("websocket")
    try:
        import pyaudio  # noqa: F401
    except ImportError:  # imported at the top of whisper_live.client, unused by its Client class
        sys.modules.setdefault("pyaudio", types.ModuleType("pyaudio"))
    client = pytest.importorskip("whisper_live.client")
    return client.Client


def drive_whisperlive(port: int, samples: np.ndarray) -> Any:
    """What `TranscriptionTeeClient.play_file` does, without playback: float32 packets, then END_OF_AUDIO."""
    client_class = whisperlive_client_class()
    client = client_class("127.0.0.1", port, lang="en", model="small", log_transcription=False)
    deadline = time.monotonic() + TIMEOUT
    while not client.recording and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.recording and client.server_backend == "faster_whisper"
    chunk = 4096
    for i in range(0, len(samples), chunk):
        client.send_packet_to_server(samples[i : i + chunk].astype(np.float32).tobytes())
    client.send_packet_to_server(client_class.END_OF_AUDIO.encode("utf-8"))
    client.ws_thread.join(TIMEOUT)
    assert not client.ws_thread.is_alive()
    return client


def test_whisperlive_client_gets_its_segments_on_the_root_path(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with scripted_server(tmp_path, SCRIPT) as (server, address):
            client = await asyncio.to_thread(drive_whisperlive, server.port, SCRIPT.audio())
            assert client._server_disconnect  # the server said DISCONNECT
            assert " ".join(s["text"] for s in client.transcript) == spoken(SCRIPT)
            assert all(isinstance(s["start"], str) and s["completed"] for s in client.transcript)
            status, sessions = await http(address, "GET", "/sessions")
            assert [s["finals"] > 0 for s in sessions if s["id"].startswith("whisperlive-")] == [True]
            status, page = await http(address, "GET", "/")
            assert status == 200 and "<html" in page.lower()  # GET / is still the index page

    asyncio.run(scenario())


def test_whisperlive_path_refuses_a_non_whisperlive_first_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            scripted_server(tmp_path, SCRIPT) as (_, address),
            connect(f"ws://{address}/whisperlive") as ws,
        ):
            await ws.send(json.dumps({"type": "start"}))
            reply = json.loads(await ws.recv())
            assert reply["status"] == "ERROR"
            with pytest.raises(ConnectionClosed):
                await ws.recv()

    asyncio.run(scenario())


# -- Deepgram: the real deepgram-sdk live client ----------------------------------------------------------


def drive_deepgram(port: int, key: str, pcm: bytes, settle: float = 0.0) -> dict[str, list[Any]]:
    """Streams `pcm` with the SDK's live client; with `settle`, waits until finals stop coming for that long
    before ``finish()`` (the SDK gives the server only 0.5 s after ``CloseStream``, too little for a final
    decode by a CPU model)."""
    deepgram = pytest.importorskip("deepgram")
    options = deepgram.DeepgramClientOptions(url=f"http://127.0.0.1:{port}")
    client = deepgram.DeepgramClient(key, options)
    connection = client.listen.websocket.v("1")
    seen: dict[str, list[Any]] = {"final": [], "interim": [], "utterance_end": [], "metadata": []}

    def on_transcript(_: Any, result: Any, **kwargs: Any) -> None:
        seen["final" if result.is_final else "interim"].append(result)

    events = deepgram.LiveTranscriptionEvents
    connection.on(events.Transcript, on_transcript)
    connection.on(
        events.UtteranceEnd, lambda _, utterance_end, **kw: seen["utterance_end"].append(utterance_end)
    )
    connection.on(events.Metadata, lambda _, metadata, **kw: seen["metadata"].append(metadata))
    live = deepgram.LiveOptions(
        encoding="linear16",
        sample_rate=16000,
        channels=1,
        interim_results=True,
        utterance_end_ms="1000",
        language="en",
        vad_events=True,
    )
    assert connection.start(live)
    step = 3200  # bytes: 0.1 s of 16 kHz PCM16
    for i in range(0, len(pcm), step):
        connection.send(pcm[i : i + step])
        time.sleep(PACE * step / 2 / 16000)  # at twice real time, so interim results can form
    connection.finalize()
    time.sleep(0.5)
    deadline = time.monotonic() + TIMEOUT * 2
    while settle and time.monotonic() < deadline:
        count = len(seen["final"])
        time.sleep(settle)
        if seen["final"] and len(seen["final"]) == count:
            break
    connection.finish()
    return seen


def test_deepgram_sdk_streams_and_gets_results(tmp_path: Path) -> None:
    pcm = (np.clip(SCRIPT.audio(), -1, 1) * 32767).astype("<i2").tobytes()
    script = Script(regions=SCRIPT.regions, total=SCRIPT.total)

    async def scenario() -> None:
        async with scripted_server(tmp_path, script, speaker_token=TOKEN) as (server, address):
            seen = await asyncio.to_thread(drive_deepgram, server.port, TOKEN, pcm)
            finals = seen["final"]
            words = [w.punctuated_word for r in finals for w in r.channel.alternatives[0].words]
            assert " ".join(words) == spoken(script)
            transcripts = [r.channel.alternatives[0].transcript for r in finals]
            assert " ".join(t for t in transcripts if t) == spoken(script)
            assert sum(r.speech_final for r in finals) == len(script.regions)  # one per utterance
            assert sum(r.from_finalize for r in finals) == 1  # drive_deepgram's one Finalize
            assert seen["interim"] and len(seen["utterance_end"]) == len(script.regions)
            assert len(seen["metadata"]) == 1 and seen["metadata"][0].duration == pytest.approx(script.total)
            status, sessions = await http(address, "GET", "/sessions")
            assert any(s["id"].startswith("deepgram-") for s in sessions)

    asyncio.run(scenario())


def test_deepgram_refuses_a_wrong_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with scripted_server(tmp_path, SCRIPT, speaker_token=TOKEN) as (_, address):
            headers = {"Authorization": "Token wrong"}
            async with connect(
                f"ws://{address}/v1/listen?encoding=linear16", additional_headers=headers
            ) as ws:
                assert json.loads(await ws.recv())["type"] == "error"
                with pytest.raises(ConnectionClosed):
                    await ws.recv()

    asyncio.run(scenario())


def test_a_deepgram_session_has_viewers_and_finishes_on_shutdown(tmp_path: Path) -> None:
    pcm = (np.clip(SCRIPT.audio(), -1, 1) * 32767).astype("<i2").tobytes()

    async def scenario() -> None:
        async with scripted_server(tmp_path, SCRIPT) as (server, address):
            url = f"ws://{address}/v1/listen?encoding=linear16&sample_rate=16000"
            async with connect(url) as speaker:
                await speaker.send(pcm[: len(pcm) // 2])
                await speaker.send(json.dumps({"type": "KeepAlive"}))
                _, sessions = await http(address, "GET", "/sessions")
                (live,) = [s for s in sessions if s["live"]]
                assert live["id"].startswith("deepgram-")
                async with connect(f"ws://{address}/ws/view?session={live['id']}") as viewer:
                    assert json.loads(await viewer.recv())["type"] == "history"
                    await server.shutdown()
                    seen = [json.loads(m) async for m in speaker]
                    viewed = [json.loads(m) async for m in viewer]
            assert speaker.close_code == 1001
            assert seen[-1]["type"] == "Metadata" and seen[-1]["duration"] == pytest.approx(SCRIPT.total / 2)
            results = [m["channel"]["alternatives"][0]["transcript"] for m in seen if m["type"] == "Results"]
            results = [t for t in results if t]  # an utterance whose final decode added nothing: an empty one
            finals = [m["text"] for m in viewed if m["type"] == "final"]
            assert results and results == finals
            assert [m["type"] for m in viewed][-2:] == ["ended", "speaker_left"]

    asyncio.run(scenario())


async def until_closed(ws: Any) -> list[dict[str, Any]]:
    """Every message until the server closes the connection, whatever its close code."""
    seen = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            seen.append(json.loads(await ws.recv()))
    return seen


def test_a_bad_deepgram_control_message_ends_the_stream_with_an_error_and_keeps_its_finals(
    tmp_path: Path,
) -> None:
    pcm = (np.clip(SCRIPT.audio(), -1, 1) * 32767).astype("<i2").tobytes()

    async def scenario() -> None:
        async with scripted_server(tmp_path, SCRIPT) as (_, address):
            url = f"ws://{address}/v1/listen?encoding=linear16&sample_rate=16000"
            async with connect(url) as speaker:
                await speaker.send(pcm)
                await speaker.send(json.dumps({"type": "Rewind"}))
                seen = await until_closed(speaker)
            assert speaker.close_code == 1007
            (error,) = [m for m in seen if m["type"] == "Error"]
            assert "Rewind" in error["description"] and error["message"] == "malformed_message"
            assert seen[-1]["type"] == "Metadata"
            _, sessions = await http(address, "GET", "/sessions")
            (session,) = sessions
            assert not session["live"]
            _, text = await http(address, "GET", f"/sessions/{session['id']}/transcript.txt")
            assert " ".join(text.split()) == spoken(SCRIPT)  # everything sent before the error is final

    asyncio.run(scenario())


def test_a_whisperlive_frame_of_nans_ends_the_stream_with_an_error_and_keeps_its_finals(
    tmp_path: Path,
) -> None:
    samples = SCRIPT.audio().astype("<f4").tobytes()

    async def scenario() -> None:
        async with (
            scripted_server(tmp_path, SCRIPT) as (_, address),
            connect(f"ws://{address}/whisperlive") as ws,
        ):
            await ws.send(json.dumps({"uid": "u1", "language": "en", "task": "transcribe", "use_vad": True}))
            assert json.loads(await ws.recv())["message"] == "SERVER_READY"
            await ws.send(samples)
            await ws.send(np.full(1600, np.nan, dtype="<f4").tobytes())  # not audio
            seen = await until_closed(ws)
            assert ws.close_code == 1007
            (error,) = [m for m in seen if m.get("status") == "ERROR"]
            assert error["uid"] == "u1" and error["message"]
            assert seen[-1].get("message") == "DISCONNECT"
            _, sessions = await http(address, "GET", "/sessions")
            (session,) = sessions
            _, text = await http(address, "GET", f"/sessions/{session['id']}/transcript.txt")
            assert " ".join(text.split()) == spoken(SCRIPT)

    asyncio.run(scenario())


# -- the real model ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_openai_client_with_the_real_model(
    tmp_path: Path, recordings: Any, transcriber: Any, detector: Any
) -> None:
    rec = recordings["jfk_inaugural_excerpt"]

    async def scenario() -> None:
        async with real_server(tmp_path, transcriber, detector) as address:
            client = openai_client(address, "any")
            for fmt in ("json", "text", "srt", "verbose_json"):
                with rec.audio.open("rb") as file:
                    answer = await asyncio.to_thread(
                        client.audio.transcriptions.create, model="whisper-1", file=file, response_format=fmt
                    )
                if fmt == "json":
                    text = answer.text
                elif fmt == "verbose_json":
                    text = " ".join(s.text for s in answer.segments)
                    assert answer.duration == pytest.approx(rec.duration, abs=0.1)
                elif fmt == "srt":
                    text = " ".join(
                        t for t in answer.splitlines() if t and "-->" not in t and not t.isdigit()
                    )
                else:
                    text = answer
                assert wer(rec.reference, text) < 0.2, (fmt, text)

    asyncio.run(scenario())


@pytest.mark.slow
def test_whisperlive_transcription_client_with_the_real_model(
    tmp_path: Path, recordings: Any, monkeypatch: pytest.MonkeyPatch, transcriber: Any, detector: Any
) -> None:
    """The unmodified `TranscriptionClient` (PyAudio and all) plays the file in real time to ``/``."""
    pytest.importorskip("pyaudio")
    client_module = pytest.importorskip("whisper_live.client")
    rec = recordings["jfk_inaugural_excerpt"]
    monkeypatch.chdir(tmp_path)  # the client writes its resampled copy and the SRT to the working folder

    def play(port: int) -> list[dict[str, Any]]:
        client = client_module.TranscriptionClient(
            "127.0.0.1",
            port,
            lang="en",
            model="small",
            mute_audio_playback=True,
            log_transcription=False,
            output_transcription_path=str(tmp_path / "out.srt"),
        )
        client.client.disconnect_if_no_response_for = 3  # its default 15 s is a busy-wait
        client(str(rec.audio))
        return list(client.client.transcript)

    async def scenario() -> None:
        async with real_server(tmp_path / "data", transcriber, detector) as address:
            transcript = await asyncio.to_thread(play, int(address.rsplit(":", 1)[1]))
            text = " ".join(s["text"] for s in transcript)
            assert wer(rec.reference, text) < 0.2, text
            assert (tmp_path / "out.srt").read_text().strip()

    asyncio.run(scenario())


@pytest.mark.slow
def test_deepgram_sdk_with_the_real_model(
    tmp_path: Path, recordings: Any, transcriber: Any, detector: Any
) -> None:
    rec = recordings["jfk_inaugural_excerpt"]
    silence = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)  # the speaker stops talking, then hangs up
    pcm = (np.clip(np.concatenate([read_audio(rec.audio), silence]), -1, 1) * 32767).astype("<i2").tobytes()

    async def scenario() -> None:
        async with real_server(tmp_path, transcriber, detector) as address:
            port = int(address.rsplit(":", 1)[1])
            seen = await asyncio.to_thread(drive_deepgram, port, "any", pcm, 3.0)
            text = " ".join(r.channel.alternatives[0].transcript for r in seen["final"])
            assert wer(rec.reference, text) < 0.2, text
            assert seen["metadata"]

    asyncio.run(scenario())


FINALIZE_AT = 5.0
"""Audio seconds after which the Finalize test sends ``Finalize``: mid-sentence, the speaker never pauses."""
FINALIZE_DEADLINE = 3.0
"""Wall seconds within which the ``from_finalize`` answer must come (one final decode, on a CPU)."""


async def stream_with_finalize(
    address: str, pcm: bytes
) -> tuple[list[tuple[float, dict[str, Any]]], float, float]:
    """Streams `pcm` in real time to ``/v1/listen`` with a raw websocket, sending ``Finalize`` after
    `FINALIZE_AT` seconds; returns every message with its arrival (monotonic), and when Finalize and the last
    audio were sent."""
    query = "encoding=linear16&sample_rate=16000&interim_results=true&vad_events=true&utterance_end_ms=1000"
    received: list[tuple[float, dict[str, Any]]] = []
    async with connect(f"ws://{address}/v1/listen?{query}&language=en") as ws:

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    received.append((time.monotonic(), json.loads(raw)))

        reader = asyncio.create_task(read())
        step = 3200  # 0.1 s of PCM16
        finalized_at = 0.0
        began = time.monotonic()
        for i in range(0, len(pcm), step):
            await ws.send(pcm[i : i + step])
            sent = (i + step) / 2 / SAMPLE_RATE
            if not finalized_at and sent >= FINALIZE_AT:
                await ws.send(json.dumps({"type": "Finalize"}))
                finalized_at = time.monotonic()
            await asyncio.sleep(max(0.0, began + sent - time.monotonic()))
        ended_at = time.monotonic()
        await ws.send(json.dumps({"type": "CloseStream"}))
        await asyncio.wait_for(reader, TIMEOUT * 2)
    return received, finalized_at, ended_at


@pytest.mark.slow
def test_deepgram_finalize_mid_speech_finalises_at_once_with_the_real_model(
    tmp_path: Path, recordings: Any, transcriber: Any, detector: Any
) -> None:
    rec = recordings["ljspeech_LJ001-0001"]  # one sentence of 9.7 s read without a pause the VAD would end
    silence = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    pcm = (np.clip(np.concatenate([read_audio(rec.audio), silence]), -1, 1) * 32767).astype("<i2").tobytes()

    async def scenario() -> None:
        async with real_server(tmp_path, transcriber, detector) as address:
            received, finalized_at, ended_at = await stream_with_finalize(address, pcm)
        finals = [(at, m) for at, m in received if m["type"] == "Results" and m["is_final"]]
        answers = [(at, m) for at, m in finals if m["from_finalize"]]
        assert len(answers) == 1, [m for _, m in finals]
        at, answer = answers[0]
        text = answer["channel"]["alternatives"][0]["transcript"]
        # The open utterance was cut where the audio stood and finalised at once, not at the end of the
        # sentence 4.6 s later: the answer carries words and ends at the cut.
        assert at - finalized_at < FINALIZE_DEADLINE, (at - finalized_at, text)
        assert at < ended_at - 3.0  # well before the stream ended (6.7 s of audio after the Finalize)
        assert text and answer["speech_final"]
        assert answer["start"] + answer["duration"] <= FINALIZE_AT + 0.2
        # The stream went on: the rest of the sentence is a new utterance, transcribed and finalised too.
        later = [m for t, m in finals if t > at and m["channel"]["alternatives"][0]["transcript"]]
        assert later and all(m["start"] >= FINALIZE_AT - 0.5 for m in later)
        assert sum(m["speech_final"] for _, m in finals) == 2  # the cut utterance and the rest
        assert sum(m["type"] == "SpeechStarted" for _, m in received) == 2
        starts = [m["start"] for _, m in finals]
        assert starts == sorted(starts)
        transcript = " ".join(m["channel"]["alternatives"][0]["transcript"] for _, m in finals)
        assert wer(rec.reference, transcript) < 0.2, transcript
        assert received[-1][1]["type"] == "Metadata"

    asyncio.run(scenario())
