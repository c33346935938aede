"""How many real-time speakers one server sustains with bounded lag: batching on/off, model replicas.

    python -m benchmarks.concurrency [--files ID_OR_PATH ...] [--seconds S] [--levels 1,2,3,4,6,8]
        [--max-batch 1,4] [--workers 1,2] [--cpu-threads N] [--bound-lag 3] [--bound-delay 2.5] [--json OUT]

For each configuration (max_batch x workers; the CPU threads are split between the workers) and each level
N, a fresh server runs in a subprocess on 127.0.0.1 (fresh data dir, admission control off: see
`serve_child`), and N speakers stream long-form files at real-time pace at once (PCM16 frames of 100 ms,
each sent when it would have been captured: frame k, covering audio [0.1 k, 0.1 (k+1)), leaves at
``origin + 0.1 (k+1)``; stream i starts ``i * stagger`` seconds after stream 0). Per stream:

- end lag: ``ended`` received - ``origin + audio duration`` (the audio clock's end; this is the time from
  the last frame's scheduled send, and equals the time from its actual send whenever the client kept pace);
- final delay: for each final, its receive time - ``origin + final.end`` (the JSON also has the per-word
  delay, receive time - ``origin + word.end``, comparable with `benchmarks.streaming`'s "final" column);
- WER of the finals' text against the reference (cut at an utterance boundary when `--seconds` is given).

Per level: server CPU seconds per audio second (from /proc, the whole server process) and its peak RSS
(VmHWM). A level is sustained when every stream ends within `--bound-lag` seconds, every stream's median
final delay is under `--bound-delay`, and no stream was refused or failed. A configuration stops at its
first level that is not sustained. Prints a Markdown table and writes JSON (and the table as .md) under
`benchmarks/results/`.

`ServerProcess` and `run_speaker` are shared with `benchmarks.fanout`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import json
import math
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import default_output, machine_meta, write_report
from benchmarks.scoring import wer
from benchmarks.streaming import DEFAULT_EVALDATA, DEFAULT_FILES, Item, load_items, percentile

ROOT = Path(__file__).resolve().parent.parent
SERVE_CHILD = "serve-child"
"""First argument that makes this module run a server (in the subprocess) instead of the benchmark."""
ADMISSION_OFF_INTERVAL = 1e9
"""`admission_interval` that makes the projected load ~0, so the load-based refusal never triggers (there
is no CLI flag to turn it off)."""
ADMISSION_OFF_HEADROOM = 4.0
"""The largest headroom `ServerConfig` accepts."""
SERVER_START_TIMEOUT = 180.0
SERVER_STOP_TIMEOUT = 60.0
FRAME_SECONDS = 0.1
SAMPLE_RATE = 16_000
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
WARMUP_SECONDS = 5.0
CUT_PAD = 0.3
"""Seconds of audio kept after the last whole utterance when a file is cut with `--seconds`."""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> int:
    """Raises this process's open-file limit to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the server in a subprocess ---------------------------------------------------------------------------


def serve_child(argv: list[str]) -> int:
    """Runs `streamer serve ARGV` with load-based admission off; prints ``PORT n`` once listening.

    Stops on SIGTERM/SIGINT, or when stdin closes (the benchmark died), with the graceful shutdown.
    """
    import logging

    from streamer.cli import build_parser
    from streamer.server.app import StreamerServer
    from streamer.server.commands import server_config

    raise_fd_limit()
    args = build_parser().parse_args(["serve", *argv])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = dataclasses.replace(
        server_config(args),
        admission_interval=ADMISSION_OFF_INTERVAL,
        admission_headroom=ADMISSION_OFF_HEADROOM,
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def watch_stdin() -> None:
            sys.stdin.read()
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, daemon=True).start()
        server = StreamerServer(config)
        port = await server.start()
        print(f"PORT {port}", flush=True)
        try:
            await stop.wait()
        finally:
            await server.shutdown()

    asyncio.run(run())
    return 0


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {``name`` or ``name{labels}``: value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value)
    return out


