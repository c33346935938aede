"""Builds the server from a `ServerConfig`, runs it on the current event loop, and shuts it down in steps.

`StreamerServer.start()` can run on any existing loop (tests start it on port 0 and read the bound port);
`serve()` is the CLI's coroutine: start, log where to connect, wait for SIGINT/SIGTERM, shut down.

Graceful shutdown, in named steps:
1. stop accepting: the listening socket closes, new handshakes get HTTP 503;
2. finish speakers: each live session finalises its open utterance, journals and sends every final, and
   its speaker gets ``ended`` and close 1001 (bounded by `shutdown_timeout`);
3. drain caption sinks: each delivers what it still has queued (bounded by `shutdown_timeout`), then stops;
4. close the remaining connections (viewers) with 1001 going away;
5. stop the inference scheduler.
Journals are fsync'd on every final, so there is nothing left to flush at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve

from streamer.engines.base import SpeechDetector, Transcriber
from streamer.server import errors
from streamer.server.boundary import refuse, remote_address
from streamer.server.compat.deepgram import DEEPGRAM_PATH, handle_deepgram
from streamer.server.compat.whisperlive import WHISPERLIVE_PATH, handle_whisperlive
from streamer.server.context import ServerContext
from streamer.server.errors import TooManyConnections
from streamer.server.http import BodyConnection, HttpRoutes
from streamer.server.metrics import Metrics
from streamer.server.rooms import Registry
from streamer.server.scheduler import InferenceScheduler
from streamer.server.settings import ServerConfig
from streamer.server.speaker import handle_speaker
from streamer.server.viewer import handle_viewer
from streamer.storage.journal import JournalStore

logger = logging.getLogger(__name__)

LIBRARY_SIZE_FACTOR = 4
"""websockets' own `max_size` is this many times `max_frame_bytes`: frames between the two limits get a JSON
error from the handler before close 1009; beyond it the library closes with 1009 by itself."""
CLOSE_TIMEOUT = 5.0
SPEAKER_HANDLERS: dict[str, Callable[[ServerConnection, ServerContext], Awaitable[None]]] = {
    "/ws/speak": handle_speaker,
    WHISPERLIVE_PATH: handle_whisperlive,
    "/": handle_whisperlive,  # WhisperLive's clients connect to the root; the pages' GET / stays HTTP
    DEEPGRAM_PATH: handle_deepgram,
}
"""Websocket paths that publish audio, with their handlers (the rest are viewers)."""


class StreamerServer:
    def __init__(
        self,
        config: ServerConfig,
        transcriber: Transcriber | None = None,
        detector: SpeechDetector | None = None,
    ) -> None:
        self.config = config
        self._transcriber = transcriber
        self._detector = detector
        self._server: Server | None = None
        self._speakers: set[asyncio.Task[object]] = set()
        self.ctx: ServerContext | None = None
        self.port = config.port

    async def start(self) -> int:
        """Loads what is missing, starts listening, and returns the bound port."""
        config = self.config
        transcriber = self._transcriber
        if transcriber is None:
            from streamer.engines.whisper import WhisperTranscriber

            transcriber = await asyncio.to_thread(WhisperTranscriber, config.model)
        detector = self._detector
        if detector is None:
            from streamer.engines.silero import SileroVad

            detector = SileroVad()
        store = JournalStore(config.data_dir)
        interrupted = await asyncio.to_thread(store.mark_interrupted)
        if interrupted:
            logger.warning(
                "sessions interrupted by the last shutdown (can be resumed): %s", ", ".join(interrupted)
            )
        metrics = Metrics()
        scheduler = InferenceScheduler(
            transcriber,
            max_batch=config.max_batch,
            queue_size=config.decode_queue,
            replicas=max(1, config.model.num_workers),
            admission_interval=config.admission_interval,
            admission_headroom=config.admission_headroom,
        )
        scheduler.start()
        self.ctx = ServerContext(
            config, Registry(store, metrics), scheduler, detector, metrics, transcriber.name
        )
        self._server = await ws_serve(
            self._handle,
            config.host,
            config.port,
            process_request=HttpRoutes(self.ctx),
            max_size=config.max_frame_bytes * LIBRARY_SIZE_FACTOR,
            close_timeout=CLOSE_TIMEOUT,
            open_timeout=None,  # BodyConnection applies its own, longer for an upload (http.OPEN_TIMEOUT)
            create_connection=BodyConnection,  # the sinks API's POST and uploads carry a body
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _handle(self, ws: ServerConnection) -> None:
        ctx = self.ctx
        assert ctx is not None and ws.request is not None
        address = remote_address(ws)
        try:
            ctx.connect(address)
        except TooManyConnections as exc:
            await refuse(ws, exc, ctx.metrics)
            return
        task = asyncio.current_task()
        try:
            path = urlsplit(ws.request.path).path
            if path in SPEAKER_HANDLERS:
                if task is not None:
                    self._speakers.add(task)
                await SPEAKER_HANDLERS[path](ws, ctx)
            else:
                await handle_viewer(ws, ctx)
        except Exception:
            logger.exception("connection handler failed (%s %s)", address, ws.request.path)
            with contextlib.suppress(Exception):
                await ws.close(errors.INTERNAL_ERROR, "internal error")
        finally:
            ctx.disconnect(address)
            if task is not None:
                self._speakers.discard(task)

    def urls(self) -> dict[str, str]:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        base = f"{host}:{self.port}"
        return {
            "speak": f"ws://{base}/ws/speak",
            "view": f"ws://{base}/ws/view?session=ID",
            "sessions": f"http://{base}/sessions",
            "metrics": f"http://{base}/metrics",
            "url": f"ws://{base}",
        }

    async def shutdown(self) -> None:
        """Graceful shutdown (see the module docstring)."""
        ctx, server = self.ctx, self._server
        if ctx is None or server is None:
            return
        logger.info("shutdown 1/5: stop accepting connections")
        ctx.accepting = False
        server.server.close()
        logger.info("shutdown 2/5: finishing %d live session(s)", len(self._speakers))
        ctx.stopping.set()
        if self._speakers:
            _, pending = await asyncio.wait(set(self._speakers), timeout=self.config.shutdown_timeout)
            if pending:
                logger.warning(
                    "%d session(s) did not finish within %.0f s", len(pending), self.config.shutdown_timeout
                )
        logger.info("shutdown 3/5: draining caption sinks")
        await ctx.registry.sinks.close(timeout=self.config.shutdown_timeout)
        logger.info("shutdown 4/5: closing the remaining connections")
        server.close(close_connections=True, code=errors.GOING_AWAY, reason="server shutting down")
        await server.wait_closed()
        logger.info("shutdown 5/5: stopping the inference scheduler")
        await ctx.scheduler.close()
        self._server = None


async def serve(
    config: ServerConfig, transcriber: Transcriber | None = None, stop: asyncio.Event | None = None
) -> None:
    """Runs the server until SIGINT/SIGTERM (or until `stop` is set), then shuts down gracefully."""
    server = StreamerServer(config, transcriber)
    await server.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    urls = server.urls()
    auth = " (tokens required)" if config.auth_enabled else ""
    logger.warning(
        "streamer serving on %s%s\n  speakers: %s\n  viewers:  %s\n  sessions: %s\n  metrics:  %s\n"
        "  stream a file:  streamer stream FILE --url %s\n  watch it:       streamer watch SESSION --url %s",
        urls["url"],
        auth,
        urls["speak"],
        urls["view"],
        urls["sessions"],
        urls["metrics"],
        urls["url"],
        urls["url"],
    )
    try:
        await stop.wait()
    finally:
        logger.warning("shutting down")
        await server.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
