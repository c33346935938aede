"""Crash safety: ``streamer serve`` killed with SIGKILL mid-session, restarted on the same data folder.

The restarted server lists the session, serves every final any client saw, and lets the speaker resume the
same transcript with times and indexes continuing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from streamer.audiofile import read_audio
from streamer.client import endpoint, stream_audio
from streamer.core.audio import to_pcm16
from streamer.events import Final

EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata" / "short"
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(port: int, path: str) -> object:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def server_process(data_dir: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamer.server",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                http_json(port, "/healthz")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{log.read_text()}")
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


async def speak_until_finals(port: int, count: int) -> list[Final]:
    """Streams the JFK clip as session 'crash'; returns once `count` finals came back, the socket dropped."""
    samples = read_audio(EVALDATA / "jfk_inaugural_excerpt.flac")
    ws = await connect(endpoint(f"ws://127.0.0.1:{port}", "/ws/speak"))
    await ws.send(json.dumps({"type": "start", "version": 1, "session": "crash", "sample_rate": 16000}))
    assert json.loads(await ws.recv())["type"] == "ready"
    seen: list[Final] = []

    async def send() -> None:
        for offset in range(0, len(samples), 1600):
            await ws.send(to_pcm16(samples[offset : offset + 1600]))
            await asyncio.sleep(0.02)

    sender = asyncio.create_task(send())
    async with asyncio.timeout(60):
        while len(seen) < count:
            message = json.loads(await ws.recv())
            if message["type"] == "final":
                seen.append(Final.from_json(message))
    sender.cancel()
    ws.transport.abort()
    return seen


def test_kill_9_then_restart_and_resume(tmp_path: Path) -> None:
    if not EVALDATA.is_dir():
        pytest.skip(f"evaluation data not found at {EVALDATA}")
    data, log = tmp_path / "data", tmp_path / "server.log"
    port = free_port()
    with server_process(data, port, log) as process:
        seen = asyncio.run(speak_until_finals(port, 2))
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    port = free_port()
    with server_process(data, port, log) as process:
        sessions = http_json(port, "/sessions")
        assert isinstance(sessions, list) and [s["id"] for s in sessions] == ["crash"]
        assert sessions[0]["status"] == "ended"
        document = http_json(port, "/sessions/crash/transcript.json")
        assert isinstance(document, dict)
        journal = [Final.from_json(f) for f in document["finals"]]
        assert journal[: len(seen)] == seen

        samples = read_audio(EVALDATA / "librispeech_1089-134686-0001.flac")
        result = asyncio.run(stream_audio(f"ws://127.0.0.1:{port}", samples, session="crash", realtime=False))
        assert result.resumed and result.start_time >= journal[-1].end
        assert result.finals, "the resumed session produced no captions"
        assert result.finals[0].index == journal[-1].index + 1
        assert result.finals[0].utterance_id > journal[-1].utterance_id
        assert result.finals[0].start >= result.start_time
        after = http_json(port, "/sessions/crash/transcript.json")
        assert isinstance(after, dict)
        everything = [Final.from_json(f) for f in after["finals"]]
        assert everything == journal + result.finals
        assert [f.index for f in everything] == list(range(len(everything)))
        assert all(a.end <= b.start + 1e-6 for a, b in zip(everything, everything[1:], strict=False))

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
