"""The small HTTP API, served from websockets' ``process_request`` hook (no other web framework).

Routes (GET unless said otherwise):
- ``/healthz``: liveness, JSON.
- ``/metrics``: Prometheus text.
- ``/sessions``: every session, JSON list; ``/sessions/{id}``: one session's info.
- ``/sessions/{id}/transcript.{md,srt,vtt,txt,json}``: the transcript rendered from the journal (live or
  ended sessions alike).
- ``/sessions/{id}/sinks``: the live session's caption sinks (masked URLs); ``POST`` a JSON sink (or a list)
  to add, ``DELETE /sessions/{id}/sinks/{sink_id}`` to remove one (docs/integrations.md). These need the
  speaker token when auth is on. websockets' handshake parser refuses request bodies, so `BodyConnection`
  reads a small ``Content-Length`` body (at most `MAX_BODY_BYTES`) before that parser sees the request.
- ``POST /v1/audio/transcriptions``: OpenAI's file transcription API (`streamer.server.compat.openai`); its
  body may be up to `ROUTE_BODY_LIMITS` (25 MiB) and the request may take `UPLOAD_TIMEOUT`, not the
  handshake's `OPEN_TIMEOUT` (`BodyConnection` enforces both).
- ``/ws/speak``, ``/ws/view``, ``/whisperlive``, ``/v1/listen`` and websocket upgrades on ``/`` (WhisperLive's
  clients): go on to the websocket handshake.
- The browser pages (files in ``streamer/web/``, package data): ``/`` (index), ``/speak`` (speaker),
  ``/overlay`` (OBS browser source), ``/view`` (audience); ``/static/NAME`` for their scripts and styles,
  NAME being a plain file name (no folders, so no traversal) with a known extension; and
  ``/static/config.json``, the settings the pages mirror (the paragraph interval of the exports).
Session routes need the viewer (or speaker) token when a viewer token is set; the pages need none (they pass
their own ``?token=`` on to the websocket and transcript URLs).
"""

from __future__ import annotations

import asyncio
import http
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from streamer.server.auth import check_speaker, check_viewer, request_token
from streamer.server.compat import openai
from streamer.server.compat.deepgram import DEEPGRAM_PATH
from streamer.server.compat.whisperlive import WHISPERLIVE_PATH
from streamer.server.context import ServerContext
from streamer.server.errors import ConnectionRefused, Forbidden
from streamer.server.metrics import Exposition
from streamer.sinks.manager import SinkError
from streamer.sinks.spec import InvalidSinkSpec, parse_sink_spec, parse_sink_specs
from streamer.storage.exports import MEDIA_TYPES, render

WEBSOCKET_PATHS = ("/ws/speak", "/ws/view", WHISPERLIVE_PATH, DEEPGRAM_PATH)
SESSION_ROUTE = re.compile(r"^/sessions/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})(?:/transcript\.([a-z]+))?/?$")
SINKS_ROUTE = re.compile(
    r"^/sessions/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/sinks(?:/([A-Za-z0-9][A-Za-z0-9_.-]{0,63}))?/?$"
)
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_BODY_BYTES = 64 * 1024
"""Largest request body read (the sinks API's JSON); larger bodies get 413."""
ROUTE_BODY_LIMITS: dict[str, int] = {openai.TRANSCRIPTIONS_PATH: openai.MAX_UPLOAD_BYTES}
"""Paths whose request body may be larger than `MAX_BODY_BYTES`, with their limits."""
OPEN_TIMEOUT = 10.0
"""Seconds from accepting a connection to the end of its HTTP request (websockets' own default)."""
ROUTE_TIMEOUTS: dict[str, float] = {openai.TRANSCRIPTIONS_PATH: openai.UPLOAD_TIMEOUT}
"""Paths whose request may take longer than `OPEN_TIMEOUT` (an upload and its transcription)."""

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGES = {"/": "index.html", "/speak": "speak.html", "/overlay": "overlay.html", "/view": "view.html"}
STATIC_PREFIX = "/static/"
STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$")
STATIC_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
"""Extensions served from `WEB_DIR`, with their content types; anything else is a 404."""
STATIC_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),  # page URLs may carry ?token=
)
PAGE_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
"""Content-Security-Policy of the pages: their own scripts and styles only, websockets to any host."""


