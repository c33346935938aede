"""Rooms: everything about one session id in one place, and the registry of rooms.

A `Room` owns the session's journal, its finals so far, its subscribers (the speaker's connection and any
number of viewers) and, while a speaker is connected, its `LivePipeline`. The server object holds only the
`Registry`; per-session state never lives anywhere else.

Order and durability: `Room.publish` appends a final to the journal (fsync'd, on a worker thread) before it
is broadcast, and each message is serialized once per room and the same text queued to every subscriber.
A viewer that joins gets the history and the live messages with nothing lost or doubled: taking the history
and subscribing happen in one step with no await between them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.events import CaptionEvent, Final, Partial
from streamer.protocol import event_message, history_message
from streamer.server.errors import SessionBusy
from streamer.server.fanout import Subscriber
from streamer.server.metrics import Metrics
from streamer.sinks.manager import SinkHub
from streamer.storage.journal import STATUS_ENDED, STATUS_LIVE, Journal, JournalStore, SessionMeta

if TYPE_CHECKING:
    from streamer.server.pipeline import LivePipeline

logger = logging.getLogger(__name__)

META_INTERVAL = 5.0
"""Wall seconds between meta-file updates of a live session's audio time (also written at start and end)."""
CONTEXT_CHARS = 200
"""Characters of the transcript given to a resumed session as its prompt context."""


class Room:
    def __init__(
        self, session_id: str, journal: Journal, meta: SessionMeta | None, finals: Iterable[Final]
    ) -> None:
        self.session_id = session_id
        self.journal = journal
        self.meta = meta
        self.finals: list[Final] = list(finals)
        self.viewers: set[Subscriber] = set()
        self.speaker: Subscriber | None = None
        self.pipeline: LivePipeline | None = None  # while a speaker is connected
        self.sink_hub: SinkHub | None = None  # the registry's; caption sinks are forwarded captions
        self._claimed = False
        self._meta_written = 0.0

    # -- state ----------------------------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._claimed

    def lag(self) -> float:
        """Seconds of the live speaker's speech not yet decoded (0 without a speaker)."""
        return self.pipeline.session.backlog if self.pipeline is not None else 0.0

    @property
    def title(self) -> str:
        return self.meta.title if self.meta else self.session_id

    def resume_point(self) -> tuple[float, int, int, str]:
        """(start_time, first_index, first_utterance_id, context) for a session continuing this transcript."""
        last = self.finals[-1] if self.finals else None
        start = max(last.end if last else 0.0, self.meta.time if self.meta else 0.0)
        text = " ".join(f.text for f in self.finals[-20:])
        context = text[-CONTEXT_CHARS:]
        if " " in context and len(text) > CONTEXT_CHARS:
            context = context[context.find(" ") + 1 :]
        return (start, last.index + 1 if last else 0, last.utterance_id + 1 if last else 0, context)

    def info(self) -> dict[str, object]:
        meta = self.meta
        return {
            "id": self.session_id,
            "title": self.title,
            "status": STATUS_LIVE if self.live else (meta.status if meta else STATUS_ENDED),
            "live": self.live,
            "created": meta.created if meta else None,
            "time": round(meta.time, 3) if meta else 0.0,
            "finals": len(self.finals),
            "duration": round(self.finals[-1].end, 3) if self.finals else 0.0,
            "viewers": len(self.viewers),
            "language": meta.language if meta else None,
            "sinks": self.sink_hub.status(self.session_id) if self.sink_hub is not None else [],
        }

    # -- speaker --------------------------------------------------------------------------------------------

    def claim(self) -> None:
        """Reserves the room for one speaker; raises `SessionBusy` if it has one."""
        if self._claimed:
            raise SessionBusy(f"session {self.session_id!r} already has a live speaker")
        self._claimed = True

    async def open_journal(self, title: str | None, language: str | None) -> SessionMeta:
        finals = await asyncio.to_thread(self.journal.open)
        if len(finals) != len(self.finals):
            self.finals = list(finals)
        now = time.time()
        if self.meta is None:
            meta = SessionMeta(
                self.session_id, title or self.session_id, now, STATUS_LIVE, 0.0, now, language
            )
        else:
            meta = self.meta.with_(status=STATUS_LIVE, title=title or self.meta.title, language=language)
        await self._write_meta(meta)
        return meta

    async def update_time(self, stream_time: float, force: bool = False) -> None:
        if self.meta is None or (not force and time.monotonic() - self._meta_written < META_INTERVAL):
            return
        await self._write_meta(self.meta.with_(time=max(self.meta.time, stream_time)))

    async def _write_meta(self, meta: SessionMeta) -> None:
        self.meta = meta
        self._meta_written = time.monotonic()
        await asyncio.to_thread(self.journal.write_meta, meta)

    async def release(self, stream_time: float) -> None:
        """The speaker is gone and its session finished: mark the session ended and close the journal."""
        try:
            if self.meta is not None:
                await self._write_meta(
                    self.meta.with_(status=STATUS_ENDED, time=max(self.meta.time, stream_time))
                )
            await asyncio.to_thread(self.journal.close)
        finally:
            if self.sink_hub is not None:
                self.sink_hub.session_ended(self.session_id)  # sinks drain in the background
            self.pipeline = None
            self.speaker = None
            self._claimed = False

    def unclaim(self) -> None:
        """Gives the room back without having opened it (the speaker was refused)."""
        self.pipeline = None
        self.speaker = None
        self._claimed = False

    # -- fan-out --------------------------------------------------------------------------------------------

    async def publish(self, events: Iterable[CaptionEvent]) -> None:
        """Journals finals (fsync'd) and then sends every event to the speaker and all viewers."""
        for event in events:
            if isinstance(event, Final):
                await asyncio.to_thread(self.journal.append, event)
                self.finals.append(event)
            self.broadcast(event_message(event), essential=isinstance(event, Final))
            if self.sink_hub is None:
                continue
            if isinstance(event, Final):
                self.sink_hub.publish(self.session_id, event)  # queued per sink; never waits
            elif isinstance(event, Partial):
                self.sink_hub.publish_partial(self.session_id, event)  # replaces the one waiting

    def publish_nowait(self, events: Iterable[CaptionEvent]) -> None:
        """Sends events that carry no final (speech boundaries, partials) without waiting."""
        for event in events:
            if isinstance(event, Final):
                raise ValueError("finals must go through publish() to be journaled first")
            self.broadcast(event_message(event), essential=False)

    def broadcast(self, text: str, essential: bool) -> None:
        if self.speaker is not None:
            self.speaker.offer(text, essential)
        for viewer in list(self.viewers):
            viewer.offer(text, essential)

    def notify_viewers(self, text: str) -> None:
        for viewer in list(self.viewers):
            viewer.offer(text, True)

    def join(self, viewer: Subscriber, history_limit: int) -> None:
        """Queues the history, then subscribes the viewer to live messages (atomically)."""
        finals = self.finals[-history_limit:] if history_limit else self.finals
        viewer.offer(history_message(self.session_id, finals, len(self.finals), self.live), essential=True)
        self.viewers.add(viewer)

    def leave(self, viewer: Subscriber) -> None:
        self.viewers.discard(viewer)


