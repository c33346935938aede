"""The wire protocol of the live server, sans I/O: client messages in, server messages out, no sockets.

Rules (docs/protocol.md is the user-facing version):
- A speaker's first message is a JSON text ``start`` message; then binary audio frames in the format it
  announced, and any number of ``flush`` messages among them (each finalises the open utterance at once);
  then a JSON ``end`` message. Any other order is an `UnexpectedMessage`.
- Text that is not a JSON object is a `MalformedMessage`; an object with bad field values is an
  `InvalidMessage`; an audio format the server cannot decode is an `UnsupportedAudio`; a version other than
  `PROTOCOL_VERSION` is an `UnsupportedVersion`. Every error carries a stable ``code`` string that goes into
  the ``error`` message; the server maps error classes to websocket close codes (`streamer.server.errors`).
- Server messages are JSON objects with a ``type``; each is serialized once here and the same text is sent
  to every recipient.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streamer.core.audio import AudioFormat
from streamer.errors import AudioFormatError, StreamerError
from streamer.events import CaptionEvent, Final, Partial, SpeechEnded, SpeechStarted
from streamer.sinks.spec import InvalidSinkSpec, SinkSpec, parse_sink_specs

PROTOCOL_VERSION = 1
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Session ids name folders on disk: letters, digits, ``_ . -``, at most 64 characters, no leading dot."""
MAX_TITLE_CHARS = 200
MAX_LANGUAGE_CHARS = 16


class ProtocolError(StreamerError):
    """A client broke the protocol; `code` is the machine-readable reason sent in the ``error`` message."""

    code = "protocol_error"


class MalformedMessage(ProtocolError):
    code = "malformed_message"


class InvalidMessage(ProtocolError):
    code = "invalid_message"


class UnexpectedMessage(ProtocolError):
    code = "unexpected_message"


class UnsupportedVersion(ProtocolError):
    code = "unsupported_version"


class UnsupportedAudio(ProtocolError):
    code = "unsupported_audio"


class MessageTooBig(ProtocolError):
    code = "message_too_big"


# -- client messages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartMessage:
    """Opens (or, with the id of an existing session, resumes) a speaker's stream."""

    audio: AudioFormat
    session: str | None = None
    language: str | None = None
    title: str | None = None
    version: int = PROTOCOL_VERSION
    sinks: tuple[SinkSpec, ...] = ()
    """Caption destinations (Zoom, YouTube Live, webhook) the session forwards its finals to."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "start",
            "version": self.version,
            "sample_rate": self.audio.sample_rate,
            "encoding": self.audio.encoding.value,
            "channels": self.audio.channels,
        }
        for key in ("session", "language", "title"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.sinks:
            data["sinks"] = [sink.to_json() for sink in self.sinks]
        return data


@dataclass(frozen=True, slots=True)
class EndMessage:
    """The speaker has no more audio: finalise everything, then the server answers ``ended``."""


@dataclass(frozen=True, slots=True)
class FlushMessage:
    """Finalise what was said so far now, without waiting for a pause; the stream goes on."""


ClientMessage = StartMessage | EndMessage | FlushMessage


def validate_session_id(value: object) -> str:
    if not isinstance(value, str) or not SESSION_ID_PATTERN.match(value):
        raise InvalidMessage(
            "session must be 1-64 characters of letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return value


def _optional_str(data: dict[str, Any], key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidMessage(f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def _parse_start(data: dict[str, Any]) -> StartMessage:
    version = data.get("version", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise UnsupportedVersion(f"protocol version {version!r} is not supported; use {PROTOCOL_VERSION}")
    try:
        audio = AudioFormat.parse(
            data.get("sample_rate", 16_000), data.get("encoding", "pcm16"), data.get("channels", 1)
        )
    except AudioFormatError as exc:
        raise UnsupportedAudio(str(exc)) from exc
    session = data.get("session")
    try:
        sinks = parse_sink_specs(data.get("sinks", []))
    except InvalidSinkSpec as exc:
        raise InvalidMessage(str(exc)) from None
    return StartMessage(
        audio=audio,
        session=None if session is None else validate_session_id(session),
        language=_optional_str(data, "language", MAX_LANGUAGE_CHARS),
        title=_optional_str(data, "title", MAX_TITLE_CHARS),
        version=PROTOCOL_VERSION,
        sinks=sinks,
    )


def parse_client_text(text: str) -> ClientMessage:
    """A client's JSON text message; raises a `ProtocolError` subclass."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise MalformedMessage("text messages must be JSON objects") from None
    if not isinstance(data, dict):
        raise MalformedMessage("text messages must be JSON objects")
    kind = data.get("type")
    if kind == "start":
        return _parse_start(data)
    if kind == "end":
        return EndMessage()
    if kind == "flush":
        return FlushMessage()
    raise UnexpectedMessage(f"unknown message type {kind!r}; expected 'start', 'flush' or 'end'")


