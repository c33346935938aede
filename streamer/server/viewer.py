"""The viewer connection (``/ws/view?session=ID``): history on joining, then live partials and finals.

Viewers send nothing meaningful; anything they send is ignored. A viewer whose queue overflows with finals
is disconnected (close 4499) by its `Subscriber`, never slowing the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from streamer.errors import StreamerError
from streamer.protocol import ProtocolError, validate_session_id
from streamer.server.auth import check_viewer, query_params, request_token
from streamer.server.boundary import refuse
from streamer.server.context import ServerContext
from streamer.server.errors import UnknownSession
from streamer.server.fanout import Subscriber
from streamer.server.rooms import Room

logger = logging.getLogger(__name__)


async def _open_room(ws: ServerConnection, ctx: ServerContext) -> Room:
    request = ws.request
    assert request is not None
    check_viewer(ctx.config, request_token(request))
    session = query_params(request.path).get("session")
    if not session:
        raise UnknownSession("give the session to watch as ?session=ID")
    try:
        validate_session_id(session)
    except ProtocolError:
        raise UnknownSession(f"no session {session!r}") from None
    room = await ctx.registry.get(session)
    if room is None:
        raise UnknownSession(f"no session {session!r}")
    return room


async def _ignore_incoming(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def handle_viewer(ws: ServerConnection, ctx: ServerContext) -> None:
    try:
        room = await _open_room(ws, ctx)
    except StreamerError as exc:
        await refuse(ws, exc, ctx.metrics)
        return
    viewer = Subscriber(ws, room.session_id, "viewer", ctx.config.viewer_queue, ctx.metrics)
    room.join(viewer, ctx.config.history_limit)
    ctx.metrics.viewers_accepted += 1
    logger.info("[%s] viewer joined (%d watching)", room.session_id, len(room.viewers))
    writer = asyncio.create_task(viewer.run())
    reader = asyncio.create_task(_ignore_incoming(ws))
    try:
        await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        room.leave(viewer)
        for task in (writer, reader):
            task.cancel()
        await asyncio.gather(writer, reader, return_exceptions=True)
        ctx.registry.discard_if_unused(room)
        logger.info("[%s] viewer left (%d watching)", room.session_id, len(room.viewers))
