"""One outbound connection's bounded message queue and its writer task (speakers and viewers alike).

Overflow policy (the queue holds `limit` messages): a droppable message (a partial, a speech boundary)
that finds the queue full is dropped; an essential one (a final, history, ended, errors) first evicts the
oldest queued droppable message; if there is none, the subscriber is too slow to keep the transcript and is
disconnected with close code 4499. Either way the producer never waits: one slow viewer cannot slow the
speaker or the other viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from streamer.server import errors
from streamer.server.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Subscriber:
    def __init__(
        self, connection: ServerConnection, session_id: str, role: str, limit: int, metrics: Metrics
    ) -> None:
        self.connection = connection
        self.session_id = session_id
        self.role = role
        self.limit = limit
        self.metrics = metrics
        self._queue: deque[tuple[str, bool] | _Close] = deque()
        self._ready = asyncio.Event()
        self._closing = False
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def offer(self, text: str, essential: bool) -> bool:
        """Queues a message without waiting; returns whether it was queued."""
        if self._closing:
            return False
        full = len(self._queue) >= self.limit
        if full and (not essential or not self._evict_droppable()):
            self.dropped += 1
            self.metrics.viewer_messages_dropped += 1
            if essential:
                self._too_slow()
            return False
        self._queue.append((text, essential))
        self._ready.set()
        return True

    def _evict_droppable(self) -> bool:
        for i, item in enumerate(self._queue):
            if isinstance(item, tuple) and not item[1]:
                del self._queue[i]
                self.dropped += 1
                self.metrics.viewer_messages_dropped += 1
                return True
        return False

    def _too_slow(self) -> None:
        logger.warning(
            "[%s] %s too slow (%d messages queued): disconnecting", self.session_id, self.role, self.limit
        )
        self.metrics.viewers_dropped_slow += 1
        self._closing = True
        self._queue.clear()
        self._queue.append(_Close(errors.SLOW_VIEWER, "too slow: message queue overflowed"))
        self._ready.set()
        # The writer may be stuck in send() on a full socket: close from outside too.
        asyncio.get_running_loop().create_task(self._close_now(errors.SLOW_VIEWER, "too slow"))

    async def _close_now(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.connection.close(code, reason)

    def close_after(self, code: int, reason: str) -> None:
        """Sends what is queued, then closes the connection with `code`."""
        if self._closing:
            return
        self._closing = True
        self._queue.append(_Close(code, errors.reason(reason)))
        self._ready.set()

    async def run(self) -> None:
        """The writer: sends queued messages in order until closed."""
        try:
            while True:
                while not self._queue:
                    self._ready.clear()
                    await self._ready.wait()
                item = self._queue.popleft()
                if isinstance(item, _Close):
                    await self.connection.close(item.code, item.reason)
                    return
                await self.connection.send(item[0])
        except ConnectionClosed:
            return
        finally:
            self._closing = True
            self._queue.clear()
