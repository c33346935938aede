"""OpenAI's file transcription API: ``POST /v1/audio/transcriptions`` (multipart/form-data).

Fields: ``file`` (any format PyAV reads), ``model`` (ignored: the server's model answers), ``language``,
``prompt`` (conditions the first decodes), ``response_format`` (json, text, srt, vtt, verbose_json),
``timestamp_granularities[]`` (``word`` adds words to verbose_json), ``temperature`` (ignored).

The upload is decoded to 16 kHz mono and streamed through a session (``upload-<random>``) exactly as a live
speaker's audio is, with decodes on the shared scheduler (so it competes fairly with live speakers and is
admitted like one); its journal and exports stay under ``/sessions``. The answer is rendered from the
session's finals. Errors use OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import http
import itertools
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from websockets.datastructures import Headers

from streamer.audiofile import iter_audio
from streamer.config import SAMPLE_RATE
from streamer.core.audio import AudioFormat, Encoding
from streamer.errors import AudioFormatError, StreamerError
from streamer.events import Final
from streamer.server.auth import check_speaker
from streamer.server.compat.session import SessionRequest, open_session
from streamer.server.context import ServerContext
from streamer.server.errors import ConnectionRefused, Forbidden, ServerBusy, ShuttingDown
from streamer.storage.exports import render

logger = logging.getLogger(__name__)

TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
"""OpenAI's own limit on an uploaded file."""
UPLOAD_TIMEOUT = 900.0
"""Seconds an upload request may take, from its request line to the answer (upload and transcription)."""
FEED_SECONDS = 0.1
"""Audio fed to the session per step, as a live client's frames would be."""
DECODE_BATCH = 50
"""Chunks of `FEED_SECONDS` decoded from the file per trip to a worker thread."""
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/plain; charset=utf-8",
}
FEED_FORMAT = AudioFormat(SAMPLE_RATE, Encoding.FLOAT32, 1)


class BadRequest(ValueError):
    """The form is not a valid transcription request."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class TranscriptionForm:
    file: bytes
    filename: str
    language: str | None = None
    prompt: str = ""
    response_format: str = "json"
    word_timestamps: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    status: http.HTTPStatus
    body: str
    content_type: str


def parse_form(content_type: str, body: bytes) -> TranscriptionForm:
    """The request's multipart form; raises `BadRequest`."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest("the body must be multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadRequest("the body must be multipart/form-data")
    fields: dict[str, list[str]] = {}
    upload: tuple[bytes, str] | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "file":
            upload = (data, str(part.get_filename() or "upload"))
        else:
            fields.setdefault(name, []).append(data.decode("utf-8", "replace"))
    if upload is None or not upload[0]:
        raise BadRequest("a file is required", "file")
    fmt = (fields.get("response_format") or ["json"])[0] or "json"
    if fmt not in RESPONSE_FORMATS:
        raise BadRequest(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}", "response_format")
    granularities = fields.get("timestamp_granularities[]", []) + fields.get("timestamp_granularities", [])
    language = (fields.get("language") or [""])[0].strip().lower() or None
    return TranscriptionForm(
        file=upload[0],
        filename=upload[1],
        language=language,
        prompt=(fields.get("prompt") or [""])[0],
        response_format=fmt,
        word_timestamps="word" in granularities,
    )


def error_reply(status: http.HTTPStatus, message: str, param: str | None = None) -> Reply:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return Reply(status, json.dumps(body), "application/json")


def _save_upload(data: bytes, filename: str) -> Path:
    suffix = Path(filename).suffix
    fd, name = tempfile.mkstemp(prefix="streamer-upload-", suffix=suffix if suffix.isascii() else "")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return Path(name)


def _take(chunks: Iterator[np.ndarray], count: int) -> list[np.ndarray]:
    return list(itertools.islice(chunks, count))


