"""`SinkHub`: the caption sinks of every session, owned by the server's `Registry`.

A session's sinks (`SessionSinks`) live while the session is live: created from the speaker's start
message (`session_started`) or the HTTP API (`add`), fed by `Room.publish` after each final is journaled and
broadcast (`publish`, never blocking; the live partial too, `publish_partial`, for sinks that forward it),
and drained when the session ends (`session_ended`: each sink gets `drain_timeout` seconds to deliver its
backlog, in the background, then stops). A speaker that resumes the session before the drain is over keeps
the running sinks. The hub, not the room, holds them, so a room dropped from memory while its sinks drain
cannot end up with a second, competing copy of a sink.
Server shutdown calls `close`, which waits for the drains (bounded) and stops whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from streamer.errors import StreamerError
from streamer.events import Final, Partial
from streamer.sinks.base import DEFAULT_CAPACITY, RetryPolicy, Sink, Transport
from streamer.sinks.spec import MAX_SINKS, SinkSpec
from streamer.sinks.webhook import WebhookSink
from streamer.sinks.youtube import YouTubeSink
from streamer.sinks.zoom import ZoomSink

logger = logging.getLogger(__name__)

SINK_TYPES: dict[str, type[Sink]] = {"zoom": ZoomSink, "youtube": YouTubeSink, "webhook": WebhookSink}
DRAIN_TIMEOUT = 30.0
"""Seconds a sink may keep delivering its backlog after its session ended (or at server shutdown)."""


class SinkError(StreamerError):
    """A sink request the API refuses; `status` is the HTTP status to answer."""

    status = 400


class SinkConflict(SinkError):
    status = 409


class UnknownSink(SinkError):
    status = 404


class SessionSinks:
    """The sinks of one session."""

    def __init__(self, session_id: str, session_dir: Path | None, factory: Callable[..., Sink]) -> None:
        self.session_id = session_id
        self.session_dir = session_dir
        self.live = False
        self.clock_origin = 0.0
        self.sinks: dict[str, Sink] = {}
        self.draining: asyncio.Task[None] | None = None
        self._factory = factory

    def add(self, spec: SinkSpec) -> Sink:
        existing = self.sinks.get(spec.id)
        if existing is not None and existing.running and existing.spec == spec:
            return existing
        if existing is not None and existing.running:
            raise SinkConflict(f"session {self.session_id!r} already has a sink {spec.id!r}")
        if len(self.sinks) - (existing is not None) >= MAX_SINKS:
            raise SinkConflict(f"a session has at most {MAX_SINKS} sinks")
        sink = self._factory(
            spec, self.session_id, session_dir=self.session_dir, clock_origin=self.clock_origin
        )
        self.sinks[spec.id] = sink
        sink.start()
        logger.info("[%s] sink %s added: %s to %s", self.session_id, spec.id, spec.kind, spec.target)
        return sink

    async def remove(self, sink_id: str) -> dict[str, Any]:
        sink = self.sinks.pop(sink_id, None)
        if sink is None:
            raise UnknownSink(f"session {self.session_id!r} has no sink {sink_id!r}")
        await sink.stop()
        logger.info("[%s] sink %s removed", self.session_id, sink_id)
        return sink.status()

    def publish(self, final: Final) -> None:
        for sink in self.sinks.values():
            sink.offer(final)

    def publish_partial(self, partial: Partial) -> None:
        for sink in self.sinks.values():
            sink.offer_partial(partial)

    def status(self) -> list[dict[str, Any]]:
        return [sink.status() for sink in self.sinks.values()]

    async def drain(self, timeout: float) -> None:
        sinks = list(self.sinks.values())
        await asyncio.gather(*(sink.drain(timeout) for sink in sinks))
        for sink in sinks:
            if self.sinks.get(sink.spec.id) is sink:
                del self.sinks[sink.spec.id]


class SinkHub:
    """Every session's sinks. `transport`, `retry`, `capacity` and `sleep` are for tests."""

    def __init__(
        self,
        *,
        transport: Transport | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen
        capacity: int = DEFAULT_CAPACITY,
        drain_timeout: float = DRAIN_TIMEOUT,
    ) -> None:
        self.transport = transport
        self.retry = retry
        self.capacity = capacity
        self.drain_timeout = drain_timeout
        self.sessions: dict[str, SessionSinks] = {}

    def _create(self, spec: SinkSpec, session_id: str, **options: Any) -> Sink:
        sink_type = SINK_TYPES[spec.kind]
        return sink_type(
            spec, session_id, transport=self.transport, retry=self.retry, capacity=self.capacity, **options
        )

    # -- the session's life --------------------------------------------------------------------------------

    async def session_started(
        self, session_id: str, session_dir: Path | None, clock_origin: float, specs: Iterable[SinkSpec]
    ) -> list[Sink]:
        """A speaker went live: keeps sinks still draining from before, adds the start message's sinks.

        Raises `SinkConflict` (nothing is added then) if there would be more than `MAX_SINKS`.
        """
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = SessionSinks(session_id, session_dir, self._create)
        elif session.draining is not None:
            session.draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.draining
            session.draining = None
            for sink_id, sink in list(session.sinks.items()):
                if not sink.running:
                    del session.sinks[sink_id]
        session.live = True
        session.clock_origin = clock_origin
        for sink in session.sinks.values():
            sink.clock_origin = clock_origin
        specs = list(specs)
        new = {s.id for s in specs} - set(session.sinks)
        if len(session.sinks) + len(new) > MAX_SINKS:
            raise SinkConflict(f"a session has at most {MAX_SINKS} sinks")
        for spec in specs:  # the start message wins over a running sink of the same id
            existing = session.sinks.get(spec.id)
            if existing is not None and existing.spec != spec:
                await session.remove(spec.id)
        return [session.add(spec) for spec in specs]

    def session_ended(self, session_id: str) -> None:
        """The speaker is gone: every sink drains in the background (bounded by `drain_timeout`)."""
        session = self.sessions.get(session_id)
        if session is None:
            return
        session.live = False
        if not session.sinks:
            del self.sessions[session_id]
            return
        session.draining = asyncio.create_task(self._drain(session), name=f"sinks-drain-{session_id}")

    async def _drain(self, session: SessionSinks) -> None:
        await session.drain(self.drain_timeout)
        session.draining = None
        if not session.sinks and not session.live and self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]

    async def close(self, timeout: float | None = None) -> None:
        """Server shutdown: ends every session's sinks, waits for their drains, stops the rest."""
        for session_id in [sid for sid, s in self.sessions.items() if s.draining is None]:
            self.session_ended(session_id)
        tasks = [s.draining for s in self.sessions.values() if s.draining is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout if timeout is None else timeout)
            for task in pending:
                task.cancel()
        for session in list(self.sessions.values()):
            for sink in list(session.sinks.values()):
                await sink.stop()
        self.sessions.clear()

    # -- the API's and the room's side ---------------------------------------------------------------------

    def publish(self, session_id: str, final: Final) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            session.publish(final)

    def publish_partial(self, session_id: str, partial: Partial) -> None:
        """The live caption, for the sinks that forward partials; never blocks."""
        session = self.sessions.get(session_id)
        if session is not None:
            session.publish_partial(partial)

    def add(self, session_id: str, spec: SinkSpec) -> Sink:
        session = self.sessions.get(session_id)
        if session is None or not session.live:
            raise SinkConflict(f"session {session_id!r} is not live; sinks forward live captions only")
        return session.add(spec)

    async def remove(self, session_id: str, sink_id: str) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            raise UnknownSink(f"session {session_id!r} has no sink {sink_id!r}")
        return await session.remove(sink_id)

    def status(self, session_id: str) -> list[dict[str, Any]]:
        session = self.sessions.get(session_id)
        return session.status() if session is not None else []

    def metric_families(self) -> list[tuple[str, str, str, list[tuple[Mapping[str, str], float]]]]:
        """Prometheus families (name, type, help, samples) labelled by session and sink kind, never URL."""
        totals: dict[tuple[str, str], dict[str, float]] = {}
        for session_id, session in self.sessions.items():
            for sink in session.sinks.values():
                row = totals.setdefault((session_id, sink.kind), dict.fromkeys(_FAMILIES, 0.0))
                row["streamer_sinks"] += 1
                row["streamer_sink_delivered_total"] += sink.delivered
                row["streamer_sink_failures_total"] += sink.failures
                row["streamer_sink_dropped_total"] += sink.dropped
                row["streamer_sink_backlog"] += sink.backlog
                row["streamer_sink_acked_seq"] = max(row["streamer_sink_acked_seq"], sink.acked)
        return [
            (
                name,
                kind,
                help_text,
                [({"session": s, "kind": k}, row[name]) for (s, k), row in sorted(totals.items())],
            )
            for name, (kind, help_text) in _FAMILIES.items()
        ]


_FAMILIES: dict[str, tuple[str, str]] = {
    "streamer_sinks": ("gauge", "Caption sinks attached, per session and kind."),
    "streamer_sink_delivered_total": ("counter", "Finals acknowledged by caption sinks."),
    "streamer_sink_failures_total": ("counter", "Failed caption sink requests (each was retried)."),
    "streamer_sink_dropped_total": ("counter", "Finals dropped because a sink's queue overflowed."),
    "streamer_sink_backlog": ("gauge", "Finals waiting for delivery to caption sinks."),
    "streamer_sink_acked_seq": ("gauge", "Last seq a caption sink acknowledged (the highest of the kind)."),
}