class ServerProcess:
    """A `streamer serve` subprocess on 127.0.0.1 with a fresh data dir; CPU and memory read from /proc."""

    def __init__(self, serve_args: list[str], workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        self.args = ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(workdir / "data"), *serve_args]
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> int:
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.concurrency", SERVE_CHILD, *self.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=ROOT,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("PORT "):
                    self.port = int(line.split()[1])
                    return self.port
                if not line:
                    break
        self.stop()
        raise RuntimeError(f"the server did not start; its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process, all threads."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory_mb(self) -> dict[str, float]:
        """``rss`` (now) and ``peak`` (VmHWM, the high-water mark since start), MiB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss" if key == "VmRSS" else "peak"] = int(value.split()[0]) / 1024
        return out

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=10) as response:
            return parse_metrics(response.read().decode())

    def healthz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.http}/healthz", timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- a speaker client that records when everything happened ----------------------------------------------


@dataclass
class StreamRecord:
    """What one speaker sent and received, with `time.monotonic()` stamps (system-wide on Linux)."""

    label: str
    session: str
    audio_seconds: float
    origin: float = math.nan
    """Wall time of audio time 0: frame k is sent at ``origin + 0.1 (k + 1)``."""
    last_sent: float = math.nan
    ended_at: float = math.nan
    messages: list[tuple[float, str]] = field(default_factory=list)
    """(receive time, raw text) of every server message after ``ready``."""
    error: str | None = None


async def _read_messages(ws: Any, record: StreamRecord) -> None:
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            now = time.monotonic()
            text = str(raw)
            record.messages.append((now, text))
            kind = json.loads(text).get("type")
            if kind == "error":
                record.error = text
            elif kind == "ended":
                record.ended_at = now
                return
    if record.error is None:
        record.error = f"connection closed before ended (close code {ws.close_code})"


async def _send_paced(ws: Any, frames: list[bytes], record: StreamRecord, realtime: bool) -> None:
    from websockets.exceptions import ConnectionClosed

    record.origin = time.monotonic()
    for k, frame in enumerate(frames):
        if realtime:
            delay = record.origin + FRAME_SECONDS * (k + 1) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        try:
            await ws.send(frame)
        except ConnectionClosed:
            return
        record.last_sent = time.monotonic()


async def run_speaker(
    url: str,
    samples: np.ndarray,
    session: str,
    *,
    label: str = "",
    start_delay: float = 0.0,
    realtime: bool = True,
    before_audio: Callable[[], Awaitable[None]] | None = None,
    end_timeout: float = 120.0,
) -> StreamRecord:
    """Streams `samples` (16 kHz mono float32) as a speaker and records every message's arrival time.

    `before_audio` is awaited after ``ready`` and before the first frame (the fan-out benchmark connects its
    viewers there). Never raises for a refusal or a failed stream: the record's `error` says what happened.
    """
    from websockets.asyncio.client import connect

    from streamer.client import endpoint
    from streamer.core.audio import AudioFormat, to_pcm16
    from streamer.protocol import StartMessage

    record = StreamRecord(label or session, session, len(samples) / SAMPLE_RATE)
    step = int(FRAME_SECONDS * SAMPLE_RATE)
    pcm = to_pcm16(samples)
    frames = [pcm[2 * i : 2 * (i + step)] for i in range(0, len(samples), step)]
    await asyncio.sleep(start_delay)
    try:
        async with connect(endpoint(url, "/ws/speak"), max_size=MAX_MESSAGE_BYTES, open_timeout=60) as ws:
            start = StartMessage(AudioFormat(), session=session, title=label or session)
            await ws.send(json.dumps(start.to_json()))
            first = json.loads(str(await ws.recv()))
            if first.get("type") != "ready":
                record.error = f"refused: {first.get('code')}: {first.get('message')}"
                return record
            if before_audio is not None:
                await before_audio()
            reader = asyncio.create_task(_read_messages(ws, record))
            sender = asyncio.create_task(_send_paced(ws, frames, record, realtime))
            await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():  # the server ended the stream early (an error)
                sender.cancel()
            else:
                await sender
                await ws.send(json.dumps({"type": "end"}))
                try:
                    await asyncio.wait_for(reader, end_timeout)
                except TimeoutError:
                    record.error = f"no ended within {end_timeout:.0f} s of the end of the audio"
    except OSError as exc:
        record.error = f"connection failed: {exc}"
    except Exception as exc:  # a websockets handshake or protocol failure: record it, keep benchmarking
        record.error = f"{type(exc).__name__}: {exc}"
    return record


# -- audio and references ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    id: str
    samples: np.ndarray
    reference: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _segments(evaldata: Path, item_id: str) -> list[dict[str, str]]:
    with (evaldata / "manifest.tsv").open(encoding="utf-8") as fh:
        row = next((r for r in csv.DictReader(fh, delimiter="\t") if r["id"] == item_id), None)
    if row is None or not row.get("segments_file"):
        return []
    with (evaldata / row["segments_file"]).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def load_clip(evaldata: Path, item: Item, seconds: float | None) -> Clip:
    """The item's audio, cut after the last utterance that ends within `seconds` (its reference likewise)."""
    from streamer.audiofile import read_audio

    samples = read_audio(item.audio)
    if seconds is None or seconds >= len(samples) / SAMPLE_RATE:
        return Clip(item.id, samples, item.reference)
    segments = _segments(evaldata, item.id)
    kept = [s for s in segments if float(s["end_s"]) <= seconds]
    if not kept:
        raise SystemExit(f"{item.id}: no whole utterance within {seconds} s (needs a segments file)")
    following = segments[len(kept)] if len(kept) < len(segments) else None
    cut = float(kept[-1]["end_s"]) + CUT_PAD
    if following is not None:
        cut = min(cut, float(following["start_s"]))
    reference = " ".join((s["text_spoken"] or s["text_original"]).strip() for s in kept)
    return Clip(item.id, samples[: int(cut * SAMPLE_RATE)], reference)


# -- one level ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    lag: float
    delay: float


def summarize_stream(record: StreamRecord, clip: Clip, wer: Callable[[str, str], float]) -> dict[str, Any]:
    audio_end = record.origin + record.audio_seconds
    finals = [(t, m) for t, m in ((t, json.loads(raw)) for t, raw in record.messages) if m["type"] == "final"]
    delays = [t - (record.origin + m["end"]) for t, m in finals]
    word_delays = [t - (record.origin + w["end"]) for t, m in finals for w in m.get("words", ())]
    warnings = [m for _, raw in record.messages if (m := json.loads(raw))["type"] == "warning"]
    text = " ".join(m["text"] for _, m in finals)
    return {
        "label": record.label,
        "file": clip.id,
        "session": record.session,
        "audio_seconds": round(record.audio_seconds, 3),
        "error": record.error,
        "end_lag": round(record.ended_at - audio_end, 3) if not math.isnan(record.ended_at) else None,
        "last_final_lag": round(finals[-1][0] - audio_end, 3) if finals else None,
        "send_slip": round(record.last_sent - audio_end, 3) if not math.isnan(record.last_sent) else None,
        "finals": len(finals),
        "final_delay_p50": round(percentile(delays, 50), 3) if delays else None,
        "final_delay_p95": round(percentile(delays, 95), 3) if delays else None,
        "final_delays": [round(d, 3) for d in delays],
        "word_delay_p50": round(percentile(word_delays, 50), 3) if word_delays else None,
        "word_delay_p95": round(percentile(word_delays, 95), 3) if word_delays else None,
        "lag_warnings": len(warnings),
        "max_warned_lag": max((float(w.get("lag", 0)) for w in warnings), default=0.0),
        "wer": round(wer(clip.reference, text), 4),
        "text": text,
    }


def _delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def judge(streams: list[dict[str, Any]], bounds: Bounds) -> tuple[bool, list[str]]:
    reasons = []
    for s in streams:
        if s["error"]:
            reasons.append(f"{s['label']}: {s['error'][:120]}")
        elif s["end_lag"] is None or s["end_lag"] > bounds.lag:
            reasons.append(f"{s['label']}: end lag {s['end_lag']} s > {bounds.lag} s")
        elif s["final_delay_p50"] is None or s["final_delay_p50"] > bounds.delay:
            reasons.append(f"{s['label']}: median final delay {s['final_delay_p50']} s > {bounds.delay} s")
    return not reasons, reasons


async def _warm_up(url: str, clip: Clip) -> None:
    samples = clip.samples[: int(WARMUP_SECONDS * SAMPLE_RATE)]
    record = await run_speaker(url, samples, "warmup", realtime=False)
    if record.error:
        raise RuntimeError(f"warm-up stream failed: {record.error}")


async def _stream_all(url: str, clips: list[Clip], n: int, stagger: float) -> list[StreamRecord]:
    tasks = []
    for i in range(n):
        clip = clips[i % len(clips)]
        tasks.append(
            run_speaker(
                url,
                clip.samples,
                f"n{n}-s{i}",
                label=f"s{i}:{clip.id[:4]}",
                start_delay=i * stagger,
                end_timeout=max(60.0, clip.seconds / 2),
            )
        )
    return list(await asyncio.gather(*tasks))


def run_level(
    serve_args: list[str], clips: list[Clip], n: int, stagger: float, bounds: Bounds, wer: Any
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="streamer-bench-") as tmp,
        ServerProcess(serve_args, Path(tmp)) as server,
    ):
        asyncio.run(_warm_up(server.url, clips[0]))
        cpu0, metrics0, client0 = server.cpu_seconds(), server.metrics(), time.process_time()
        wall0 = time.monotonic()
        records = asyncio.run(_stream_all(server.url, clips, n, stagger))
        wall = time.monotonic() - wall0
        cpu, metrics1 = server.cpu_seconds() - cpu0, server.metrics()
        client_cpu = time.process_time() - client0
        memory = server.memory_mb()
        server_errors = [line for line in server.log_tail(200).splitlines() if " ERROR " in line]
    streams = [summarize_stream(r, clips[i % len(clips)], wer) for i, r in enumerate(records)]
    ok, reasons = judge(streams, bounds)
    audio = sum(s["audio_seconds"] for s in streams)
    lags = [s["end_lag"] for s in streams if s["end_lag"] is not None]
    delays = [d for s in streams for d in s["final_delays"]]
    requests = _delta(metrics1, metrics0, "streamer_decode_requests_total")
    batches = _delta(metrics1, metrics0, "streamer_decode_batches_total")
    return {
        "n": n,
        "sustained": ok,
        "reasons": reasons,
        "audio_seconds": round(audio, 3),
        "wall_seconds": round(wall, 3),
        "end_lag_p50": round(percentile(lags, 50), 3) if lags else None,
        "end_lag_max": round(max(lags), 3) if len(lags) == n else None,
        "final_delay_p50": round(percentile(delays, 50), 3) if delays else None,
        "final_delay_p95": round(percentile(delays, 95), 3) if delays else None,
        "wer_mean": round(float(np.mean([s["wer"] for s in streams])), 4),
        "server_cpu_seconds": round(cpu, 2),
        "cpu_per_audio_second": round(cpu / audio, 4) if audio else None,
        "cpu_cores_busy": round(cpu / wall, 3),
        "client_cpu_seconds": round(client_cpu, 2),
        "peak_rss_mb": round(memory.get("peak", math.nan), 1),
        "decode_requests": int(requests),
        "decode_batches": int(batches),
        "mean_batch": round(requests / batches, 2) if batches else None,
        "decode_seconds_sum": round(_delta(metrics1, metrics0, "streamer_decode_seconds_sum"), 2),
        "server_errors": server_errors[-5:],
        "streams": streams,
    }


