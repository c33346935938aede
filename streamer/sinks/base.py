"""The delivery loop every sink shares: a bounded queue, seq numbering, retry with backoff, and status.

Rules:
- `Sink.offer` never blocks and never raises: the room calls it after a final is journaled and broadcast,
  so a slow or dead destination can never delay viewers or the journal.
- Queue bound and overflow policy: up to `capacity` finals (10,000 by default, hours of speech) wait per
  sink; past that the *oldest* waiting final is dropped and counted (`dropped` in the status and metrics,
  and a warning in the log). No other final is ever dropped (stale partials are, below).
- One request in flight per sink, finals in order. A final gets its seq when its first attempt starts:
  ``acked + 1``; every retry of it reuses that seq, so seqs run 1, 2, 3, ... with no gaps or repeats
  (a dropped final never gets a seq).
- Any failure (a connection error, a timeout or a non-2xx status: Zoom's 400 before the meeting starts,
  403/405, 408, 429, 5xx) is retried with exponential backoff (`RetryPolicy`), forever: a sink gives up
  only when it is removed, or when its session has ended and `drain` runs out of time.
- Partial captions, for sinks whose spec asks for them (Zoom's ``partials``): only the newest waits (a
  backlog of one); a newer partial replaces it and a final drops it, so a partial never follows a final
  that came after it. Its text is the partial's not-yet-final tail (`partial_text`); one without such words
  just clears the waiting one. It is posted only when no final waits, at most once per ``partial_interval``
  seconds (counted from the start of the previous partial), and takes the next seq as a final does; a
  failed one is retried with that seq and text (the destination may have shown it already, and a repeated
  seq counts as a retry there), so finals are never reordered and wait at most for a partial already
  started. Finals are counted in ``delivered``, partials in ``partials_delivered``; draining waits for the
  finals and a partial already started, not for a waiting one.
- After each acknowledged caption the seq is persisted (``sinks/<id>.json`` in the session's folder); a new
  sink for the same session and id continues from ``max(persisted, remote)``, where remote is what the
  destination reports (`Sink.remote_seq`, Zoom only).
- The URL is a secret: logs and status show `masked_url` only; error texts are scrubbed of it.

Subclasses implement `request` (a final and its seq to an `HttpRequest`) and may implement `remote_seq` and
`partial_request` (for specs with ``partials``).
All I/O goes through a `Transport` (default: stdlib `http.client` in a worker thread); tests use
`MockTransport` and a fake `sleep`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import json
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from streamer.events import Final, Partial
from streamer.sinks.spec import SinkSpec, masked_url

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 10_000
"""Finals waiting per sink before the oldest is dropped (and counted)."""
REQUEST_TIMEOUT = 10.0
"""Seconds one HTTP request may take (connect + send + response)."""
MAX_RESPONSE_BYTES = 64 * 1024
STATE_DIR = "sinks"
"""Folder of per-sink state files inside a session's folder (no URLs or secrets are stored)."""
ERROR_LOG_EVERY = 10
"""After the first failure of a final, only every this-many-th retry is logged."""
USER_AGENT = "streamer-caption-sink/1"

Caption = Final | Partial


def partial_text(partial: Partial) -> str:
    """What a partial caption shows: the words not final yet (the finals before it showed the rest)."""
    return " ".join(partial.unstable.split())


# -- HTTP ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {masked_url(self.url)}, {len(self.body)} bytes)"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Transport(Protocol):
    """Sends one request; raises `OSError` or `http.client.HTTPException` when there is no response."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...


def _send_blocking(request: HttpRequest, timeout: float) -> HttpResponse:
    parts = urlsplit(request.url)
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        headers = {"User-Agent": USER_AGENT, "Content-Length": str(len(request.body))}
        headers.update(request.headers)
        conn.request(request.method, target, body=request.body, headers=headers)
        response = conn.getresponse()
        return HttpResponse(response.status, response.read(MAX_RESPONSE_BYTES))
    finally:
        conn.close()


class ThreadTransport:
    """Stdlib `http.client` in a worker thread, one connection per request, no redirects, no proxies."""

    def __init__(self, timeout: float = REQUEST_TIMEOUT) -> None:
        self.timeout = timeout

    async def send(self, request: HttpRequest) -> HttpResponse:
        return await asyncio.to_thread(_send_blocking, request, self.timeout)


class MockTransport:
    """A test double: `handler` answers each request (or raises `OSError` for a connection failure)."""

    def __init__(self, handler: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        result = self.handler(request)
        if isinstance(result, HttpResponse):
            return result
        return await result


def describe_error(exc: BaseException, url: str) -> str:
    """An exception as one line for status and logs, with any trace of the URL removed."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    parts = urlsplit(url)
    for secret in sorted({url, parts.path, parts.query, parts.netloc}, key=len, reverse=True):
        if len(secret) > 1:
            text = text.replace(secret, "…")
    return text[:200]


