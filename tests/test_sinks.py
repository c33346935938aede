"""Caption sinks (streamer.sinks) against local fake Zoom / YouTube / webhook servers on 127.0.0.1.

The fakes behave as the services document: Zoom's closed-caption API checks ``text/plain`` and the
``seq``/``lang`` parameters, answers 400 until the meeting starts and serves ``/closedcaption/seq``;
YouTube's ingestion checks ``seq`` and the timestamp-line body; the webhook receiver verifies the HMAC.
Failures are injected (a dropped connection, a 503, a hanging server). Nothing here loads a model: the
in-process server tests use the scripted transcriber and VAD of test_session; one end-to-end test with the
real model streams real speech (``-m slow`` to select it on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streamer.events import Final, Partial
from streamer.protocol import InvalidMessage, parse_client_text
from streamer.server.app import StreamerServer
from streamer.server.rooms import Room
from streamer.server.settings import ServerConfig
from streamer.sinks.base import HttpRequest, HttpResponse, MockTransport, RetryPolicy, Sink
from streamer.sinks.manager import SinkHub
from streamer.sinks.spec import InvalidSinkSpec, SinkSpec, masked_url, parse_sink_spec
from streamer.sinks.webhook import WebhookSink
from streamer.sinks.youtube import YouTubeSink, timestamp
from streamer.sinks.zoom import ZoomSink, seq_url, with_params
from streamer.storage.journal import JournalStore
from tests.test_session import RmsVad, Script, ScriptedTranscriber

FAST = RetryPolicy(initial=0.01, factor=2.0, maximum=0.05)
TIMEOUT = 20.0
TOKEN = "s3cr3t-API-t0ken-9f8e7d"
SECRET = "webhook-secret-0123456789"
EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata" / "short"
YOUTUBE_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})(?: region:\S+)?\n(.+)\n$")


def finals(count: int, first: int = 0) -> list[Final]:
    return [
        Final(i, i, i * 2.0 + 0.25, i * 2.0 + 1.5, f"Caption number {i}, déjà vu.")
        for i in range(first, first + count)
    ]


# -- the fake services ------------------------------------------------------------------------------------


@dataclass
class FakeService:
    """State of one fake caption endpoint, shared with its handler threads."""

    mode: str  # "zoom", "youtube" or "webhook"
    started: bool = True
    """Zoom: False answers every caption with 400, as Zoom does before the meeting starts."""
    seq_endpoint: bool = True
    drop_once: set[int] = field(default_factory=set)
    """Seqs whose first attempt gets the connection closed without an answer."""
    fail_once: dict[int, int] = field(default_factory=dict)
    """Seqs whose first attempt gets this status."""
    gate: threading.Event = field(default_factory=threading.Event)
    """Cleared: requests hang until it is set again."""
    accepted: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    """When each accepted request came (monotonic), in step with `accepted`."""
    errors: list[str] = field(default_factory=list)
    rejected: int = 0
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.gate.set()

    @property
    def last_seq(self) -> int:
        return self.accepted[-1]["seq"] if self.accepted else 0

    def seqs(self) -> list[int]:
        with self.lock:
            return [a["seq"] for a in self.accepted]


class Handler(BaseHTTPRequestHandler):
    service: FakeService  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the stderr log
        pass

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = parse_qs(parts.query)
        service = self.service
        if service.mode == "zoom" and parts.path == "/closedcaption/seq" and service.seq_endpoint:
            if params.get("id") != [TOKEN]:
                self._answer(403)
                return
            with service.lock:
                self._answer(200, str(service.last_seq).encode())
            return
        self._answer(404)

    def do_POST(self) -> None:
        service = self.service
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        service.gate.wait()
        parts = urlsplit(self.path)
        params = parse_qs(parts.query)
        with service.lock:
            service.attempts += 1
            if service.mode == "webhook":
                seq = json.loads(body)["seq"]
            else:
                seq = int(params["seq"][0]) if params.get("seq", [""])[0].isdigit() else -1
            problem = self._check(parts.path, params, body, seq)
            if problem:
                service.errors.append(problem)
                self._answer(400)
                return
            if service.mode == "zoom" and not service.started:
                service.rejected += 1
                self._answer(400, b"meeting has not started")
                return
            if seq in service.drop_once:
                service.drop_once.discard(seq)
                self._drop()
                return
            if seq in service.fail_once:
                self._answer(service.fail_once.pop(seq))
                return
            if seq != service.last_seq + 1:
                service.errors.append(f"seq {seq} after {service.last_seq}")
            service.accepted.append(self._record(params, body, seq))
            service.arrived.append(time.monotonic())
            self._answer(200, b"2026-01-01T00:00:00.000\n" if service.mode == "youtube" else b"")

    def _check(self, path: str, params: dict[str, list[str]], body: bytes, seq: int) -> str | None:
        kind = self.headers.get("Content-Type", "")
        mode = self.service.mode
        if mode in ("zoom", "youtube"):
            if path != "/closedcaption" or params.get("id" if mode == "zoom" else "cid") != [TOKEN]:
                return f"bad path or token: {path}"
            if kind != "text/plain; charset=utf-8":
                return f"bad content type {kind!r}"
            if seq < 1:
                return "missing or bad seq"
        if mode == "zoom" and params.get("lang") != ["en-US"]:
            return f"bad lang {params.get('lang')}"
        if mode == "youtube" and not YOUTUBE_LINE.match(body.decode()):
            return f"bad youtube body {body!r}"
        if mode == "webhook":
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.headers.get("X-Streamer-Signature", "")):
                return "bad signature"
            if kind != "application/json":
                return f"bad content type {kind!r}"
            if float(self.headers["X-Streamer-Timestamp"]) != json.loads(body)["timestamp"]:
                return "timestamp header differs from the signed body"
        return None

    def _record(self, params: dict[str, list[str]], body: bytes, seq: int) -> dict[str, Any]:
        if self.service.mode == "zoom":
            return {"seq": seq, "lang": params["lang"][0], "text": body.decode("utf-8")}
        if self.service.mode == "youtube":
            match = YOUTUBE_LINE.match(body.decode())
            assert match is not None
            return {"seq": seq, "time": match.group(1), "text": match.group(2)}
        return {"seq": seq, "payload": json.loads(body), "delivery": self.headers["X-Streamer-Delivery"]}


@contextlib.contextmanager
def fake_service(mode: str, **options: Any) -> Iterator[tuple[FakeService, str]]:
    """A fake service on 127.0.0.1 and the secret URL a host would copy for it."""
    service = FakeService(mode, **options)
    handler = type("BoundHandler", (Handler,), {"service": service})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    url = {
        "zoom": f"{base}/closedcaption?id={TOKEN}&ns=GZHkEA&expire=86400&signature=c2ln",
        "youtube": f"{base}/closedcaption?cid={TOKEN}",
        "webhook": f"{base}/hooks/captions?key={TOKEN}",
    }[mode]
    try:
        yield service, url
    finally:
        service.gate.set()
        server.shutdown()
        server.server_close()


def spec(kind: str, url: str, **extra: Any) -> SinkSpec:
    data: dict[str, Any] = {"kind": kind, "url": url, **extra}
    if kind == "webhook":
        data.setdefault("secret", SECRET)
    return parse_sink_spec(data)


async def wait_for(predicate: Any, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def make_sink(cls: type[Sink], kind: str, url: str, session_dir: Path | None, **options: Any) -> Sink:
    options.setdefault("retry", FAST)
    return cls(spec(kind, url), "talk", session_dir=session_dir, **options)


# -- spec and protocol ------------------------------------------------------------------------------------


def test_spec_validates_and_never_shows_the_url_or_secret() -> None:
    zoom = parse_sink_spec({"kind": "zoom", "url": f"https://wmcc.zoom.us/closedcaption?id={TOKEN}"})
    assert zoom.id.startswith("zoom-") and zoom.lang == "en-US"
    assert zoom.id == parse_sink_spec({"kind": "zoom", "url": zoom.url}).id  # stable across restarts
    assert TOKEN not in repr(zoom) and TOKEN not in json.dumps(zoom.public())
    assert zoom.public()["target"] == "https://wmcc.zoom.us/…" == masked_url(zoom.url)
    hook = spec("webhook", "https://example.com/hook")
    assert SECRET not in repr(hook) and SECRET not in json.dumps(hook.public())
    bad = [
        {"kind": "teams", "url": "https://x.example"},
        {"kind": "zoom"},
        {"kind": "zoom", "url": "ftp://x.example/a"},
        {"kind": "zoom", "url": "https:///nohost"},
        {"kind": "zoom", "url": "https://x.example/a b"},
        {"kind": "zoom", "url": "https://x.example", "lang": "not a tag"},
        {"kind": "zoom", "url": "https://x.example", "secret": SECRET},
        {"kind": "webhook", "url": "https://x.example"},
        {"kind": "webhook", "url": "https://x.example", "secret": "short"},
        {"kind": "zoom", "url": "https://x.example", "id": "../etc"},
        {"kind": "zoom", "url": "https://x.example", "extra": 1},
    ]
    for data in bad:
        with pytest.raises(InvalidSinkSpec) as info:
            parse_sink_spec(data)
        assert "x.example" not in str(info.value)


def test_start_message_carries_sinks() -> None:
    url = f"https://wmcc.zoom.us/closedcaption?id={TOKEN}"
    start = parse_client_text(
        json.dumps({"type": "start", "sinks": [{"kind": "zoom", "url": url, "lang": "de-DE"}]})
    )
    assert [(s.kind, s.url, s.lang) for s in start.sinks] == [("zoom", url, "de-DE")]  # type: ignore[union-attr]
    assert TOKEN not in repr(start)
    assert parse_client_text(json.dumps(start.to_json())) == start  # type: ignore[union-attr]
    assert parse_client_text('{"type": "start"}').sinks == ()  # type: ignore[union-attr]
    for sinks in (
        '{"kind": "zoom"}',
        '[{"kind": "zoom", "url": "x"}]',
        "[" + ",".join(['{"kind":"zoom","url":"http://a.b"}'] * 2) + "]",
    ):
        with pytest.raises(InvalidMessage):
            parse_client_text(f'{{"type": "start", "sinks": {sinks}}}')


def test_zoom_urls() -> None:
    url = f"https://wmcc.zoom.us/closedcaption?id={TOKEN}&signature=abc"
    assert with_params(url, {"seq": 3, "lang": "en-US"}) == url + "&seq=3&lang=en-US"
    assert (
        with_params("https://h.example/closedcaption", {"seq": 1}) == "https://h.example/closedcaption?seq=1"
    )
    assert seq_url(url) == f"https://wmcc.zoom.us/closedcaption/seq?id={TOKEN}&signature=abc"
    assert seq_url("https://h.example/other?id=1") is None


def test_youtube_timestamp_is_utc_milliseconds() -> None:
    assert timestamp(1_700_000_000.25) == "2023-11-14T22:13:20.250"
    assert timestamp(0.0004) == "1970-01-01T00:00:00.000"
    assert timestamp(59.9996) == "1970-01-01T00:01:00.000"


def test_backoff_grows_to_its_cap() -> None:
    policy = RetryPolicy(initial=0.5, factor=2.0, maximum=4.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


# -- delivery against the fake services ---------------------------------------------------------------------


def test_zoom_gets_every_final_once_in_order_through_400s_drops_and_503s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sent = finals(6)

    async def scenario(service: FakeService, url: str) -> Sink:
        sink = make_sink(ZoomSink, "zoom", url, tmp_path)
        sink.start()
        for final in sent[:3]:
            sink.offer(final)
        await wait_for(lambda: service.rejected >= 3)  # Zoom says 400 until the meeting starts
        assert sink.status()["state"] == "retrying" and sink.acked == 0 and sink.seq == 1
        service.started = True
        for final in sent[3:]:
            sink.offer(final)
        await wait_for(lambda: len(service.accepted) == len(sent))
        assert await sink.drain(TIMEOUT)
        return sink

    with fake_service("zoom", started=False, drop_once={2}, fail_once={4: 503, 5: 429}) as (service, url):
        sink = asyncio.run(scenario(service, url))
    assert service.errors == []
    assert service.accepted == [{"seq": i + 1, "lang": "en-US", "text": f.text} for i, f in enumerate(sent)]
    status = sink.status()
    assert status["acked"] == status["seq"] == status["delivered"] == 6
    assert status["failures"] == service.rejected + 3 and status["backlog"] == 0 and status["dropped"] == 0
    assert status["last_error"] in ("HTTP 429", "HTTP 503") or "Remote" in status["last_error"]
    assert json.loads((tmp_path / "sinks" / f"{sink.spec.id}.json").read_text())["acked"] == 6
    assert TOKEN not in caplog.text and url not in caplog.text and "127.0.0.1" in caplog.text
    assert TOKEN not in json.dumps(status)
    assert all(TOKEN not in p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_zoom_seq_continues_after_a_restart_from_the_stored_seq(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        first = make_sink(ZoomSink, "zoom", url, tmp_path)
        first.start()
        for final in finals(3):
            first.offer(final)
        assert await first.drain(TIMEOUT)
        again = make_sink(ZoomSink, "zoom", url, tmp_path)  # the server restarted
        again.start()
        for final in finals(2, first=3):
            again.offer(final)
        assert await again.drain(TIMEOUT)
        assert again.status()["acked"] == 5

    with fake_service("zoom", seq_endpoint=False) as (service, url):
        asyncio.run(scenario(url))
    assert service.seqs() == [1, 2, 3, 4, 5] and service.errors == []


def test_zoom_seq_continues_from_zooms_seq_endpoint_without_stored_state(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        first = make_sink(ZoomSink, "zoom", url, tmp_path / "before")
        first.start()
        for final in finals(4):
            first.offer(final)
        assert await first.drain(TIMEOUT)
        again = make_sink(ZoomSink, "zoom", url, tmp_path / "elsewhere")  # state lost: asks Zoom
        again.start()
        for final in finals(2, first=4):
            again.offer(final)
        assert await again.drain(TIMEOUT)

    with fake_service("zoom") as (service, url):
        asyncio.run(scenario(url))
    assert service.seqs() == [1, 2, 3, 4, 5, 6] and service.errors == []


def test_youtube_gets_timestamped_captions_with_seq(tmp_path: Path) -> None:
    origin = 1_700_000_000.0
    sent = finals(4)

    async def scenario(url: str) -> None:
        sink = make_sink(YouTubeSink, "youtube", url, tmp_path, clock_origin=origin)
        sink.start()
        for final in sent:
            sink.offer(final)
        assert await sink.drain(TIMEOUT)

    with fake_service("youtube", drop_once={1}, fail_once={3: 500}) as (service, url):
        asyncio.run(scenario(url))
    assert service.errors == []
    assert service.accepted == [
        {"seq": i + 1, "time": timestamp(origin + f.start), "text": f.text} for i, f in enumerate(sent)
    ]
    assert service.accepted[0]["time"] == "2023-11-14T22:13:20.250"


def test_webhook_bodies_are_signed_and_carry_session_and_seq(tmp_path: Path) -> None:
    sent = finals(3)

    async def scenario(url: str) -> None:
        sink = make_sink(WebhookSink, "webhook", url, tmp_path)
        sink.start()
        for final in sent:
            sink.offer(final)
        assert await sink.drain(TIMEOUT)

    with fake_service("webhook", fail_once={2: 502}) as (service, url):
        asyncio.run(scenario(url))
    assert service.errors == [] and service.seqs() == [1, 2, 3]
    for seq, (final, got) in enumerate(zip(sent, service.accepted, strict=True), start=1):
        payload = got["payload"]
        assert payload["session"] == "talk" and payload["seq"] == seq and payload["type"] == "final"
        assert Final.from_json(payload) == final
        assert got["delivery"].endswith(f"/{seq}")


# -- Zoom partial captions ----------------------------------------------------------------------------------


def test_partial_options_are_for_zoom_only_and_bounded() -> None:
    url = f"https://wmcc.zoom.us/closedcaption?id={TOKEN}"
    plain = parse_sink_spec({"kind": "zoom", "url": url})
    assert not plain.partials and "partials" not in plain.public() and "partials" not in plain.to_json()
    live = parse_sink_spec({"kind": "zoom", "url": url, "partials": True, "partial_interval": 1.5})
    assert live.partials and live.partial_interval == 1.5
    assert live.public()["partials"] is True and live.public()["partial_interval"] == 1.5
    assert parse_sink_spec(live.to_json()) == live and live.id == plain.id  # the same destination
    assert parse_sink_spec({"kind": "zoom", "url": url, "partials": True}).partial_interval == 2.0
    for bad in (
        {"partials": "yes"},
        {"partials": True, "partial_interval": 0.5},  # faster than one caption a second
        {"partials": True, "partial_interval": 3600},
        {"partials": True, "partial_interval": True},
        {"partials": True, "partial_interval": "2"},
    ):
        with pytest.raises(InvalidSinkSpec):
            parse_sink_spec({"kind": "zoom", "url": url, **bad})
    for kind in ("youtube", "webhook"):
        with pytest.raises(InvalidSinkSpec, match="only zoom"):
            spec(kind, "https://x.example/closedcaption", partials=True)


@dataclass
class Captions:
    """A scripted live caption stream: what a sink was offered, in order."""

    offered: list[Final | Partial] = field(default_factory=list)

    def text(self, caption: Final | Partial) -> str:
        return caption.text if isinstance(caption, Final) else caption.unstable

    def index_of(self, text: str) -> int:
        """Where the caption a destination shows was offered (texts are unique)."""
        return next(i for i, c in enumerate(self.offered) if self.text(c) == text)


async def speak_captions(sink: Sink, utterances: int, pace: float) -> Captions:
    """Offers what a session emits for `utterances` utterances: a partial every `pace` seconds whose tail
    grows, a final every 6 partials committing the tail, the last final, then the complete partial."""
    captions = Captions()
    index = 0
    for u in range(utterances):
        stable: list[str] = []
        for step in range(1, 19):
            tail = f"u{u} tail {step}"
            partial = Partial(u, 0.0, 1.0, " ".join(stable), tail)
            sink.offer_partial(partial)
            captions.offered.append(partial)
            await asyncio.sleep(pace)
            if step % 6 == 0:
                final = Final(index, u, 0.0, 1.0, f"u{u} final {step // 6}.", ends_utterance=step == 18)
                index += 1
                stable.append(final.text)
                sink.offer(final)
                captions.offered.append(final)
        complete = Partial(u, 0.0, 1.0, " ".join(stable), "", complete=True)
        sink.offer_partial(complete)
        captions.offered.append(complete)
    return captions


def test_zoom_partials_are_rate_limited_and_never_delay_or_outlive_finals() -> None:
    interval = 1.0

    async def scenario(url: str) -> tuple[Sink, Captions]:
        sink = ZoomSink(spec("zoom", url, partials=True, partial_interval=interval), "talk", retry=FAST)
        sink.start()
        captions = await speak_captions(sink, utterances=2, pace=0.1)
        assert await sink.drain(TIMEOUT)
        return sink, captions

    with fake_service("zoom") as (service, url):
        sink, captions = asyncio.run(scenario(url))
    assert service.errors == []
    accepted = [a["text"] for a in service.accepted]
    sent_finals = [c.text for c in captions.offered if isinstance(c, Final)]
    shown_finals = [t for t in accepted if " final " in t]
    shown_partials = [(t, at) for t, at in zip(accepted, service.arrived, strict=True) if " tail " in t]
    # Every final exactly once, in order; one seq per caption, partials included, without gaps.
    assert shown_finals == sent_finals
    assert service.seqs() == list(range(1, len(accepted) + 1))
    assert sink.status()["delivered"] == len(sent_finals)
    # Partials: some shown, most dropped as stale, never two within the interval.
    assert 3 <= len(shown_partials) == sink.status()["partials_delivered"] < 18
    gaps = [b - a for (_, a), (_, b) in zip(shown_partials, shown_partials[1:], strict=False)]
    assert min(gaps) >= interval - 0.05, gaps
    # Nothing is shown out of the order it was offered in: a partial never follows a final offered after
    # it, so none follows the last final of its utterance.
    order = [captions.index_of(t) for t in accepted]
    assert order == sorted(order)
    for u in range(2):
        last_final = max(i for i, t in enumerate(accepted) if t.startswith(f"u{u} final"))
        assert not any(t.startswith(f"u{u} tail") for t in accepted[last_final:])


def test_a_failed_partial_keeps_its_seq_and_the_final_after_it_takes_the_next() -> None:
    answers = iter([503, 200, 200])

    async def scenario() -> list[tuple[str, str]]:
        first_attempt = asyncio.Event()
        release = asyncio.Event()

        async def handler(request: HttpRequest) -> HttpResponse:
            if request.method == "GET":
                return HttpResponse(404)
            if not first_attempt.is_set():
                first_attempt.set()
                await release.wait()
            return HttpResponse(next(answers))

        transport = MockTransport(handler)
        zoom = spec("zoom", "https://z.example/closedcaption", partials=True, partial_interval=1.0)

        async def no_wait(seconds: float) -> None:
            pass

        sink = ZoomSink(zoom, "talk", transport=transport, sleep=no_wait)
        sink.start()
        sink.offer_partial(Partial(0, 0.0, 1.0, "", "Ask not"))
        await asyncio.wait_for(first_attempt.wait(), TIMEOUT)
        sink.offer_partial(Partial(0, 0.0, 1.5, "", "Ask not what"))  # replaces nothing in flight
        sink.offer(Final(0, 0, 0.0, 1.5, "Ask not what,"))  # drops the waiting partial
        release.set()  # the partial in flight fails with 503: retried as it was
        assert await sink.drain(TIMEOUT)
        posts = [r for r in transport.requests if r.method == "POST"]
        return [(parse_qs(urlsplit(r.url).query)["seq"][0], r.body.decode()) for r in posts]

    posts = asyncio.run(scenario())
    assert posts == [("1", "Ask not"), ("1", "Ask not"), ("2", "Ask not what,")]


# -- never blocking, bounded ------------------------------------------------------------------------------


def test_a_hanging_sink_never_delays_publishing_and_its_queue_is_bounded(tmp_path: Path) -> None:
    capacity = 5
    sent = finals(40)

    async def scenario(service: FakeService, url: str) -> tuple[Room, SinkHub, list[float]]:
        hub = SinkHub(retry=FAST, capacity=capacity, drain_timeout=0.2)
        journal = JournalStore(tmp_path).journal("talk")
        room = Room("talk", journal, None, ())
        room.sink_hub = hub
        await room.open_journal("Talk", None)
        await hub.session_started("talk", journal.directory, time.time(), [spec("zoom", url)])
        service.gate.clear()  # from now on the fake Zoom accepts connections and never answers
        waits = []
        for final in sent:
            began = time.perf_counter()
            await asyncio.wait_for(room.publish([final]), 2.0)
            waits.append(time.perf_counter() - began)
            await asyncio.sleep(0)
        await wait_for(lambda: service.attempts == 0 and hub.status("talk")[0]["state"] == "delivering")
        status = hub.status("talk")[0]
        assert status["backlog"] == capacity + 1  # the queue plus the one in flight
        assert status["dropped"] == len(sent) - capacity - 1
        metrics = {name: samples for name, _, _, samples in hub.metric_families()}
        assert metrics["streamer_sink_dropped_total"] == [
            ({"session": "talk", "kind": "zoom"}, len(sent) - 6)
        ]
        assert TOKEN not in json.dumps(room.info())
        await room.release(100.0)  # session over: the sink drains for 0.2 s, then gives up
        await wait_for(lambda: not hub.sessions)
        assert service.accepted == []
        service.gate.set()  # let the abandoned request's worker thread finish
        return room, hub, waits

    with fake_service("zoom") as (service, url):
        room, hub, waits = asyncio.run(scenario(service, url))
    assert room.finals == sent and max(waits) < 0.5  # journaled and broadcast regardless


def test_overflow_drops_the_oldest_finals_and_counts_them() -> None:
    async def scenario() -> tuple[Sink, MockTransport]:
        transport = MockTransport(lambda request: HttpResponse(200))
        sink = ZoomSink(
            spec("zoom", f"https://zoom.example/closedcaption?id={TOKEN}"),
            "talk",
            transport=transport,
            capacity=3,
        )
        for final in finals(10):  # before the loop runs: only the newest 3 stay
            sink.offer(final)
        assert sink.backlog == 3 and sink.dropped == 7
        sink.start()
        assert await sink.drain(5.0)
        return sink, transport

    sink, transport = asyncio.run(scenario())
    assert [r.body.decode() for r in transport.requests if r.method == "POST"] == [
        f.text for f in finals(10)[7:]
    ]
    assert [parse_qs(urlsplit(r.url).query)["seq"] for r in transport.requests if r.method == "POST"] == [
        ["1"],
        ["2"],
        ["3"],
    ]
    assert sink.status()["dropped"] == 7


def test_retries_reuse_the_seq_and_back_off() -> None:
    delays: list[float] = []
    answers = iter([500, 500, 500, 200, 200])

    def handler(request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            return HttpResponse(404)
        return HttpResponse(next(answers))

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def scenario() -> MockTransport:
        transport = MockTransport(handler)
        retry = RetryPolicy(initial=1.0, factor=2.0, maximum=3.0)
        sink = ZoomSink(
            spec("zoom", "https://z.example/closedcaption"),
            "talk",
            transport=transport,
            retry=retry,
            sleep=fake_sleep,
        )
        sink.start()
        for final in finals(2):
            sink.offer(final)
        assert await sink.drain(5.0)
        return transport

    transport = asyncio.run(scenario())
    posts = [parse_qs(urlsplit(r.url).query)["seq"][0] for r in transport.requests if r.method == "POST"]
    assert posts == ["1", "1", "1", "1", "2"] and delays == [1.0, 2.0, 3.0]


def test_removing_a_sink_stops_its_retries_and_a_resumed_session_keeps_draining_sinks() -> None:
    never = asyncio.Event

    async def scenario() -> None:
        gate = never()

        async def hang(request: HttpRequest) -> HttpResponse:
            await gate.wait()
            return HttpResponse(200)

        hub = SinkHub(transport=MockTransport(hang), drain_timeout=5.0)
        zoom = spec("zoom", "https://z.example/closedcaption")
        hook = spec("webhook", "https://h.example/hook")
        await hub.session_started("s", None, 0.0, [zoom, hook])
        hub.publish("s", finals(1)[0])
        await asyncio.sleep(0.01)
        removed = await hub.remove("s", hook.id)
        assert removed["state"] == "stopped" and [s["id"] for s in hub.status("s")] == [zoom.id]
        hub.session_ended("s")  # draining (the request hangs) ...
        await asyncio.sleep(0.01)
        assert hub.status("s")[0]["state"] == "draining"
        sink = hub.sessions["s"].sinks[zoom.id]
        await hub.session_started("s", None, 0.0, [zoom])  # ... when the speaker comes back
        assert hub.sessions["s"].sinks[zoom.id] is sink and sink.running
        assert sink.status()["state"] == "starting"  # (still asking Zoom for its last seq)
        gate.set()
        hub.session_ended("s")
        await wait_for(lambda: not hub.sessions)
        assert sink.acked == 1 and sink.status()["state"] == "stopped"

    asyncio.run(scenario())


# -- the server: start message, HTTP API, metrics ---------------------------------------------------------


class ScriptedDetector:
    def stream(self) -> RmsVad:
        return RmsVad()


@contextlib.asynccontextmanager
async def scripted_server(
    tmp_path: Path, script: Script, **settings: Any
) -> AsyncIterator[tuple[StreamerServer, str]]:
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path, **settings)
    server = StreamerServer(config, ScriptedTranscriber(script), ScriptedDetector())  # type: ignore[arg-type]
    port = await server.start()
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        await server.shutdown()


async def http(
    address: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    def call() -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"http://{address}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read().decode(), exc.code
        return status, json.loads(raw) if raw.startswith(("{", "[")) else raw

    return await asyncio.to_thread(call)


async def speak(
    address: str,
    samples: np.ndarray,
    start: dict[str, Any],
    encoding: str = "float32",
    token: str | None = None,
    pace: float = 0.0,
) -> list[dict[str, Any]]:
    """Streams `samples` as a speaker and returns what the server sent: as fast as the server reads, or
    with `pace`, that many wall seconds per second of audio."""
    messages: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with connect(f"ws://{address}/ws/speak", additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "start", "encoding": encoding, **start}))
        messages.append(json.loads(await ws.recv()))
        assert messages[0]["type"] == "ready", messages[0]

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    messages.append(json.loads(raw))

        reader = asyncio.create_task(read())
        step = 1600
        for i in range(0, len(samples), step):
            chunk = samples[i : i + step]
            await ws.send(chunk.astype("<f4").tobytes() if encoding == "float32" else chunk.tobytes())
            if pace:
                await asyncio.sleep(pace * len(chunk) / 16000)
        await ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(reader, TIMEOUT)
    return messages


def test_a_session_forwards_exactly_its_finals_to_zoom_with_the_scripted_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    script = Script(regions=((0.5, 4.0), (5.0, 9.0)), total=10.0)

    async def scenario(service: FakeService, url: str) -> tuple[list[Final], str, str]:
        async with scripted_server(tmp_path, script) as (_, address):
            sinks = [{"kind": "zoom", "url": url}]
            messages = await speak(address, script.audio(), {"session": "talk", "sinks": sinks})
            sent = [Final.from_json(m) for m in messages if m["type"] == "final"]
            await wait_for(lambda: len(service.accepted) >= len(sent))
            _, document = await http(address, "GET", "/sessions/talk/transcript.json")
            _, info = await http(address, "GET", "/sessions/talk")
            _, metrics = await http(address, "GET", "/metrics")
            journaled = [Final.from_json(f) for f in document["finals"]]
            assert journaled == sent and sent
            return journaled, json.dumps(info), metrics

    with fake_service("zoom") as (service, url):
        journaled, info, metrics = asyncio.run(scenario(service, url))
    assert service.errors == []
    assert service.accepted == [
        {"seq": i + 1, "lang": "en-US", "text": f.text} for i, f in enumerate(journaled)
    ]
    assert TOKEN not in info and TOKEN not in metrics and TOKEN not in caplog.text
    assert "streamer_sink_delivered_total" in metrics


def shown_in_order(shown: list[str], events: list[tuple[str, str]]) -> bool:
    """Whether `shown` is the texts of `events` ((kind, text) in the order the session emitted them) with
    every final and some of the partials, in that order."""

    @functools.cache
    def fits(e: int, s: int) -> bool:
        if e == len(events):
            return s == len(shown)
        kind, text = events[e]
        matched = s < len(shown) and shown[s] == text and fits(e + 1, s + 1)
        return matched or (kind == "partial" and fits(e + 1, s))

    return fits(0, 0)


def test_a_session_forwards_its_live_partials_to_zoom_between_its_finals(tmp_path: Path) -> None:
    script = Script(regions=((0.5, 4.0), (5.0, 9.0)), total=10.0)

    async def scenario(service: FakeService, url: str) -> list[dict[str, Any]]:
        async with scripted_server(tmp_path, script) as (_, address):
            sinks = [{"kind": "zoom", "url": url, "partials": True, "partial_interval": 1}]
            start = {"session": "talk", "sinks": sinks}
            messages = await speak(address, script.audio(), start, pace=0.4)  # 4 s: 4 partials at most
            last = [m["text"] for m in messages if m["type"] == "final"][-1]
            await wait_for(lambda: bool(service.accepted) and service.accepted[-1]["text"] == last)
            return messages

    with fake_service("zoom") as (service, url):
        messages = asyncio.run(scenario(service, url))
    assert service.errors == [] and service.seqs() == list(range(1, len(service.accepted) + 1))
    events = [
        ("final", m["text"]) if m["type"] == "final" else ("partial", m["unstable"])
        for m in messages
        if m["type"] == "final" or (m["type"] == "partial" and m["unstable"])
    ]
    shown = [a["text"] for a in service.accepted]
    # Every final once, in order; between them some of the live tails, each before the finals that came
    # after it (so never after the last final of its utterance), nothing else.
    assert shown_in_order(shown, events), (shown, events)
    assert len(shown) > sum(kind == "final" for kind, _ in events)  # partials were shown


def test_sinks_http_api_adds_lists_and_removes_with_masked_urls(tmp_path: Path) -> None:
    script = Script(regions=((0.5, 2.5),), total=30.0)
    speaker_token, viewer_token = "speaker-token-1", "viewer-token-1"

    async def scenario(service: FakeService, url: str) -> None:
        async with scripted_server(
            tmp_path, script, speaker_token=speaker_token, viewer_token=viewer_token
        ) as (
            _,
            address,
        ):
            ready = asyncio.Event()
            stop = asyncio.Event()

            async def speaker() -> None:
                headers = {"Authorization": f"Bearer {speaker_token}"}
                async with connect(f"ws://{address}/ws/speak", additional_headers=headers) as ws:
                    await ws.send(json.dumps({"type": "start", "session": "live", "encoding": "float32"}))
                    assert json.loads(await ws.recv())["type"] == "ready"
                    ready.set()
                    await stop.wait()
                    await ws.send(json.dumps({"type": "end"}))
                    with contextlib.suppress(ConnectionClosed):
                        async for _ in ws:
                            pass

            task = asyncio.create_task(speaker())
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            hook = {"kind": "webhook", "url": url, "secret": SECRET, "id": "crm"}
            assert (await http(address, "POST", "/sessions/live/sinks", hook))[0] == 401
            assert (await http(address, "POST", "/sessions/live/sinks", hook, viewer_token))[0] == 403
            status, added = await http(address, "POST", "/sessions/live/sinks", hook, speaker_token)
            assert status == 201 and added[0]["id"] == "crm" and added[0]["target"].endswith("/…")
            bad = {"kind": "webhook", "url": url}
            assert (await http(address, "POST", "/sessions/live/sinks", bad, speaker_token))[0] == 400
            assert (await http(address, "POST", "/sessions/gone/sinks", hook, speaker_token))[0] == 404
            status, listed = await http(address, "GET", "/sessions/live/sinks", token=speaker_token)
            assert status == 200 and [s["id"] for s in listed] == ["crm"]
            status, info = await http(address, "GET", "/sessions/live", token=viewer_token)
            assert [s["id"] for s in info["sinks"]] == ["crm"]
            for body in (listed, info):
                assert TOKEN not in json.dumps(body) and SECRET not in json.dumps(body)
            status, metrics = await http(address, "GET", "/metrics")
            assert 'streamer_sinks{kind="webhook",session="live"} 1' in metrics and TOKEN not in metrics
            status, removed = await http(address, "DELETE", "/sessions/live/sinks/crm", token=speaker_token)
            assert status == 200 and removed["state"] == "stopped"
            assert (await http(address, "DELETE", "/sessions/live/sinks/crm", token=speaker_token))[0] == 404
            stop.set()
            await asyncio.wait_for(task, TIMEOUT)
            status, _ = await http(address, "POST", "/sessions/live/sinks", hook, speaker_token)
            assert status == 409  # the session has ended

    with fake_service("webhook") as (service, url):
        asyncio.run(scenario(service, url))


# -- end to end with the real model (run last; loads Whisper) ---------------------------------------------


@pytest.mark.slow
def test_real_speech_reaches_fake_zoom_exactly_once_in_order(tmp_path: Path) -> None:
    flac = EVALDATA / "jfk_inaugural_excerpt.flac"
    if not flac.exists():
        pytest.skip(f"evaluation data not found at {flac}")
    from streamer.audiofile import read_audio
    from streamer.core.audio import to_pcm16

    pcm = np.frombuffer(to_pcm16(read_audio(flac)), dtype="<i2")

    async def scenario(service: FakeService, url: str) -> list[Final]:
        config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path)
        server = StreamerServer(config)  # the real Whisper model and Silero VAD
        port = await server.start()
        address = f"127.0.0.1:{port}"
        try:
            sinks = [{"kind": "zoom", "url": url}]
            messages = await speak(address, pcm, {"session": "jfk", "sinks": sinks}, encoding="pcm16")
            sent = [Final.from_json(m) for m in messages if m["type"] == "final"]
            await wait_for(lambda: len(service.accepted) >= len(sent))
            _, document = await http(address, "GET", "/sessions/jfk/transcript.json")
            journaled = [Final.from_json(f) for f in document["finals"]]
            assert journaled == sent and sent
            return journaled
        finally:
            await server.shutdown()

    with fake_service("zoom", started=False) as (service, url):
        threading.Timer(1.0, lambda: setattr(service, "started", True)).start()  # the meeting starts late
        journaled = asyncio.run(scenario(service, url))
    assert service.errors == []
    assert service.accepted == [
        {"seq": i + 1, "lang": "en-US", "text": f.text} for i, f in enumerate(journaled)
    ]
