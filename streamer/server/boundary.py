"""The connection boundary: turning an expected error into an ``error`` message and a close code, and
reading a connection until it ends or the server stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from streamer.errors import StreamerError
from streamer.protocol import error_message
from streamer.server.errors import close_for, reason
from streamer.server.metrics import Metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def until_stopped(work: Coroutine[Any, Any, T], stopping: asyncio.Event) -> T | None:
    """Runs `work` until it returns (its result; its exception propagates) or `stopping` is set
    (`work` is cancelled and None returned)."""
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


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