class Registry:
    """All rooms in memory, loaded from the journal store on demand and dropped when unused."""

    def __init__(self, store: JournalStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.rooms: dict[str, Room] = {}
        self.sinks = SinkHub()
        self._lock = asyncio.Lock()

    @property
    def data_dir(self) -> Path:
        return self.store.root

    def live_rooms(self) -> list[Room]:
        return [room for room in self.rooms.values() if room.live]

    def speakers(self) -> int:
        return sum(1 for room in self.rooms.values() if room.live)

    def viewers(self) -> int:
        return sum(len(room.viewers) for room in self.rooms.values())

    async def get(self, session_id: str, create: bool = False) -> Room | None:
        """The room of a session: in memory, or loaded from its journal, or (with `create`) a new one."""
        room = self.rooms.get(session_id)
        if room is not None:
            return room
        async with self._lock:
            room = self.rooms.get(session_id)
            if room is not None:
                return room
            journal = self.store.journal(session_id)
            meta = await asyncio.to_thread(journal.read_meta)
            if meta is None and not create:
                return None
            finals = await asyncio.to_thread(journal.load) if meta is not None else ()
            room = Room(session_id, journal, meta, finals)
            room.sink_hub = self.sinks
            self.rooms[session_id] = room
            return room

    def discard_if_unused(self, room: Room) -> None:
        if not room.live and not room.viewers and self.rooms.get(room.session_id) is room:
            del self.rooms[room.session_id]

    async def sessions(self) -> list[dict[str, object]]:
        """Info of every session on disk or live, newest first."""
        ids = set(await asyncio.to_thread(self.store.session_ids)) | set(self.rooms)
        infos = []
        for session_id in ids:
            room = self.rooms.get(session_id) or await self.get(session_id)
            if room is not None:
                infos.append(room.info())
                self.discard_if_unused(room)
        infos.sort(key=lambda i: float(i["created"] or 0.0), reverse=True)  # type: ignore[arg-type]
        return infos
