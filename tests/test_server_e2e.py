"""End to end: the real server on 127.0.0.1, the real model and VAD, real speech, real websocket clients.

Audio is streamed faster than real time (the server paces fast clients), so the file runs in minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.scoring import normalize, wer
from streamer.audiofile import read_audio
from streamer.client import StreamResult, endpoint, stream_audio, watch
from streamer.config import ModelConfig
from streamer.core.audio import to_pcm16
from streamer.engines.silero import SileroVad
from streamer.engines.whisper import WhisperTranscriber
from streamer.events import Final
from streamer.server.app import StreamerServer
from streamer.server.settings import ServerConfig

EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata" / "short"
JFK = "jfk_inaugural_excerpt"
LIBRI_A = "librispeech_1089-134686-0000"
LIBRI_B = "librispeech_2412-153948-0000"
LJ = "ljspeech_LJ001-0001"
FAST = 0.1  # frame seconds; streamed with no sleeps: the server's backpressure paces the client
TIMEOUT = 60.0


@dataclass(frozen=True)
class Models:
    transcriber: WhisperTranscriber
    detector: SileroVad


@pytest.fixture(scope="module")
def models() -> Models:
    if not EVALDATA.is_dir():
        pytest.skip(f"evaluation data not found at {EVALDATA}")
    return Models(WhisperTranscriber(ModelConfig()), SileroVad())


def audio(name: str) -> np.ndarray:
    return read_audio(EVALDATA / f"{name}.flac")


def reference(name: str) -> str:
    return (EVALDATA / f"{name}.ref.txt").read_text(encoding="utf-8")


def text_of(finals: list[Final]) -> str:
    return " ".join(f.text for f in finals)


@contextlib.asynccontextmanager
async def running(
    models: Models, data_dir: Path, **settings: Any
) -> AsyncIterator[tuple[StreamerServer, str]]:
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=data_dir, **settings)
    server = StreamerServer(config, models.transcriber, models.detector)
    port = await server.start()
    try:
        yield server, f"ws://127.0.0.1:{port}"
    finally:
        await server.shutdown()


async def http_get(url: str, path: str, token: str | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of a GET on the server."""
    http_url = url.replace("ws://", "http://") + path

    def get() -> tuple[int, str, str]:
        request = urllib.request.Request(
            http_url, headers={"Authorization": f"Bearer {token}"} if token else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()

    return await asyncio.to_thread(get)


async def speak(url: str, name: str, **options: Any) -> StreamResult:
    options.setdefault("realtime", False)
    return await asyncio.wait_for(stream_audio(url, audio(name), **options), TIMEOUT)


async def expect_refusal(ws: ClientConnection) -> tuple[dict[str, Any] | None, int | None]:
    """The error message (if any) and the close code the server ended the connection with."""
    error = None
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "error":
                error = message
    await ws.wait_closed()
    return error, ws.close_code


async def wait_until(predicate: Any, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


# -- happy path -----------------------------------------------------------------------------------------


def test_speaker_and_two_viewers_get_the_same_finals(models: Models, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(models, tmp_path) as (_, url):
            ready = asyncio.Event()
            first_final = asyncio.Event()

            def on_message(message: dict[str, Any]) -> None:
                if message["type"] == "ready":
                    ready.set()
                elif message["type"] == "final":
                    first_final.set()

            speaker = asyncio.create_task(speak(url, JFK, session="jfk", title="JFK", on_message=on_message))
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            early = asyncio.create_task(watch(url, "jfk"))
            await asyncio.wait_for(first_final.wait(), TIMEOUT)
            late = asyncio.create_task(watch(url, "jfk"))
            result = await speaker
            early_finals = await asyncio.wait_for(early, TIMEOUT)
            late_finals = await asyncio.wait_for(late, TIMEOUT)

            assert result.session == "jfk" and not result.resumed
            assert result.ended is not None and result.close_code == 1000
            assert any(m["type"] == "partial" for m in result.messages)
            assert any(m["type"] == "speech_started" for m in result.messages)
            assert [f.index for f in result.finals] == list(range(len(result.finals)))
            assert early_finals == result.finals and late_finals == result.finals
            assert wer(reference(JFK), result.text) < 0.25, result.text

            status, kind, body = await http_get(url, "/sessions/jfk/transcript.txt")
            assert status == 200 and kind.startswith("text/plain")
            assert " ".join(body.split()) == " ".join(result.text.split())
            status, _, body = await http_get(url, "/sessions/jfk/transcript.json")
            document = json.loads(body)
            assert [Final.from_json(f) for f in document["finals"]] == result.finals
            assert document["title"] == "JFK"
            for fmt in ("md", "srt", "vtt"):
                status, _, body = await http_get(url, f"/sessions/jfk/transcript.{fmt}")
                assert status == 200 and body
            status, _, body = await http_get(url, "/sessions")
            sessions = json.loads(body)
            assert [s["id"] for s in sessions] == ["jfk"] and sessions[0]["status"] == "ended"
            status, _, body = await http_get(url, "/sessions/jfk")
            assert json.loads(body)["finals"] == len(result.finals)
            assert (await http_get(url, "/sessions/nope"))[0] == 404
            assert (await http_get(url, "/sessions/jfk/transcript.doc"))[0] == 404
            assert (await http_get(url, "/nothing"))[0] == 404
            status, _, body = await http_get(url, "/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
            status, kind, metrics = await http_get(url, "/metrics")
            assert status == 200 and kind.startswith("text/plain")
            for name in (
                "streamer_speakers 0",
                "streamer_viewers ",
                "streamer_audio_seconds_total 11",
                "streamer_decode_queue_depth 0",
                "streamer_decode_seconds_bucket",
                "streamer_viewer_messages_dropped_total 0",
                "streamer_speakers_refused_total",
                "streamer_session_lag_seconds",
            ):
                assert name in metrics, name

    asyncio.run(scenario())


def test_three_speakers_at_once_get_their_own_captions(models: Models, tmp_path: Path) -> None:
    names = [LIBRI_A, LIBRI_B, LJ]

    async def scenario() -> list[StreamResult]:
        async with running(models, tmp_path) as (_, url):
            return await asyncio.gather(*(speak(url, name, session=f"s{i}") for i, name in enumerate(names)))

    results = asyncio.run(scenario())
    for i, result in enumerate(results):
        assert result.session == f"s{i}"
        for j, name in enumerate(names):
            score = wer(reference(name), result.text)
            if i == j:
                assert score < 0.3, (name, result.text)
            else:
                assert score > 0.7, (name, result.text)


# -- failures -------------------------------------------------------------------------------------------


def test_speaker_vanishing_mid_utterance_loses_nothing(models: Models, tmp_path: Path) -> None:
    samples = audio(JFK)

    async def scenario() -> None:
        async with running(models, tmp_path) as (_, url):
            seen: list[Final] = []
            ws = await connect(endpoint(url, "/ws/speak"))
            await ws.send(json.dumps({"type": "start", "version": 1, "session": "cut", "sample_rate": 16000}))
            assert json.loads(await ws.recv())["type"] == "ready"
            frame = 1600
            cut = int(7.5 * 16000)  # inside "ask not what your country can do for you"
            for offset in range(0, cut, frame):
                await ws.send(to_pcm16(samples[offset : min(cut, offset + frame)]))
            async with asyncio.timeout(TIMEOUT):
                while not seen:
                    message = json.loads(await ws.recv())
                    if message["type"] == "final":
                        seen.append(Final.from_json(message))
            ws.transport.abort()  # no close frame, no end message

            async def ended() -> bool:
                status, _, body = await http_get(url, "/sessions/cut")
                return status == 200 and json.loads(body)["status"] == "ended"

            await wait_until(ended)
            _, _, body = await http_get(url, "/sessions/cut/transcript.json")
            journal = [Final.from_json(f) for f in json.loads(body)["finals"]]
            assert journal[: len(seen)] == seen
            assert len(journal) > len(seen), "the open utterance was not finalised"
            said = set(normalize(reference(JFK)).split())
            later = normalize(text_of(journal[len(seen) :])).split()
            assert later and sum(w in said for w in later) >= 0.8 * len(later), later
            assert journal[-1].end <= 7.6

    asyncio.run(scenario())


def test_flush_mid_speech_finalises_the_open_utterance_and_the_stream_goes_on(
    models: Models, tmp_path: Path
) -> None:
    samples = np.concatenate([audio(LJ), np.zeros(2 * 16000, dtype=np.float32)])  # one sentence, no pause
    flush_at = 5.0

    async def scenario() -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        async with running(models, tmp_path) as (_, url), connect(endpoint(url, "/ws/speak")) as ws:
            await ws.send(
                json.dumps({"type": "start", "version": 1, "session": "flush", "sample_rate": 16000})
            )
            assert json.loads(await ws.recv())["type"] == "ready"
            frame = 1600
            for offset in range(0, len(samples), frame):
                await ws.send(to_pcm16(samples[offset : offset + frame]))
                if offset + frame == int(flush_at * 16000):
                    await ws.send(json.dumps({"type": "flush"}))
            await ws.send(json.dumps({"type": "end"}))
            async with asyncio.timeout(TIMEOUT):
                async for raw in ws:
                    messages.append(json.loads(raw))
        return messages

    messages = asyncio.run(scenario())
    kinds = [(m["type"], m.get("utterance_id")) for m in messages]
    ended = [m for m in messages if m["type"] == "speech_ended"]
    started = [m for m in messages if m["type"] == "speech_started"]
    # The flush ended utterance 0 where the audio stood (the VAD's last whole frame) and opened no gap.
    assert [m["utterance_id"] for m in started] == [0, 1] and [m["utterance_id"] for m in ended] == [0, 1]
    assert flush_at - 0.05 <= ended[0]["time"] <= flush_at and started[1]["time"] == ended[0]["time"]
    # Utterance 0 was closed (its last final, then its complete partial) before anything of utterance 1.
    closing = next(i for i, m in enumerate(messages) if m["type"] == "partial" and m["complete"])
    assert messages[closing]["utterance_id"] == 0
    assert all(u == 0 for kind, u in kinds[:closing] if kind in ("final", "partial"))
    finals = [Final.from_json(m) for m in messages if m["type"] == "final"]
    first = [f for f in finals if f.utterance_id == 0]
    assert first and first[-1].end <= ended[0]["time"] + 1e-3
    closers = [f.utterance_id for f in finals if f.ends_utterance]  # at most one each (none: nothing left)
    assert closers == sorted(set(closers)) and set(closers) <= {0, 1}
    assert [m["utterance_id"] for m in messages if m["type"] == "partial" and m["complete"]] == [0, 1]
    assert wer(reference(LJ), text_of(finals)) < 0.2, text_of(finals)


BAD_START = {"type": "start", "version": 1, "sample_rate": 16000, "encoding": "pcm16"}


async def bad_client(
    url: str, *messages: str | bytes, path: str = "/ws/speak"
) -> tuple[str | None, int | None]:
    async with connect(endpoint(url, path), max_size=None) as ws:
        for message in messages:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(message)
        error, code = await expect_refusal(ws)
    return (error["code"] if error else None), code


def test_bad_inputs_get_close_codes_while_a_healthy_session_goes_on(models: Models, tmp_path: Path) -> None:
    start = json.dumps(BAD_START)
    cases: list[tuple[str, tuple[str | bytes, ...], str, str | None, int]] = [
        ("binary before start", (b"\x00\x01" * 100,), "/ws/speak", "unexpected_message", 1008),
        ("end before start", ('{"type": "end"}',), "/ws/speak", "unexpected_message", 1008),
        ("malformed json", ("{not json",), "/ws/speak", "malformed_message", 1007),
        (
            "unknown type",
            (start, b"\x00\x00" * 800, '{"type": "pause"}'),
            "/ws/speak",
            "unexpected_message",
            1008,
        ),
        ("second start", (start, start), "/ws/speak", "unexpected_message", 1008),
        (
            "bad encoding",
            (json.dumps({**BAD_START, "encoding": "opus"}),),
            "/ws/speak",
            "unsupported_audio",
            1003,
        ),
        (
            "bad rate",
            (json.dumps({**BAD_START, "sample_rate": 12345}),),
            "/ws/speak",
            "unsupported_audio",
            1003,
        ),
        ("bad version", (json.dumps({**BAD_START, "version": 9}),), "/ws/speak", "unsupported_version", 1003),
        (
            "bad session id",
            (json.dumps({**BAD_START, "session": "../x"}),),
            "/ws/speak",
            "invalid_message",
            1007,
        ),
        (
            "nan audio",
            (json.dumps({**BAD_START, "encoding": "float32"}), np.full(800, np.nan, "<f4").tobytes()),
            "/ws/speak",
            "invalid_audio",
            1007,
        ),
        ("oversized frame", (start, b"\x00" * 70_000), "/ws/speak", "message_too_big", 1009),
        ("frame past the library limit", (start, b"\x00" * 300_000), "/ws/speak", None, 1009),
        (
            "busy session",
            (json.dumps({**BAD_START, "session": "healthy"}),),
            "/ws/speak",
            "session_busy",
            4409,
        ),
        ("unknown session", (), "/ws/view?session=nobody", "unknown_session", 4404),
        ("no session", (), "/ws/view", "unknown_session", 4404),
        ("no start in time", (), "/ws/speak", "start_timeout", 1008),
    ]

    async def scenario() -> StreamResult:
        async with running(models, tmp_path, max_frame_bytes=64 * 1024, start_timeout=1.0) as (_, url):
            ready = asyncio.Event()

            def on_message(message: dict[str, Any]) -> None:
                if message["type"] == "ready":
                    ready.set()

            healthy = asyncio.create_task(
                speak(
                    url, LIBRI_A, session="healthy", realtime=True, on_message=on_message, frame_seconds=0.1
                )
            )
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            for name, messages, path, code, close in cases:
                got = await asyncio.wait_for(bad_client(url, *messages, path=path), 10)
                assert got == (code, close), name
            assert not healthy.done()
            _, _, metrics = await http_get(url, "/metrics")
            assert 'streamer_connection_errors_total{code="session_busy"} 1' in metrics
            return await healthy

    result = asyncio.run(scenario())
    assert result.close_code == 1000 and result.error is None
    assert wer(reference(LIBRI_A), result.text) < 0.3, result.text


def test_too_many_connections_from_one_address(models: Models, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(models, tmp_path, max_connections_per_address=2) as (_, url):
            await speak(url, "librispeech_1089-134691-0000", session="s")
            first = await connect(endpoint(url, "/ws/view", session="s"))
            second = await connect(endpoint(url, "/ws/view", session="s"))
            assert json.loads(await first.recv())["type"] == "history"
            assert await bad_client(url, path="/ws/view?session=s") == ("too_many_connections", 4429)
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_admission_refuses_past_max_speakers(models: Models, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(models, tmp_path, max_speakers=1) as (_, url):
            ready = asyncio.Event()
            first = asyncio.create_task(
                speak(
                    url,
                    LIBRI_A,
                    realtime=True,
                    on_message=lambda m: ready.set() if m["type"] == "ready" else None,
                )
            )
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            assert await bad_client(url, json.dumps(BAD_START)) == ("server_busy", 1013)
            _, _, metrics = await http_get(url, "/metrics")
            assert 'streamer_speakers_refused_total{reason="max_speakers"} 1' in metrics
            assert (await first).ended is not None
            assert (await speak(url, "librispeech_1089-134691-0000")).ended is not None  # room again

    asyncio.run(scenario())


def test_admission_refuses_when_the_load_estimate_is_past_real_time(models: Models, tmp_path: Path) -> None:
    async def scenario() -> None:
        # A headroom so small that one measured decode already projects past it for a single speaker.
        async with running(models, tmp_path, admission_headroom=0.01) as (_, url):
            assert (await speak(url, "librispeech_1089-134691-0000")).finals  # nothing measured yet: admitted
            assert await bad_client(url, json.dumps(BAD_START)) == ("server_busy", 1013)
            _, _, metrics = await http_get(url, "/metrics")
            assert 'streamer_speakers_refused_total{reason="load"} 1' in metrics

    asyncio.run(scenario())


def test_tokens(models: Models, tmp_path: Path) -> None:
    speaker_token, viewer_token = "speak-secret-1", "view-secret-1"

    async def scenario() -> None:
        async with running(models, tmp_path, speaker_token=speaker_token, viewer_token=viewer_token) as (
            _,
            url,
        ):
            start = json.dumps({**BAD_START, "session": "auth"})
            assert await bad_client(url, start) == ("unauthorized", 4401)
            assert await bad_client(url, start, path="/ws/speak?token=wrong-token") == ("unauthorized", 4401)
            assert await bad_client(url, start, path=f"/ws/speak?token={viewer_token}") == ("forbidden", 4403)
            result = await speak(url, "librispeech_1089-134691-0000", session="auth", token=speaker_token)
            assert result.finals
            assert await bad_client(url, path="/ws/view?session=auth") == ("unauthorized", 4401)
            assert await watch(url, "auth", token=viewer_token) == result.finals
            history = await connect(endpoint(url, "/ws/view", session="auth", token=viewer_token))
            assert json.loads(await history.recv())["finals"] == [f.to_json() for f in result.finals]
            await history.close()
            assert (await http_get(url, "/sessions"))[0] == 401
            assert (await http_get(url, "/sessions", token=viewer_token))[0] == 200
            assert (await http_get(url, "/healthz"))[0] == 200

    asyncio.run(scenario())


def test_public_host_needs_tokens(tmp_path: Path) -> None:
    from streamer.errors import ConfigError

    with pytest.raises(ConfigError):
        ServerConfig(host="0.0.0.0", data_dir=tmp_path)
    ServerConfig(host="0.0.0.0", data_dir=tmp_path, speaker_token="x" * 12, viewer_token="y" * 12)
    ServerConfig(host="0.0.0.0", data_dir=tmp_path, allow_public_without_auth=True)


def test_graceful_shutdown_finalises_open_utterances(models: Models, tmp_path: Path) -> None:
    samples = audio(JFK)

    async def scenario() -> None:
        server = StreamerServer(ServerConfig(port=0, data_dir=tmp_path), models.transcriber, models.detector)
        port = await server.start()
        url = f"ws://127.0.0.1:{port}"
        ws = await connect(endpoint(url, "/ws/speak"))
        await ws.send(json.dumps({**BAD_START, "session": "bye"}))
        assert json.loads(await ws.recv())["type"] == "ready"
        for offset in range(0, 7 * 16000, 1600):
            await ws.send(to_pcm16(samples[offset : offset + 1600]))
        viewer = await connect(endpoint(url, "/ws/view", session="bye"))
        await asyncio.sleep(0.5)
        await server.shutdown()
        speaker_msgs = [json.loads(m) async for m in ws]
        viewer_msgs = [json.loads(m) async for m in viewer]
        assert ws.close_code == 1001 and viewer.close_code == 1001
        assert speaker_msgs[-1]["type"] == "ended"
        assert any(m["type"] == "ended" for m in viewer_msgs)
        finals = [Final.from_json(m) for m in speaker_msgs if m["type"] == "final"]
        from streamer.storage.journal import JournalStore

        journal = JournalStore(tmp_path).journal("bye")
        assert list(journal.load()) == finals and finals
        meta = journal.read_meta()
        assert meta is not None and meta.status == "ended" and meta.time == pytest.approx(7.0, abs=0.01)

    asyncio.run(scenario())
