"""Connection-level errors and their websocket close codes: the one place the numbers are defined.

Each error a connection handler can end with maps to a stable ``code`` string (sent in the JSON ``error``
message) and a close code. Standard codes where one fits, 4xxx (HTTP status + 4000) for the rest:

| close | meaning |
|---|---|
| 1000 | normal end (after ``ended``) |
| 1001 | server shutting down |
| 1003 | unsupported data: audio format or protocol version the server cannot handle |
| 1007 | invalid data: malformed JSON, bad field values, NaN audio |
| 1008 | policy violation: messages out of order, unknown message type, no start message in time |
| 1009 | message too big |
| 1011 | internal error |
| 1013 | try again later: server at capacity (admission control) |
| 4401 | missing or wrong token |
| 4403 | token not allowed here (a viewer token used to speak) |
| 4404 | unknown session (viewers) |
| 4409 | the session already has a live speaker |
| 4429 | too many connections from one address |
| 4499 | viewer too slow: its queue overflowed with finals |
"""

from __future__ import annotations

from websockets.frames import CloseCode

from streamer.errors import AudioFormatError, StreamerError
from streamer.protocol import (
    InvalidMessage,
    MalformedMessage,
    MessageTooBig,
    ProtocolError,
    UnexpectedMessage,
    UnsupportedAudio,
    UnsupportedVersion,
)

NORMAL = int(CloseCode.NORMAL_CLOSURE)
GOING_AWAY = int(CloseCode.GOING_AWAY)
UNSUPPORTED_DATA = int(CloseCode.UNSUPPORTED_DATA)
INVALID_DATA = int(CloseCode.INVALID_DATA)
POLICY_VIOLATION = int(CloseCode.POLICY_VIOLATION)
MESSAGE_TOO_BIG = int(CloseCode.MESSAGE_TOO_BIG)
INTERNAL_ERROR = int(CloseCode.INTERNAL_ERROR)
TRY_AGAIN_LATER = int(CloseCode.TRY_AGAIN_LATER)
UNAUTHORIZED = 4401
FORBIDDEN = 4403
UNKNOWN_SESSION = 4404
SESSION_BUSY = 4409
TOO_MANY_CONNECTIONS = 4429
SLOW_VIEWER = 4499


class ConnectionRefused(StreamerError):
    """A connection the server will not serve; `code` goes into the error message, `close_code` on close."""

    code = "refused"
    close_code = POLICY_VIOLATION


class Unauthorized(ConnectionRefused):
    code = "unauthorized"
    close_code = UNAUTHORIZED


class Forbidden(ConnectionRefused):
    code = "forbidden"
    close_code = FORBIDDEN


class UnknownSession(ConnectionRefused):
    code = "unknown_session"
    close_code = UNKNOWN_SESSION


class SessionBusy(ConnectionRefused):
    code = "session_busy"
    close_code = SESSION_BUSY


class TooManyConnections(ConnectionRefused):
    code = "too_many_connections"
    close_code = TOO_MANY_CONNECTIONS


class ServerBusy(ConnectionRefused):
    code = "server_busy"
    close_code = TRY_AGAIN_LATER


class StartTimeout(ConnectionRefused):
    code = "start_timeout"
    close_code = POLICY_VIOLATION


class ShuttingDown(ConnectionRefused):
    code = "shutting_down"
    close_code = GOING_AWAY


_PROTOCOL_CLOSE_CODES: dict[type[ProtocolError], int] = {
    MalformedMessage: INVALID_DATA,
    InvalidMessage: INVALID_DATA,
    UnexpectedMessage: POLICY_VIOLATION,
    UnsupportedVersion: UNSUPPORTED_DATA,
    UnsupportedAudio: UNSUPPORTED_DATA,
    MessageTooBig: MESSAGE_TOO_BIG,
}


def close_for(exc: StreamerError) -> tuple[int, str]:
    """The close code and error code string for an expected error."""
    if isinstance(exc, ConnectionRefused):
        return exc.close_code, exc.code
    if isinstance(exc, ProtocolError):
        return _PROTOCOL_CLOSE_CODES.get(type(exc), POLICY_VIOLATION), exc.code
    if isinstance(exc, AudioFormatError):
        return INVALID_DATA, "invalid_audio"
    return INTERNAL_ERROR, "internal_error"


def reason(message: str) -> str:
    """A close reason within the 123 bytes a close frame allows."""
    data = message.encode()
    return message if len(data) <= 120 else data[:117].decode(errors="ignore") + "..."
