"""The one layer every compatibility adapter stands on: a Streamer session driven from foreign messages.

`open_session` admits a stream exactly as a ``/ws/speak`` speaker is admitted (`speaker.admit`: hard cap,
load estimate, one live speaker per session), opens its journal and starts its `LivePipeline` on the shared
scheduler (its caption sinks can be added through the sinks API while it is live). The adapter feeds audio
bytes in the format it announced, may `cut` the open utterance (a client's "finalize now", as a speaker's
``flush``); `serve_stream` reads its messages until the stream ends and then calls `CompatSession.close`,
which finalises the open utterance, journals every final and releases the room, as a speaker's end does.

Events reach an adapter through a `Translator` installed as the room's speaker subscriber: it is a
`Subscriber` (same bounded queue and overflow policy: partials dropped first, finals never) whose `offer`
turns each of Streamer's server messages into the adapter's own messages as it is offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from streamer.core.audio import AudioDecoder, AudioFormat
from streamer.core.session import StreamSession
from streamer.errors import StreamerError
from streamer.protocol import StartMessage, ended_message, speaker_message
from streamer.server import errors
from streamer.server.boundary import until_stopped
from streamer.server.context import ServerContext
from streamer.server.errors import StartTimeout, close_for
from streamer.server.fanout import Subscriber
from streamer.server.pipeline import LivePipeline
from streamer.server.rooms import Room
from streamer.server.speaker import WRITER_DRAIN_TIMEOUT, StreamEnd, admit, stream_config

logger = logging.getLogger(__name__)

Translate = Callable[[dict[str, Any]], Iterable[str]]
"""One Streamer server message (parsed) -> the adapter's messages (text frames) to send for it."""


class Translator(Subscriber):
    """The room's speaker subscriber for a foreign client: Streamer messages in, translated messages out."""

    def __init__(
        self,
        connection: ServerConnection,
        session_id: str,
        limit: int,
        ctx: ServerContext,
        translate: Translate,
    ) -> None:
        super().__init__(connection, session_id, "compat speaker", limit, ctx.metrics)
        self.translate = translate

    def offer(self, text: str, essential: bool) -> bool:
        """Translates one Streamer message and queues what it becomes (with the same essentiality)."""
        try:
            outgoing = list(self.translate(json.loads(text)))
        except Exception:
            logger.exception("[%s] cannot translate %s", self.session_id, text[:80])
            return False
        queued = True
        for message in outgoing:
            queued = super().offer(message, essential) and queued
        return queued

    def send_now(self, text: str) -> bool:
        """Queues one message of the adapter's own, untranslated (essential: never dropped for a partial)."""
        return super().offer(text, True)


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What a foreign client asked for, in Streamer's terms."""

    session_id: str
    audio: AudioFormat
    language: str | None = None
    title: str | None = None
    prompt: str = ""
    """Text the first decodes are conditioned on (as a resumed session's context)."""


class CompatSession:
    """One admitted, running session (see the module docstring)."""

    def __init__(
        self, ctx: ServerContext, room: Room, pipeline: LivePipeline, writer: asyncio.Task[None] | None
    ):
        self.ctx = ctx
        self.room = room
        self.pipeline = pipeline
        self._writer = writer
        self._closed = False

    @property
    def session_id(self) -> str:
        return self.room.session_id

    @property
    def session(self) -> StreamSession:
        return self.pipeline.session

    async def feed(self, data: bytes) -> None:
        """Audio bytes in the announced format; paced by the decode backlog. Raises `AudioFormatError`."""
        self.pipeline.feed(data)
        await self.pipeline.wait_for_capacity()

    def cut(self) -> None:
        """Finalises the open utterance now; the stream goes on (its final follows as soon as decoded)."""
        self.pipeline.cut()

    async def finish(self) -> None:
        """Finalises the open utterance and waits until every final is journaled and queued."""
        await self.pipeline.finish()

    async def close(self, code: int | None = None, reason: str = "") -> None:
        """Finishes the session and releases the room; with a translator, closes the socket with `code`."""
        if self._closed:
            return
        self._closed = True
        room = self.room
        try:
            await self.pipeline.finish()
        except Exception:
            logger.exception("[%s] compat session failed while finishing", self.session_id)
        finally:
            speaker = room.speaker
            await room.release(self.session.time)
            room.notify_viewers(ended_message(self.session_id, self.session.time, len(room.finals)))
            room.notify_viewers(speaker_message("speaker_left", self.session_id))
            if speaker is not None and self._writer is not None:
                if code is not None:
                    speaker.close_after(code, reason)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._writer), WRITER_DRAIN_TIMEOUT)
                self._writer.cancel()
            self.ctx.registry.discard_if_unused(room)
            logger.info("[%s] compat session finished: %d finals in total", self.session_id, len(room.finals))