# -- the sweep ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSetup:
    max_batch: int
    workers: int
    cpu_threads: int

    @property
    def label(self) -> str:
        return f"batch {self.max_batch}, {self.workers} worker(s) x {self.cpu_threads} thr"

    def serve_args(self, model: str, max_speakers: int) -> list[str]:
        return [
            "--model", model,
            "--max-batch", str(self.max_batch),
            "--workers", str(self.workers),
            "--cpu-threads", str(self.cpu_threads),
            "--max-speakers", str(max_speakers),
            "--quiet",
        ]  # fmt: skip


def _ints(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    header = (
        "config", "N", "end lag p50 / max s", "final delay p50 / p95 s", "WER mean %",
        "server CPU s/s", "cores busy", "peak RSS MB", "mean batch", "sustained",
    )  # fmt: skip
    lines = [
        f"# Concurrent real-time speakers, {meta['date']} on {meta['host']} ({meta['cpus']} CPUs)",
        "",
        f"Model {meta['model']}; files {', '.join(meta['files'])}; {meta['seconds_label']}; streams "
        f"staggered {meta['stagger']} s; sustained = every stream's end lag <= {meta['bound_lag']} s and "
        f"median final delay <= {meta['bound_delay']} s, nothing refused. {meta['note']}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for config in result["configs"]:
        for lv in config["levels"]:
            lines.append(
                "| "
                + " | ".join(
                    (
                        config["label"],
                        str(lv["n"]),
                        f"{_fmt(lv['end_lag_p50'])} / {_fmt(lv['end_lag_max'])}",
                        f"{_fmt(lv['final_delay_p50'])} / {_fmt(lv['final_delay_p95'])}",
                        _fmt(100 * lv["wer_mean"], 1),
                        _fmt(lv["cpu_per_audio_second"], 3),
                        _fmt(lv["cpu_cores_busy"]),
                        _fmt(lv["peak_rss_mb"], 0),
                        _fmt(lv["mean_batch"]),
                        "yes" if lv["sustained"] else "**no**",
                    )
                )
                + " |"
            )
    lines += ["", "Largest sustained N per config:", ""]
    lines += [f"- {c['label']}: **{c['max_sustained']}**" for c in result["configs"]]
    failures = [(c["label"], lv) for c in result["configs"] for lv in c["levels"] if not lv["sustained"]]
    if failures:
        lines += ["", "Why levels failed (first reasons):", ""]
        lines += [f"- {label}, N={lv['n']}: {'; '.join(lv['reasons'][:3])}" for label, lv in failures]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", nargs="*", default=list(DEFAULT_FILES), help="evaldata ids (long-form)")
    parser.add_argument("--evaldata", type=Path, default=DEFAULT_EVALDATA)
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="cut each file at an utterance end within S s (default: whole files)",
    )
    parser.add_argument("--levels", default="1,2,3,4,6,8", help="numbers of simultaneous speakers")
    parser.add_argument("--max-batch", default="1,4", help="max_batch values (1: batching off)")
    parser.add_argument("--workers", default="1,2", help="model replicas; CPU threads are split between them")
    parser.add_argument(
        "--cpu-threads", type=int, default=len(os.sched_getaffinity(0)), help="model threads in total"
    )
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--stagger", type=float, default=0.25, help="seconds between stream starts")
    parser.add_argument("--bound-lag", type=float, default=3.0, help="end lag bound, seconds")
    parser.add_argument("--bound-delay", type=float, default=2.5, help="median final delay bound, seconds")
    parser.add_argument("--no-stop", action="store_true", help="run every level even after one fails")
    parser.add_argument("--json", type=Path, default=None, help="output (default benchmarks/results/...)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [SERVE_CHILD]:
        return serve_child(argv[1:])
    args = build_parser().parse_args(argv)
    levels = _ints(args.levels)
    setups = [
        ServerSetup(b, w, max(1, args.cpu_threads // w))
        for b in _ints(args.max_batch)
        for w in _ints(args.workers)
    ]
    items = load_items(args.evaldata, args.files)
    clips = [load_clip(args.evaldata, item, args.seconds) for item in items]
    bounds = Bounds(args.bound_lag, args.bound_delay)
    result: dict[str, Any] = {
        "meta": {
            **machine_meta(args.model, argv),
            "files": [c.id for c in clips],
            "clip_seconds": [round(c.seconds, 2) for c in clips],
            "seconds_label": f"cut at <= {args.seconds} s" if args.seconds else "whole files",
            "stagger": args.stagger,
            "bound_lag": bounds.lag,
            "bound_delay": bounds.delay,
            "note": "Load-based admission off (admission_interval=1e9), --max-speakers = max level.",
        },
        "configs": [],
    }
    for setup in setups:
        config: dict[str, Any] = {"label": setup.label, **dataclasses.asdict(setup), "levels": []}
        result["configs"].append(config)
        serve_args = setup.serve_args(args.model, max(levels))
        for n in levels:
            print(f"[{setup.label}] N={n} ...", flush=True)
            level = run_level(serve_args, clips, n, args.stagger, bounds, wer)
            config["levels"].append(level)
            verdict = (
                "sustained" if level["sustained"] else "NOT sustained: " + "; ".join(level["reasons"][:2])
            )
            print(
                f"[{setup.label}] N={n}: end lag max {_fmt(level['end_lag_max'])} s, final delay p50 "
                f"{_fmt(level['final_delay_p50'])} s, WER {100 * level['wer_mean']:.1f} %, {verdict}",
                flush=True,
            )
            if not level["sustained"] and not args.no_stop:
                break
        config["max_sustained"] = max((lv["n"] for lv in config["levels"] if lv["sustained"]), default=0)
    write_report(result, markdown(result), args.json or default_output("concurrency"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
