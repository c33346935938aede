"""The Python client of the live server (asyncio, websockets' client): stream audio as a speaker, or watch.

- `stream_audio` / `stream_file`: send a ``start`` message, PCM16 frames of `frame_seconds` (paced at real
  time, or as fast as the server accepts with ``realtime=False``), then ``end``; collect every message until
  the server's ``ended``.
- `stream_frames`: the same for frames from any async source, which may yield `FLUSH` among them to have the
  caption being spoken committed at once (a ``flush`` message: push-to-talk released, a turn handed over).
- `watch`: join a session as a viewer; yields the history, then live partials and finals.

Each server message is handed to `on_message` as a dict as it arrives (the CLI prints captions from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streamer.config import SAMPLE_RATE
from streamer.core.audio import AudioFormat, to_pcm16
from streamer.errors import StreamerError
from streamer.events import Final
from streamer.protocol import FlushMessage, StartMessage, parse_server_text

DEFAULT_URL = "ws://127.0.0.1:8765"
FRAME_SECONDS = 0.1
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message the client accepts (a viewer's history of a long session can be big)."""

FLUSH = FlushMessage()
"""Yielded among `stream_frames`' frames: the open utterance is finalised where the audio so far ends."""

MessageHandler = Callable[[dict[str, Any]], None]


class ServerError(StreamerError):
    """The server refused or ended the connection with an error."""

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        super().__init__(f"{message} ({code}" + (f", close {close_code})" if close_code else ")"))
        self.code = code
        self.close_code = close_code


@dataclass(slots=True)
class StreamResult:
    """What a speaker received."""

    session: str = ""
    resumed: bool = False
    start_time: float = 0.0
    finals: list[Final] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    ended: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    close_code: int | None = None

    @property
    def text(self) -> str:
        return " ".join(f.text for f in self.finals)


def endpoint(url: str, path: str, **params: str | None) -> str:
    """``ws://host:port`` (or http(s)://) + `path` + query, e.g. ``endpoint(url, "/ws/view", session=id)``."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, query, ""))


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _collect(ws: ClientConnection, result: StreamResult, on_message: MessageHandler | None) -> None:
    """Reads server messages into `result` until ``ended`` or the connection closes."""
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            message = parse_server_text(str(raw))
            result.messages.append(message)
            if on_message is not None:
                on_message(message)
            kind = message["type"]
            if kind == "final":
                result.finals.append(Final.from_json(message))
            elif kind == "error":
                result.error = message
            elif kind == "ended":
                result.ended = message
                return


async def stream_audio(
    url: str, samples: np.ndarray, *, realtime: bool = True, **options: Any
) -> StreamResult:
    """Streams 16 kHz mono float32 `samples` as a speaker (paced by the audio clock unless `realtime` is
    false); returns what the server sent back. Options as for `stream_frames`."""
    frame_seconds = options.pop("frame_seconds", FRAME_SECONDS)
    return await stream_frames(url, _paced(samples, realtime, frame_seconds), **options)


async def stream_live(url: str, chunks: Iterator[np.ndarray], **options: Any) -> StreamResult:
    """Streams chunks from a blocking source that paces itself (a microphone) as they come."""
    return await stream_frames(url, _from_thread(chunks), **options)


async def stream_frames(
    url: str,
    frames: AsyncIterator[np.ndarray | FlushMessage],
    *,
    session: str | None = None,
    title: str | None = None,
    language: str | None = None,
    token: str | None = None,
    on_message: MessageHandler | None = None,
) -> StreamResult:
    """Streams 16 kHz mono float32 frames (and `FLUSH` cuts) as a speaker; returns what the server sent back.

    Raises `ServerError` if the server refuses the stream (no ``ready``).
    """
    start = StartMessage(AudioFormat(), session=session, language=language, title=title)
    result = StreamResult()
    async with connect(
        endpoint(url, "/ws/speak"), additional_headers=_headers(token), max_size=MAX_MESSAGE_BYTES
    ) as ws:
        await ws.send(json.dumps(start.to_json()))
        try:
            first = parse_server_text(str(await ws.recv()))
        except ConnectionClosed as exc:
            raise ServerError(
                "closed", "the server closed the connection", exc.rcvd.code if exc.rcvd else None
            ) from None
        if first["type"] != "ready":
            await ws.wait_closed()
            raise ServerError(str(first.get("code")), str(first.get("message")), ws.close_code)
        result.session, result.resumed, result.start_time = first["session"], first["resumed"], first["time"]
        result.messages.append(first)
        if on_message is not None:
            on_message(first)
        reader = asyncio.create_task(_collect(ws, result, on_message))
        try:
            await _send_frames(ws, frames, reader)
            if not reader.done():
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps({"type": "end"}))
            await reader
        finally:
            reader.cancel()
        await ws.close()
    result.close_code = ws.close_code
    return result


async def _paced(samples: np.ndarray, realtime: bool, frame_seconds: float) -> AsyncIterator[np.ndarray]:
    frame = max(1, int(round(frame_seconds * SAMPLE_RATE)))
    started = time.monotonic()
    for offset in range(0, len(samples), frame):
        if realtime:
            delay = started + offset / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield samples[offset : offset + frame]


LIVE_QUEUE_CHUNKS = 100
"""Chunks from a live source waiting to be sent; past this the oldest are dropped (the server is gone or
the network stalls, and late audio is worth less than current audio)."""


async def _from_thread(chunks: Iterator[np.ndarray]) -> AsyncIterator[np.ndarray]:
    """Runs a blocking chunk iterator on a thread and yields its chunks on the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[np.ndarray | BaseException | None] = asyncio.Queue(maxsize=LIVE_QUEUE_CHUNKS)
    stop = threading.Event()

    def put(item: np.ndarray | BaseException | None) -> None:
        if queue.full() and isinstance(item, np.ndarray):
            queue.get_nowait()  # drop the oldest chunk
        queue.put_nowait(item)

    def pump() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                loop.call_soon_threadsafe(put, chunk)
            loop.call_soon_threadsafe(put, None)
        except Exception as exc:  # handed to the event loop, which re-raises it
            loop.call_soon_threadsafe(put, exc)

    thread = threading.Thread(target=pump, name="audio-source", daemon=True)
    thread.start()
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