# -- retry and state ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: `initial` * `factor` ** (attempt - 1), at most `maximum` seconds."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 15.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))


class SeqStore:
    """The last acknowledged seq of one sink, in ``<session dir>/sinks/<id>.json`` (atomic replace)."""

    def __init__(self, session_dir: Path | None, sink_id: str) -> None:
        self.path = session_dir / STATE_DIR / f"{sink_id}.json" if session_dir is not None else None

    def load(self) -> int:
        if self.path is None:
            return 0
        try:
            return max(0, int(json.loads(self.path.read_text(encoding="utf-8"))["acked"]))
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable sink state %s; starting from seq 1", self.path)
            return 0

    def save(self, kind: str, acked: int) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump({"kind": kind, "acked": acked, "updated": round(time.time(), 3)}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


# -- the sink -----------------------------------------------------------------------------------------------

Sleep = Callable[[float], Awaitable[Any]]


class Sink:
    """One destination of one session: its queue, its delivery task, its status."""

    kind: ClassVar[str] = "sink"

    def __init__(
        self,
        spec: SinkSpec,
        session_id: str,
        *,
        session_dir: Path | None = None,
        transport: Transport | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen
        capacity: int = DEFAULT_CAPACITY,
        sleep: Sleep = asyncio.sleep,
        clock_origin: float = 0.0,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.spec = spec
        self.session_id = session_id
        self.transport: Transport = transport or ThreadTransport()
        self.retry = retry
        self.capacity = capacity
        self.clock_origin = clock_origin
        """Wall-clock time (epoch seconds) of the session's audio time 0."""
        self._sleep = sleep
        self._store = SeqStore(session_dir, spec.id)
        self._queue: collections.deque[Final] = collections.deque()
        self._partial: Partial | None = None  # the newest partial waiting, if any
        self._partial_due = 0.0  # monotonic time from which the next partial may start
        self._last_partial_text: str | None = None  # the partial posted since the last final
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: Caption | None = None
        self._draining = False
        self.state = "new"
        self.seq = 0
        """The seq of the final being delivered, or of the last one delivered."""
        self.acked = 0
        self.delivered = 0
        self.partials_delivered = 0
        """Partial captions acknowledged (`delivered` counts finals)."""
        self.failures = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_delivered_at: float | None = None

    # -- what subclasses provide ---------------------------------------------------------------------------

    def request(self, final: Final, seq: int) -> HttpRequest:
        raise NotImplementedError

    def partial_request(self, text: str, seq: int) -> HttpRequest:
        """A partial caption (its `partial_text`) and its seq, for sinks whose spec has ``partials``."""
        raise NotImplementedError

    async def remote_seq(self) -> int | None:
        """The last seq the destination acknowledged, if it can tell (``None``: unknown)."""
        return None

    # -- the room's side (never blocks) --------------------------------------------------------------------

    def offer(self, final: Final) -> None:
        """Queues a final for delivery; past `capacity` the oldest waiting final is dropped and counted."""
        if self.state == "stopped":
            return
        if len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "[%s] sink %s (%s) is %d finals behind: dropped %d oldest so far",
                    self.session_id,
                    self.spec.id,
                    self.spec.target,
                    self.capacity,
                    self.dropped,
                )
        self._queue.append(final)
        self._partial = None  # older than this final: never shown after it
        self._idle.clear()
        self._wake.set()

    def offer_partial(self, partial: Partial) -> None:
        """Keeps the newest partial for delivery (only with ``partials`` in the spec); never blocks."""
        if not self.spec.partials or self.state == "stopped":
            return
        self._partial = partial if partial_text(partial) else None
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._queue) + isinstance(self._in_flight, Final)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def status(self) -> dict[str, Any]:
        return {
            **self.spec.public(),
            "state": "draining" if self._draining and self.state != "stopped" else self.state,
            "seq": self.seq,
            "acked": self.acked,
            "delivered": self.delivered,
            "partials_delivered": self.partials_delivered,
            "failures": self.failures,
            "backlog": self.backlog,
            "dropped": self.dropped,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_delivered_at": self.last_delivered_at,
        }

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sink-{self.session_id}-{self.spec.id}")

    async def drain(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the backlog to be delivered, then stops; True if all went."""
        self._draining = True
        drained = True
        if self.running:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                drained = False
            except asyncio.CancelledError:  # the session came back: keep delivering
                self._draining = False
                raise
        await self.stop()
        return drained

    async def stop(self) -> None:
        """Stops at once; whatever is still queued is abandoned (and shown as backlog)."""
        self.state = "stopped"
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.backlog:
            logger.warning(
                "[%s] sink %s (%s) stopped with %d final(s) undelivered",
                self.session_id,
                self.spec.id,
                self.spec.target,
                self.backlog,
            )

    # -- the delivery loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        sid, spec = self.session_id, self.spec
        try:
            self.state = "starting"
            await self._recover_seq()
            logger.info("[%s] sink %s (%s) delivering from seq %d", sid, spec.id, spec.target, self.acked + 1)
            while True:
                if self._queue:
                    await self._send(self._queue.popleft())
                    continue
                partial = self._due_partial()
                if partial is not None:
                    self._idle.clear()
                    await self._send(partial)
                    continue
                self.state = "idle"
                self._idle.set()
                self._wake.clear()
                if self._partial is None:
                    await self._wake.wait()
                else:  # a partial waits for its turn, or for a final or newer partial to replace it
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._partial_due - time.monotonic())
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("[%s] sink %s (%s) failed", sid, spec.id, spec.target)
            self.state = "failed"
            raise

    def _due_partial(self) -> Partial | None:
        """The waiting partial if its turn has come (taken off the wait), else None."""
        partial = self._partial
        now = time.monotonic()
        if partial is None or now < self._partial_due:
            return None
        self._partial = None
        if partial_text(partial) == self._last_partial_text:
            return None  # the same words as the partial on screen
        self._partial_due = now + self.spec.partial_interval
        return partial

    async def _send(self, caption: Caption) -> None:
        self._in_flight = caption
        await self._deliver(caption, self.acked + 1)
        self._in_flight = None
        self._last_partial_text = partial_text(caption) if isinstance(caption, Partial) else None

    async def _recover_seq(self) -> None:
        persisted = await asyncio.to_thread(self._store.load)
        remote = None
        try:
            remote = await self.remote_seq()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            logger.info(
                "[%s] sink %s (%s): cannot read the last seq (%s); using the stored %d",
                self.session_id,
                self.spec.id,
                self.spec.target,
                describe_error(exc, self.spec.url),
                persisted,
            )
        self.acked = self.seq = max(persisted, remote or 0)

    async def _deliver(self, caption: Caption, seq: int) -> None:
        """Sends one caption until it is acknowledged (retrying with backoff), then records the seq."""
        self.seq = seq
        attempt = 0
        while True:
            self.state = "delivering" if attempt == 0 else "retrying"
            if isinstance(caption, Final):
                request = self.request(caption, seq)
            else:
                request = self.partial_request(partial_text(caption), seq)
            try:
                response = await self.transport.send(request)
                error = None if response.ok else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                error = describe_error(exc, self.spec.url)
            if error is None:
                break
            attempt += 1
            self.failures += 1
            self.last_error, self.last_error_at = error, round(time.time(), 3)
            delay = self.retry.delay(attempt)
            if attempt == 1 or attempt % ERROR_LOG_EVERY == 0:
                logger.warning(
                    "[%s] sink %s (%s): seq %d failed (%s), attempt %d; retrying in %.1f s",
                    self.session_id,
                    self.spec.id,
                    self.spec.target,
                    seq,
                    error,
                    attempt,
                    delay,
                )
            await self._sleep(delay)
        self.acked = seq
        if isinstance(caption, Final):
            self.delivered += 1
        else:
            self.partials_delivered += 1
        self.last_delivered_at = round(time.time(), 3)
        try:
            await asyncio.to_thread(self._store.save, self.kind, seq)
        except OSError:
            logger.exception("[%s] sink %s: cannot persist seq %d", self.session_id, self.spec.id, seq)