async def transcribe(ctx: ServerContext, form: TranscriptionForm) -> Reply:
    """Runs the upload through a new session and renders the answer (see the module docstring).

    The file is decoded on a worker thread `DECODE_BATCH` chunks at a time, so memory stays bounded
    whatever its length; an undecodable file is refused before any session is created.
    """
    path = await asyncio.to_thread(_save_upload, form.file, form.filename)
    try:
        chunks = iter_audio(path, FEED_SECONDS)
        try:
            batch = await asyncio.to_thread(_take, chunks, DECODE_BATCH)
        except AudioFormatError as exc:
            return error_reply(http.HTTPStatus.BAD_REQUEST, f"cannot decode the file: {exc}", "file")
        request = SessionRequest(
            "upload-" + secrets.token_hex(4), FEED_FORMAT, form.language, form.filename[:200], form.prompt
        )
        try:
            compat = await open_session(ctx, request)
        except (ServerBusy, ShuttingDown) as exc:
            return error_reply(http.HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        except StreamerError as exc:
            return error_reply(http.HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))
        samples = 0
        try:
            while batch and not ctx.stopping.is_set():  # a graceful shutdown: journal what was heard
                for chunk in batch:
                    samples += len(chunk)
                    await compat.feed(chunk.astype(np.float32).tobytes())
                    await asyncio.sleep(0)  # VAD runs on the event loop: let live speakers in between
                batch = await asyncio.to_thread(_take, chunks, DECODE_BATCH)
            await compat.finish()
        finally:
            await compat.close()
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    if ctx.stopping.is_set():
        return error_reply(http.HTTPStatus.SERVICE_UNAVAILABLE, "the server is shutting down")
    finals = list(compat.room.finals)
    duration = samples / SAMPLE_RATE
    language = form.language or ctx.config.stream.decode.language or "en"
    logger.info("[%s] upload of %.1f s transcribed: %d finals", compat.session_id, duration, len(finals))
    body = render_reply(ctx, form, finals, duration, language)
    return Reply(http.HTTPStatus.OK, body, CONTENT_TYPES[form.response_format])


def render_reply(
    ctx: ServerContext, form: TranscriptionForm, finals: list[Final], duration: float, language: str
) -> str:
    text = " ".join(f.text.strip() for f in finals)
    fmt = form.response_format
    if fmt == "text":
        return text + "\n"
    if fmt in ("srt", "vtt"):
        return render(fmt, finals, ctx.config.transcript)
    if fmt == "json":
        return json.dumps({"text": text}, ensure_ascii=False)
    return json.dumps(
        verbose_json(finals, text, duration, language, form.word_timestamps), ensure_ascii=False
    )


def verbose_json(
    finals: list[Final], text: str, duration: float, language: str, words: bool
) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: one segment per final (Whisper-style fields we do not track are neutral)."""
    segments = [
        {
            "id": i,
            "seek": 0,
            "start": round(f.start, 3),
            "end": round(f.end, 3),
            "text": " " + f.text.strip(),
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": round(
                float(np.mean(np.log(np.clip([w.probability for w in f.words] or [1.0], 1e-6, 1.0)))), 4
            ),
            "compression_ratio": 1.0,
            "no_speech_prob": 0.0,
        }
        for i, f in enumerate(finals)
    ]
    answer: dict[str, Any] = {
        "task": "transcribe",
        "language": language,
        "duration": round(duration, 3),
        "text": text,
        "segments": segments,
    }
    if words:
        answer["words"] = [
            {"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
            for f in finals
            for w in f.words
        ]
    return answer


async def handle(
    ctx: ServerContext, method: str, headers: Headers, token: str | None, body: bytes | None
) -> Reply:
    """The route: method, auth (the speaker token as ``Authorization: Bearer``), body limit, form, answer."""
    if method != "POST":
        return error_reply(http.HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not supported; use POST")
    try:
        check_speaker(ctx.config, token)
    except ConnectionRefused as exc:
        status = http.HTTPStatus.FORBIDDEN if isinstance(exc, Forbidden) else http.HTTPStatus.UNAUTHORIZED
        return error_reply(status, str(exc))
    if body is None:
        return error_reply(
            http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the file is larger than {MAX_UPLOAD_BYTES} bytes",
            "file",
        )
    try:
        form = await asyncio.to_thread(parse_form, headers.get("Content-Type", ""), body)  # 25 MiB: ~0.5 s
    except BadRequest as exc:
        return error_reply(http.HTTPStatus.BAD_REQUEST, str(exc), exc.param)
    return await transcribe(ctx, form)