def _response(
    status: http.HTTPStatus,
    body: str | bytes,
    content_type: str,
    extra: tuple[tuple[str, str], ...] = (("Cache-Control", "no-store"),),
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            *extra,
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, data)


def _json(status: http.HTTPStatus, payload: Any) -> Response:
    return _response(status, json.dumps(payload, ensure_ascii=False, indent=2) + "\n", "application/json")


def _error(status: http.HTTPStatus, message: str) -> Response:
    return _json(status, {"error": status.phrase.lower().replace(" ", "_"), "message": message})


class HttpRoutes:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if path in WEBSOCKET_PATHS or (path == "/" and upgrade):  # "/": WhisperLive's clients
            if not self.ctx.accepting:
                return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, "the server is shutting down")
            if not upgrade:
                return _error(http.HTTPStatus.UPGRADE_REQUIRED, f"{path} is a websocket endpoint")
            return None
        if path == openai.TRANSCRIPTIONS_PATH:
            reply = await openai.handle(
                self.ctx, request.method, request.headers, request_token(request), request_body(connection)
            )
            return _response(reply.status, reply.body, reply.content_type)
        if path == "/healthz":
            return self.healthz()
        if path == "/metrics":
            return _response(http.HTTPStatus.OK, metrics_text(self.ctx), METRICS_TYPE)
        if path == "/sessions" or path.startswith("/sessions/"):
            try:
                check_viewer(self.ctx.config, request_token(request))
            except ConnectionRefused as exc:
                return _error(http.HTTPStatus.UNAUTHORIZED, str(exc))
            sinks_route = SINKS_ROUTE.match(path)
            if sinks_route is not None:
                return await self.sinks(connection, request, *sinks_route.groups())
            return await self.sessions(path)
        page = PAGES.get(path.rstrip("/") or "/")
        if page is not None:
            return await static_file(page)
        if path == STATIC_PREFIX + "config.json":
            return self.web_config()
        if path.startswith(STATIC_PREFIX):
            return await static_file(path.removeprefix(STATIC_PREFIX))
        return _error(http.HTTPStatus.NOT_FOUND, f"no route {path}")

    def web_config(self) -> Response:
        transcript = self.ctx.config.transcript
        body = json.dumps({"version": 1, "paragraph_minutes": transcript.paragraph_minutes})
        return _response(http.HTTPStatus.OK, body, "application/json", STATIC_HEADERS)

    def healthz(self) -> Response:
        ctx = self.ctx
        return _json(
            http.HTTPStatus.OK if ctx.accepting else http.HTTPStatus.SERVICE_UNAVAILABLE,
            {
                "status": "ok" if ctx.accepting else "shutting_down",
                "model": ctx.model_name,
                "speakers": ctx.registry.speakers(),
                "viewers": ctx.registry.viewers(),
            },
        )

    async def sessions(self, path: str) -> Response:
        registry = self.ctx.registry
        if path.rstrip("/") == "/sessions":
            return _json(http.HTTPStatus.OK, await registry.sessions())
        match = SESSION_ROUTE.match(path)
        if match is None:
            return _error(http.HTTPStatus.NOT_FOUND, f"no route {path}")
        session_id, fmt = match.groups()
        room = await registry.get(session_id)
        if room is None:
            return _error(http.HTTPStatus.NOT_FOUND, f"no session {session_id!r}")
        try:
            if fmt is None:
                return _json(http.HTTPStatus.OK, room.info())
            if fmt not in MEDIA_TYPES:
                return _error(
                    http.HTTPStatus.NOT_FOUND, f"unknown format {fmt!r}; use one of {', '.join(MEDIA_TYPES)}"
                )
            finals = list(room.finals)
            document = await asyncio.to_thread(
                render, fmt, finals, self.ctx.config.transcript, title=room.title
            )
            return _response(http.HTTPStatus.OK, document, MEDIA_TYPES[fmt])
        finally:
            registry.discard_if_unused(room)

    async def sinks(
        self, connection: ServerConnection, request: Request, session_id: str, sink_id: str | None
    ) -> Response:
        """The caption sinks API (see the module docstring)."""
        try:
            check_speaker(self.ctx.config, request_token(request))
        except ConnectionRefused as exc:
            status = http.HTTPStatus.FORBIDDEN if isinstance(exc, Forbidden) else http.HTTPStatus.UNAUTHORIZED
            return _error(status, str(exc))
        registry = self.ctx.registry
        room = await registry.get(session_id)
        if room is None:
            return _error(http.HTTPStatus.NOT_FOUND, f"no session {session_id!r}")
        try:
            method = request.method
            if method == "GET" and sink_id is None:
                return _json(http.HTTPStatus.OK, registry.sinks.status(session_id))
            if method == "POST" and sink_id is None:
                body = request_body(connection)
                if body is None:
                    return _error(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"at most {MAX_BODY_BYTES} bytes")
                data = json.loads(body)
                specs = parse_sink_specs(data) if isinstance(data, list) else (parse_sink_spec(data),)
                added = [registry.sinks.add(session_id, spec).status() for spec in specs]
                return _json(http.HTTPStatus.CREATED, added)
            if method == "DELETE" and sink_id is not None:
                return _json(http.HTTPStatus.OK, await registry.sinks.remove(session_id, sink_id))
            return _error(http.HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not supported on {request.path}")
        except (ValueError, InvalidSinkSpec) as exc:  # json.JSONDecodeError is a ValueError
            message = str(exc) if isinstance(exc, InvalidSinkSpec) else "the body must be a JSON sink object"
            return _error(http.HTTPStatus.BAD_REQUEST, message)
        except SinkError as exc:
            return _error(http.HTTPStatus(exc.status), str(exc))
        finally:
            registry.discard_if_unused(room)


class _BodyReader:
    """websockets' stream reader as its handshake parser sees it: ``Content-Length`` lines are hidden from
    the parser (which refuses bodies) and the body is read here, after the headers, before the parser
    returns the request. Everything else passes through."""

    def __init__(self, reader: Any, limit: int, on_path: Any = None) -> None:
        self._reader = reader
        self._limit = limit
        self._on_path = on_path
        self._request_line = True
        self._length = 0
        self._headers_done = False
        self.body: bytes | None = b""
        """The request body; ``None`` if it was larger than the limit (then it is not read)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def read_line(self, m: int, too_long_exc_type: type[Exception] = RuntimeError) -> Any:
        line = yield from self._reader.read_line(m, too_long_exc_type)
        if self._request_line:  # "POST /path?query HTTP/1.1": the route decides the limits
            self._request_line = False
            parts = bytes(line).split(b" ")
            path = urlsplit(parts[1].decode("ascii", "replace")).path if len(parts) == 3 else ""
            self._limit = ROUTE_BODY_LIMITS.get(path, self._limit)
            if self._on_path is not None:
                self._on_path(path)
            return line
        if self._headers_done:
            return line
        while bytes(line[:15]).lower() == b"content-length:":
            self._length = int(bytes(line[15:]).strip())  # a ValueError drops the connection, as before
            if self._length < 0:
                raise ValueError("negative Content-Length")
            line = yield from self._reader.read_line(m, too_long_exc_type)
        if line in (b"\r\n", b"\n"):
            self._headers_done = True
            if self._length > self._limit:
                self.body = None
            elif self._length:
                self.body = bytes((yield from self._reader.read_exact(self._length)))
        return line


class BodyConnection(ServerConnection):
    """A `ServerConnection` whose HTTP request may carry a body (``POST .../sinks``, an upload), and whose
    handshake timeout (`OPEN_TIMEOUT`, websockets' own ``open_timeout`` being off) is extended for the
    routes of `ROUTE_TIMEOUTS` as soon as their request line arrives."""

    def __init__(self, protocol: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, *args, **kwargs)
        protocol.reader = _BodyReader(protocol.reader, MAX_BODY_BYTES, self._route)
        protocol.parser = protocol.parse()  # restart the parser (no data has arrived yet) on the new reader
        next(protocol.parser)
        self._deadline: asyncio.Timeout | None = None
        self._route_timeout: float | None = None

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        async with asyncio.timeout(self._route_timeout or OPEN_TIMEOUT) as self._deadline:
            await super().handshake(*args, **kwargs)

    def _route(self, path: str) -> None:
        """Called by the reader on the request line, which may arrive before or after `handshake` starts."""
        self._route_timeout = ROUTE_TIMEOUTS.get(path)
        if self._route_timeout is not None and self._deadline is not None:
            self._deadline.reschedule(asyncio.get_running_loop().time() + self._route_timeout)


def request_body(connection: ServerConnection) -> bytes | None:
    """The body of the connection's HTTP request (``b""`` if none, ``None`` if it was too large)."""
    reader = connection.protocol.reader
    return reader.body if isinstance(reader, _BodyReader) else b""


def _read_static(name: str) -> tuple[bytes, str] | None:
    """(content, content type) of the web file `name`, or ``None`` if there is no such servable file."""
    if not STATIC_NAME.match(name):
        return None
    content_type = STATIC_TYPES.get(Path(name).suffix.lower())
    if content_type is None:
        return None
    root = WEB_DIR.resolve()
    path = (root / name).resolve()
    if path.parent != root or not path.is_file():
        return None
    try:
        return path.read_bytes(), content_type
    except OSError:
        return None


async def static_file(name: str) -> Response:
    """One file of the browser pages (see the module docstring); 404 for anything else."""
    found = await asyncio.to_thread(_read_static, name)
    if found is None:
        return _error(http.HTTPStatus.NOT_FOUND, f"no file {name!r}")
    data, content_type = found
    extra = STATIC_HEADERS
    if content_type.startswith("text/html"):
        extra = (*extra, ("Content-Security-Policy", PAGE_POLICY))
    return _response(http.HTTPStatus.OK, data, content_type, extra)


def metrics_text(ctx: ServerContext) -> str:
    metrics, scheduler, registry = ctx.metrics, ctx.scheduler, ctx.registry
    out = Exposition()
    out.single("streamer_speakers", "gauge", "Live speaker sessions.", registry.speakers())
    out.single("streamer_viewers", "gauge", "Connected viewers.", registry.viewers())
    out.single("streamer_rooms", "gauge", "Sessions held in memory.", len(registry.rooms))
    out.single(
        "streamer_audio_seconds_total",
        "counter",
        "Seconds of audio received.",
        round(metrics.audio_seconds, 3),
    )
    out.single("streamer_finals_total", "counter", "Finals journaled and sent.", metrics.finals)
    out.single("streamer_speakers_accepted_total", "counter", "Speakers admitted.", metrics.speakers_accepted)
    out.metric(
        "streamer_speakers_refused_total",
        "counter",
        "Speakers refused by admission control, by reason.",
        [({"reason": k}, v) for k, v in sorted(metrics.speakers_refused.items())],
    )
    out.single("streamer_viewers_accepted_total", "counter", "Viewers that joined.", metrics.viewers_accepted)
    out.single(
        "streamer_viewer_messages_dropped_total",
        "counter",
        "Messages dropped for slow subscribers (partials first).",
        metrics.viewer_messages_dropped,
    )
    out.single(
        "streamer_viewers_disconnected_slow_total",
        "counter",
        "Subscribers disconnected because their queue overflowed with finals.",
        metrics.viewers_dropped_slow,
    )
    out.metric(
        "streamer_connection_errors_total",
        "counter",
        "Connections ended by an error, by error code.",
        [({"code": k}, v) for k, v in sorted(metrics.connection_errors.items())],
    )
    out.single("streamer_decode_queue_depth", "gauge", "Decode requests waiting.", scheduler.queue_depth)
    out.single("streamer_decode_running", "gauge", "Decode requests running.", scheduler.running)
    out.single("streamer_decode_requests_total", "counter", "Decode requests run.", scheduler.stats.requests)
    out.single(
        "streamer_decode_batches_total", "counter", "Decode calls (batches) run.", scheduler.stats.batches
    )
    out.single(
        "streamer_decode_failures_total", "counter", "Decode calls that failed.", scheduler.stats.failures
    )
    out.single(
        "streamer_model_busy_ratio",
        "gauge",
        "Fraction of the last 10 s the model was busy.",
        scheduler.busy_fraction(),
    )
    out.single(
        "streamer_projected_load",
        "gauge",
        "Projected model utilisation of the live speakers (admission refuses above the headroom).",
        round(scheduler.projected_load(registry.speakers()), 4),
    )
    out.histogram("streamer_decode_seconds", "Wall time of each decode call.", scheduler.stats.decode_seconds)
    out.histogram(
        "streamer_decode_wait_seconds", "Time decode requests spent queued.", scheduler.stats.wait_seconds
    )
    out.metric(
        "streamer_session_lag_seconds",
        "gauge",
        "Seconds of speech not yet decoded, per live session.",
        [({"session": room.session_id}, round(room.lag(), 3)) for room in registry.live_rooms()],
    )
    for name, kind, help_text, samples in registry.sinks.metric_families():
        out.metric(name, kind, help_text, samples)
    return out.text()
