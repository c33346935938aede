"""The speaker connection (``/ws/speak``): start message, admission, audio in, captions out, end.

Steps: check the token; wait for the ``start`` message (`start_timeout`); admit (hard cap, load estimate,
one live speaker per session); open or resume the session's journal; answer ``ready``; then read audio
(and ``flush`` messages, which finalise the open utterance at once) until ``end``, a disconnect, a protocol
error or a server shutdown. Whatever ended the stream, the session is
then finished: the open utterance is finalised from the audio received, every final journaled and sent,
and the speaker (if still connected) gets ``ended`` and a close code. Nothing finalised is ever lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from typing import Literal

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from streamer.config import StreamConfig
from streamer.core.audio import AudioDecoder
from streamer.core.session import StreamSession
from streamer.errors import StreamerError
from streamer.protocol import (
    EndMessage,
    FlushMessage,
    SpeakerProtocol,
    StartMessage,
    ended_message,
    error_message,
    ready_message,
    speaker_message,
    warning_message,
)
from streamer.server import errors
from streamer.server.auth import check_speaker, request_token
from streamer.server.boundary import refuse, until_stopped
from streamer.server.context import ServerContext
from streamer.server.errors import ServerBusy, ShuttingDown, StartTimeout, close_for
from streamer.server.fanout import Subscriber
from streamer.server.pipeline import LivePipeline
from streamer.server.rooms import Room
from streamer.sinks.manager import SinkError

logger = logging.getLogger(__name__)

WRITER_DRAIN_TIMEOUT = 10.0
"""Seconds the last messages (finals, ``ended``) may take to reach a speaker before the socket is closed."""

StreamEnd = Literal["end", "closed", "shutdown"]


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


async def _receive_start(ws: ServerConnection, proto: SpeakerProtocol, timeout: float) -> StartMessage:
    try:
        message = await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        raise StartTimeout(f"no start message within {timeout:g} s") from None
    if isinstance(message, bytes):
        proto.receive_audio(message)  # raises: audio before start
    parsed = proto.receive_text(str(message))
    assert isinstance(parsed, StartMessage)  # an end message before start raises in receive_text
    return parsed


async def admit(ctx: ServerContext, start: StartMessage) -> Room:
    if not ctx.accepting:
        raise ShuttingDown("the server is shutting down")
    limit = ctx.config.max_speakers
    if ctx.registry.speakers() >= limit:
        ctx.metrics.refuse_speaker("max_speakers")
        raise ServerBusy(f"the server has its maximum of {limit} speakers; try again later")
    if not ctx.scheduler.admits(ctx.registry.speakers()):
        ctx.metrics.refuse_speaker("load")
        raise ServerBusy(
            "the server is at capacity (one more speaker would fall behind real time); try again later"
        )
    room = await ctx.registry.get(start.session or new_session_id(), create=True)
    assert room is not None
    room.claim()
    if ctx.registry.speakers() > limit:  # another speaker got in while the room loaded
        room.unclaim()
        ctx.metrics.refuse_speaker("max_speakers")
        raise ServerBusy(f"the server has its maximum of {limit} speakers; try again later")
    return room


def stream_config(base: StreamConfig, start: StartMessage) -> StreamConfig:
    if start.language is None:
        return base
    return dataclasses.replace(base, decode=dataclasses.replace(base.decode, language=start.language))


async def handle_speaker(ws: ServerConnection, ctx: ServerContext) -> None:
    proto = SpeakerProtocol(ctx.config.max_frame_bytes)
    try:
        assert ws.request is not None
        check_speaker(ctx.config, request_token(ws.request))
        start = await _receive_start(ws, proto, ctx.config.start_timeout)
        room = await admit(ctx, start)
    except ConnectionClosed:
        return
    except StreamerError as exc:
        await refuse(ws, exc, ctx.metrics)
        return
    try:
        await _serve_session(ws, ctx, room, start, proto)
    finally:
        ctx.registry.discard_if_unused(room)


async def _serve_session(
    ws: ServerConnection, ctx: ServerContext, room: Room, start: StartMessage, proto: SpeakerProtocol
) -> None:
    config = ctx.config
    sid = room.session_id
    resumed = room.meta is not None
    try:
        await room.open_journal(start.title, start.language)
    except OSError as exc:
        room.unclaim()
        logger.exception("[%s] cannot open the journal", sid)
        await refuse(ws, StreamerError(f"cannot open the session's journal: {exc}"), ctx.metrics, sid)
        return
    start_time, first_index, first_utterance, context = room.resume_point() if resumed else (0.0, 0, 0, "")
    session = StreamSession(
        sid,
        stream_config(config.stream, start),
        ctx.detector.stream(),
        start_time=start_time,
        first_index=first_index,
        first_utterance_id=first_utterance,
        context=context,
    )
    pipeline = LivePipeline(
        room,
        session,
        AudioDecoder(start.audio),
        ctx.scheduler,
        ctx.metrics,
        max_backlog=config.max_backlog,
        lag_warning=config.lag_warning,
    )
    speaker = Subscriber(ws, sid, "speaker", config.viewer_queue, ctx.metrics)
    room.speaker, room.pipeline = speaker, pipeline
    ctx.metrics.speakers_accepted += 1
    writer = asyncio.create_task(speaker.run(), name=f"speaker-writer-{sid}")
    speaker.offer(ready_message(sid, resumed, start_time), essential=True)
    room.notify_viewers(speaker_message("speaker_joined", sid))
    fmt = start.audio
    logger.info(
        "[%s] speaker %s at %.2f s (%d Hz %s x%d)",
        sid,
        "resumed" if resumed else "started",
        start_time,
        fmt.sample_rate,
        fmt.encoding.value,
        fmt.channels,
    )
    pipeline.start()

    close_code, close_reason = errors.NORMAL, "ended"
    try:
        await _start_sinks(ctx, room, start, start_time, speaker)
        how, error = await _read_until_end(ws, proto, pipeline, ctx)
        if error is not None:
            close_code, code = close_for(error)
            close_reason = str(error)
            ctx.metrics.connection_error(code)
            logger.info("[%s] %s: %s (close %d)", sid, code, error, close_code)
            speaker.offer(error_message(code, str(error)), essential=True)
        elif how == "shutdown":
            close_code, close_reason = errors.GOING_AWAY, "server shutting down"
        logger.info(
            "[%s] stream %s at %.2f s; finishing", sid, how if error is None else "failed", session.time
        )
        await pipeline.finish()
    except Exception:
        logger.exception("[%s] speaker session failed", sid)
        close_code, close_reason = errors.INTERNAL_ERROR, "internal error"
    finally:
        await room.release(session.time)
        ended = ended_message(sid, session.time, len(room.finals))
        speaker.offer(ended, essential=True)
        room.notify_viewers(ended)
        room.notify_viewers(speaker_message("speaker_left", sid))
        speaker.close_after(close_code, close_reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(writer), WRITER_DRAIN_TIMEOUT)
        writer.cancel()
        logger.info("[%s] session finished: %d finals in total", sid, len(room.finals))


async def _start_sinks(
    ctx: ServerContext, room: Room, start: StartMessage, start_time: float, speaker: Subscriber
) -> None:
    """Attaches the start message's caption sinks (and keeps any still draining from before)."""
    origin = time.time() - start_time  # wall-clock time of audio time 0, for YouTube's timestamps
    try:
        await ctx.registry.sinks.session_started(room.session_id, room.journal.directory, origin, start.sinks)
    except SinkError as exc:
        logger.warning("[%s] sinks refused: %s", room.session_id, exc)
        speaker.offer(warning_message("sinks", str(exc)), essential=True)


async def _read_until_end(
    ws: ServerConnection, proto: SpeakerProtocol, pipeline: LivePipeline, ctx: ServerContext
) -> tuple[StreamEnd, StreamerError | None]:
    try:
        how = await until_stopped(_read_audio(ws, proto, pipeline), ctx.stopping)
    except StreamerError as exc:
        return "closed", exc
    return ("shutdown", None) if how is None else (how, None)


async def _read_audio(ws: ServerConnection, proto: SpeakerProtocol, pipeline: LivePipeline) -> StreamEnd:
    """Reads until the end message or a disconnect; raises `ProtocolError` / `AudioFormatError`."""
    try:
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                parsed = proto.receive_text(message)
                if isinstance(parsed, EndMessage):
                    return "end"
                if isinstance(parsed, FlushMessage):
                    pipeline.cut()
                continue
            pipeline.feed(proto.receive_audio(message))
            await pipeline.wait_for_capacity()
    except ConnectionClosed:
        return "closed"
