"""A live speaker's pipeline: its `StreamSession`, audio decoding, and the loop that runs its decodes.

Audio frames are decoded and fed to the session as they arrive (VAD is cheap, it runs on the event loop),
and a client's flush cuts the open utterance the same way, between two frames;
the decode loop is a separate task that takes the session's next request, awaits the shared scheduler, hands
the result back and publishes the events through the room (finals journaled first). The session allows one
request in flight, so under load partials simply come less often; finals are never dropped.

Backpressure: when more than `max_backlog` seconds of speech wait to be decoded, `wait_for_capacity` holds
the speaker's reader until the decode loop catches up (clients sending faster than real time are paced).
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from streamer.config import SAMPLE_RATE
from streamer.core.audio import AudioDecoder
from streamer.core.session import StreamSession
from streamer.events import Final
from streamer.protocol import warning_message
from streamer.server.metrics import Metrics
from streamer.server.rooms import Room
from streamer.server.scheduler import InferenceScheduler

logger = logging.getLogger(__name__)

LAG_WARNING_INTERVAL = 5.0
"""Wall seconds between two lag warnings to one speaker."""


class LivePipeline:
    def __init__(
        self,
        room: Room,
        session: StreamSession,
        decoder: AudioDecoder,
        scheduler: InferenceScheduler,
        metrics: Metrics,
        *,
        max_backlog: float,
        lag_warning: float,
    ) -> None:
        self.room = room
        self.session = session
        self.decoder = decoder
        self.scheduler = scheduler
        self.metrics = metrics
        self.max_backlog = max_backlog
        self.lag_warning = lag_warning
        self.finals = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._finishing = False
        self._last_warning = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def session_id(self) -> str:
        return self.session.stream_id

    def start(self) -> None:
        self._task = asyncio.create_task(self._decode_loop(), name=f"decode-loop-{self.session_id}")

    def feed(self, data: bytes) -> None:
        """Audio bytes in the speaker's format; raises `AudioFormatError` for undecodable audio."""
        samples = self.decoder.decode(data)
        if len(samples) == 0:
            return
        self.metrics.audio_seconds += len(samples) / SAMPLE_RATE
        self.room.publish_nowait(self.session.feed(np.asarray(samples, dtype=np.float32)))
        self._wake.set()

    def cut(self) -> None:
        """Ends the open utterance now (a client's flush): its final decode is the next one due."""
        if self._finishing:
            return
        self.room.publish_nowait(self.session.cut())
        self._wake.set()

    async def wait_for_capacity(self) -> None:
        while self.session.backlog > self.max_backlog and self._task is not None and not self._task.done():
            self._progress.clear()
            await self._progress.wait()

    async def finish(self) -> None:
        """Closes the open utterance and waits until every final is decoded, journaled and queued."""
        if not self._finishing:
            self._finishing = True
            self.room.publish_nowait(self.session.finish())
            self._wake.set()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _decode_loop(self) -> None:
        session = self.session
        try:
            while True:
                request = session.next_request()
                if request is None:
                    if self._finishing and session.idle:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                result = await self.scheduler.submit(request)
                events = session.on_result(result)
                finals = sum(isinstance(e, Final) for e in events)
                self.finals += finals
                self.metrics.finals += finals
                await self.room.publish(events)
                self._progress.set()
                await self.room.update_time(session.time)
                self._check_lag()
        finally:
            self._progress.set()

    def _check_lag(self) -> None:
        lag = self.session.backlog
        now = time.monotonic()
        if lag > self.lag_warning and now - self._last_warning > LAG_WARNING_INTERVAL and self.room.speaker:
            self._last_warning = now
            logger.info("[%s] captions lag the audio by %.1f s", self.session_id, lag)
            self.room.speaker.offer(
                warning_message("lag", f"captions lag the audio by {lag:.1f} s", lag=round(lag, 2)),
                essential=False,
            )
