"""The connection boundary: turning an expected error into an ``error`` message and a close code."""

from __future__ import annotations

import contextlib
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from streamer.errors import StreamerError
from streamer.protocol import error_message
from streamer.server.errors import close_for, reason
from streamer.server.metrics import Metrics

logger = logging.getLogger(__name__)


async def refuse(ws: ServerConnection, exc: StreamerError, metrics: Metrics, session_id: str = "-") -> None:
    """Sends ``{"type": "error", ...}`` and closes with the error's close code."""
    close_code, code = close_for(exc)
    metrics.connection_error(code)
    logger.info("[%s] %s: %s (close %d)", session_id, code, exc, close_code)
    with contextlib.suppress(ConnectionClosed):
        await ws.send(error_message(code, str(exc)))
        await ws.close(close_code, reason(str(exc)))


def remote_address(ws: ServerConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address or "unknown")