async def _send_frames(
    ws: ClientConnection, frames: AsyncIterator[np.ndarray | FlushMessage], reader: asyncio.Task[None]
) -> None:
    async for frame in frames:
        if reader.done():  # the server ended the stream (an error)
            return
        try:
            await ws.send(
                json.dumps({"type": "flush"}) if isinstance(frame, FlushMessage) else to_pcm16(frame)
            )
        except ConnectionClosed:
            return


async def stream_file(url: str, path: str | Path, **options: Any) -> StreamResult:
    """`stream_audio` of an audio file (any format PyAV reads); the title defaults to the file name."""
    from streamer.audiofile import read_audio

    samples = await asyncio.to_thread(read_audio, path)
    options.setdefault("title", Path(path).stem)
    return await stream_audio(url, samples, **options)


async def watch(
    url: str,
    session: str,
    *,
    token: str | None = None,
    on_message: MessageHandler | None = None,
    follow: bool = False,
) -> list[Final]:
    """Watches a session; returns its finals (history + live) when the speaker's stream ends, at once for a
    session with no live speaker (or, with `follow`, when the connection closes). Raises `ServerError` if the
    server refuses."""
    finals: list[Final] = []
    async with connect(
        endpoint(url, "/ws/view", session=session),
        additional_headers=_headers(token),
        max_size=MAX_MESSAGE_BYTES,
    ) as ws:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                message = parse_server_text(str(raw))
                if on_message is not None:
                    on_message(message)
                kind = message["type"]
                if kind == "error":
                    await ws.wait_closed()
                    raise ServerError(str(message.get("code")), str(message.get("message")), ws.close_code)
                if kind == "history":
                    finals.extend(Final.from_json(f) for f in message["finals"])
                    if not message["live"] and not follow:
                        break  # an ended session: its transcript is all there is
                elif kind == "final":
                    finals.append(Final.from_json(message))
                elif kind == "ended" and not follow:
                    break
    return finals