async def open_session(
    ctx: ServerContext, request: SessionRequest, speaker: Translator | None = None
) -> CompatSession:
    """Admits and starts a new session; raises `StreamerError` (e.g. `ServerBusy`) if it cannot."""
    start = StartMessage(
        audio=request.audio, session=request.session_id, language=request.language, title=request.title
    )
    room = await admit(ctx, start)
    if room.meta is not None or room.finals:
        room.unclaim()
        ctx.registry.discard_if_unused(room)
        raise StreamerError(f"session {request.session_id!r} already exists")
    try:
        await room.open_journal(start.title, start.language)
    except OSError as exc:
        room.unclaim()
        ctx.registry.discard_if_unused(room)
        logger.exception("[%s] cannot open the journal", room.session_id)
        raise StreamerError(f"cannot open the session's journal: {exc}") from exc
    config = ctx.config
    session = StreamSession(
        room.session_id, stream_config(config.stream, start), ctx.detector.stream(), context=request.prompt
    )
    pipeline = LivePipeline(
        room,
        session,
        AudioDecoder(request.audio),
        ctx.scheduler,
        ctx.metrics,
        max_backlog=config.max_backlog,
        lag_warning=config.lag_warning,
    )
    room.speaker, room.pipeline = speaker, pipeline
    ctx.metrics.speakers_accepted += 1
    # No sinks of its own, but live for the sinks API (POST /sessions/{id}/sinks), as a speaker's session is.
    await ctx.registry.sinks.session_started(room.session_id, room.journal.directory, time.time(), ())
    writer = asyncio.create_task(speaker.run(), name=f"compat-writer-{room.session_id}") if speaker else None
    room.notify_viewers(speaker_message("speaker_joined", room.session_id))
    logger.info(
        "[%s] compat session started (%d Hz %s)",
        room.session_id,
        request.audio.sample_rate,
        request.audio.encoding.value,
    )
    pipeline.start()
    return CompatSession(ctx, room, pipeline, writer)


MessageHandler = Callable[[str | bytes], Awaitable[bool]]
"""Handles one client message; returns True when the client has ended its stream."""


async def receive_first(ws: ServerConnection, timeout: float) -> str | bytes:
    """The client's opening message; raises `StartTimeout`."""
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        raise StartTimeout(f"no opening message within {timeout:g} s") from None


async def run_stream(ws: ServerConnection, ctx: ServerContext, on_message: MessageHandler) -> StreamEnd:
    """Reads client messages until the stream ends, the client goes away or the server shuts down.

    Raises `StreamerError` (`AudioFormatError`, `ProtocolError`) for a message that cannot be used.
    """

    async def read() -> StreamEnd:
        try:
            while True:
                if await on_message(await ws.recv()):
                    return "end"
        except ConnectionClosed:
            return "closed"

    how = await until_stopped(read(), ctx.stopping)
    return "shutdown" if how is None else how


async def serve_stream(
    ws: ServerConnection,
    ctx: ServerContext,
    compat: CompatSession,
    on_message: MessageHandler,
    *,
    on_error: Callable[[str, str], object],
    on_close: Callable[[], object],
) -> None:
    """Runs an admitted stream to its end, then closes its session with the close code that says how.

    The open utterance is finalised and journaled whatever happened, and its finals reach the client before
    anything else: then a `StreamerError` raised by `on_message` (counted) goes to `on_error(reason, code)`,
    which sends it in the adapter's own words, and `on_close` sends the adapter's last message.
    """
    close_code, reason = errors.NORMAL, "ended"
    failure: tuple[str, str] | None = None
    try:
        try:
            how = await run_stream(ws, ctx, on_message)
            if how == "shutdown":
                close_code, reason = errors.GOING_AWAY, "server shutting down"
        except StreamerError as exc:
            close_code, code = close_for(exc)
            reason = str(exc)
            ctx.metrics.connection_error(code)
            failure = reason, code
        await compat.finish()
    finally:
        if failure is not None:
            on_error(*failure)
        on_close()
        await compat.close(close_code, reason)
