"""WhisperLive's websocket protocol (collabora/WhisperLive, client 0.10), on ``/whisperlive`` and on ``/``.

WhisperLive's `TranscriptionClient` connects to ``ws://host:port`` (the root, no path, no headers), so a
websocket upgrade on ``/`` is served here too; Streamer's own clients use ``/ws/speak`` and the browser's
``GET /`` stays an HTTP page. Tokens can only come as ``?token=`` (the client sends no headers).

1. The client sends its options as JSON: ``uid`` (required), ``language``, ``task``, ``model``,
   ``use_vad``, ``send_last_n_segments``, ... (only ``uid``, ``language`` and ``send_last_n_segments`` matter
   here: the server's model and VAD always answer).
2. The server answers ``{"uid", "message": "SERVER_READY", "backend": "faster_whisper"}``.
3. The client sends binary frames of float32 16 kHz mono samples, and finally the binary ``END_OF_AUDIO``.
4. On every final and partial the server sends ``{"uid", "segments": [...]}``: the last
   ``send_last_n_segments`` completed segments (one per final) and, last, the incomplete tail of the partial,
   each ``{"start": "0.000", "end": "1.000", "text": "...", "completed": bool}`` (times as strings).
5. At the end: ``{"uid", "message": "DISCONNECT"}``, then close 1000. A refusal is
   ``{"uid", "status": "ERROR", "message"}`` and a close code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from streamer.config import SAMPLE_RATE
from streamer.core.audio import AudioFormat, Encoding
from streamer.errors import StreamerError
from streamer.protocol import MalformedMessage
from streamer.server import errors
from streamer.server.auth import check_speaker, request_token
from streamer.server.compat.session import (
    SessionRequest,
    Translator,
    open_session,
    receive_first,
    serve_stream,
)
from streamer.server.context import ServerContext
from streamer.server.errors import close_for

logger = logging.getLogger(__name__)

WHISPERLIVE_PATH = "/whisperlive"
END_OF_AUDIO = b"END_OF_AUDIO"
BACKEND = "faster_whisper"
DEFAULT_LAST_N = 10
"""WhisperLive's default ``send_last_n_segments``."""
MAX_LAST_N = 100
AUDIO = AudioFormat(SAMPLE_RATE, Encoding.FLOAT32, 1)


@dataclass(frozen=True, slots=True)
class Options:
    uid: str
    language: str | None = None
    send_last_n_segments: int = DEFAULT_LAST_N


def parse_options(message: str | bytes) -> Options:
    """The client's opening JSON; raises `MalformedMessage`."""
    try:
        data = json.loads(message)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedMessage("the first message must be WhisperLive's JSON options") from None
    if not isinstance(data, dict) or not isinstance(data.get("uid"), str) or not data["uid"]:
        raise MalformedMessage("the options need a string uid")
    language = data.get("language")
    last_n = data.get("send_last_n_segments", DEFAULT_LAST_N)
    if not isinstance(last_n, int) or isinstance(last_n, bool) or last_n < 1:
        last_n = DEFAULT_LAST_N
    return Options(
        uid=data["uid"][:128],
        language=language.lower() if isinstance(language, str) and language else None,
        send_last_n_segments=min(last_n, MAX_LAST_N),
    )


def _time(seconds: float) -> str:
    return f"{seconds:.3f}"


@dataclass(slots=True)
class SegmentsView:
    """Streamer messages -> WhisperLive ``segments`` messages (per connection)."""

    uid: str
    last_n: int
    completed: deque[dict[str, Any]] = field(default_factory=deque)
    tail: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.completed = deque(maxlen=self.last_n)

    def __call__(self, message: dict[str, Any]) -> Iterable[str]:
        kind = message["type"]
        if kind == "final":
            segment = {
                "start": _time(message["start"]),
                "end": _time(message["end"]),
                "text": message["text"],
            }
            self.completed.append({**segment, "completed": True})
            self.tail = None
        elif kind == "partial" and message["unstable"]:
            start = message["start"]
            if self.completed:
                start = max(start, float(self.completed[-1]["end"]))
            self.tail = {
                "start": _time(start),
                "end": _time(max(start, message["end"])),
                "text": message["unstable"],
                "completed": False,
            }
        elif kind == "error":
            return (self.status("ERROR", message["message"]),)
        else:
            return ()
        segments = list(self.completed) + ([self.tail] if self.tail else [])
        return (json.dumps({"uid": self.uid, "segments": segments}, ensure_ascii=False),) if segments else ()

    def status(self, status: str, text: str) -> str:
        return json.dumps({"uid": self.uid, "status": status, "message": text})

    def message(self, text: str) -> str:
        return json.dumps(
            {"uid": self.uid, "message": text, **({"backend": BACKEND} if text == "SERVER_READY" else {})}
        )


async def handle_whisperlive(ws: ServerConnection, ctx: ServerContext) -> None:
    uid = "-"
    try:
        assert ws.request is not None
        check_speaker(ctx.config, request_token(ws.request))
        options = parse_options(await receive_first(ws, ctx.config.start_timeout))
        uid = options.uid
        view = SegmentsView(uid, options.send_last_n_segments)
        speaker = Translator(ws, uid, ctx.config.viewer_queue, ctx, view)
        session_id = "whisperlive-" + secrets.token_hex(4)
        compat = await open_session(ctx, SessionRequest(session_id, AUDIO, options.language), speaker)
    except ConnectionClosed:
        return
    except StreamerError as exc:
        close_code, code = close_for(exc)
        ctx.metrics.connection_error(code)
        logger.info("[%s] whisperlive refused: %s", uid, exc)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"uid": uid, "status": "ERROR", "message": str(exc)}))
            await ws.close(close_code, errors.reason(str(exc)))
        return
    speaker.send_now(view.message("SERVER_READY"))

    async def on_message(message: str | bytes) -> bool:
        if isinstance(message, bytes):
            if message == END_OF_AUDIO:
                return True
            await compat.feed(message)
            return False
        return message == END_OF_AUDIO.decode()

    await serve_stream(
        ws,
        ctx,
        compat,
        on_message,
        on_error=lambda reason, _code: speaker.send_now(view.status("ERROR", reason)),
        on_close=lambda: speaker.send_now(view.message("DISCONNECT")),
    )