class SpeakerProtocol:
    """The speaker connection's state machine: AWAIT_START -> STREAMING (audio, flush) -> ENDED.

    `receive_text` / `receive_audio` return the parsed message or the audio bytes, or raise a
    `ProtocolError` for anything out of order.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.start: StartMessage | None = None
        self.ended = False

    def receive_text(self, text: str) -> ClientMessage:
        message = parse_client_text(text)
        if isinstance(message, StartMessage):
            if self.start is not None:
                raise UnexpectedMessage("the stream has already started")
            self.start = message
            return message
        if self.start is None:
            raise UnexpectedMessage("the first message must be a 'start' message")
        if self.ended:
            raise UnexpectedMessage("the stream has already ended")
        if isinstance(message, EndMessage):
            self.ended = True
        return message

    def receive_audio(self, data: bytes) -> bytes:
        if self.start is None:
            raise UnexpectedMessage("audio received before the 'start' message")
        if self.ended:
            raise UnexpectedMessage("audio received after the 'end' message")
        if len(data) > self.max_frame_bytes:
            raise MessageTooBig(f"audio frame of {len(data)} bytes exceeds {self.max_frame_bytes} bytes")
        return data


# -- server messages ------------------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def event_message(event: CaptionEvent) -> str:
    """One caption event as the text sent to speakers and viewers."""
    if isinstance(event, Final):
        return encode({"type": "final", **event.to_json()})
    if isinstance(event, Partial):
        return encode(
            {
                "type": "partial",
                "utterance_id": event.utterance_id,
                "start": round(event.start, 3),
                "end": round(event.end, 3),
                "stable": event.stable,
                "unstable": event.unstable,
                "complete": event.complete,
            }
        )
    if isinstance(event, SpeechStarted):
        return encode(
            {"type": "speech_started", "utterance_id": event.utterance_id, "time": round(event.time, 3)}
        )
    if isinstance(event, SpeechEnded):
        return encode(
            {"type": "speech_ended", "utterance_id": event.utterance_id, "time": round(event.time, 3)}
        )
    raise TypeError(f"not a caption event: {event!r}")


def ready_message(session: str, resumed: bool, time: float) -> str:
    return encode(
        {
            "type": "ready",
            "version": PROTOCOL_VERSION,
            "session": session,
            "resumed": resumed,
            "time": round(time, 3),
        }
    )


def history_message(session: str, finals: Iterable[Final], total: int, live: bool) -> str:
    """What a viewer receives on joining: the last finals (all, or the server's limit) and the count."""
    items = [f.to_json() for f in finals]
    return encode(
        {
            "type": "history",
            "version": PROTOCOL_VERSION,
            "session": session,
            "live": live,
            "total": total,
            "finals": items,
        }
    )


def warning_message(code: str, message: str, **extra: Any) -> str:
    return encode({"type": "warning", "code": code, "message": message, **extra})


def error_message(code: str, message: str) -> str:
    return encode({"type": "error", "code": code, "message": message})


def ended_message(session: str, time: float, finals: int) -> str:
    return encode({"type": "ended", "session": session, "time": round(time, 3), "finals": finals})


def speaker_message(kind: str, session: str) -> str:
    """``speaker_joined`` / ``speaker_left``, sent to viewers."""
    return encode({"type": kind, "session": session})


def parse_server_text(text: str) -> dict[str, Any]:
    """A server message as a dict (for clients); raises `MalformedMessage` unless it is a typed object."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise MalformedMessage("server sent text that is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise MalformedMessage("server message without a type")
    return data
