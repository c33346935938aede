"""Viewer fan-out: how late captions reach V websocket viewers of one live speaker.

    python -m benchmarks.fanout [--viewers 10,100,1000] [--file ID] [--seconds 60] [--client-procs 4]
        [--no-compression] [--json OUT]

For each V, a fresh server runs in a subprocess on 127.0.0.1 (`benchmarks.concurrency.ServerProcess`, its
per-address connection limit raised to V + 64). A real speaker opens the session; V viewers connect from
`--client-procs` client processes (their open-file limits raised), each viewer a websockets client on its own
socket; once the server's /healthz counts all V, the speaker streams `--seconds` of the file at real-time
pace and every viewer reads until ``ended``.

What is measured. The protocol carries no server send time, so the reference is the speaker: the server
serializes each message once and queues the same text to the speaker first, then to every viewer, in one
synchronous step. For each message, latency = (viewer receive time) - (speaker receive time of the same
text), both `time.monotonic()` (CLOCK_MONOTONIC, one clock for every process on the machine). It is the
extra delay of the fan-out path (per-viewer queues and writer tasks, per-connection compression, the
sockets, and the client processes' own scheduling) over one speaker socket, and can be slightly negative.
Finals and partials are reported apart (partials may be dropped for slow viewers by design). Also reported:
the viewers' final delay on the audio clock (receive time - (audio origin + final.end)), the finals each
viewer missed, the /metrics counters of dropped messages and slow-viewer disconnects, and server CPU (the V
handshakes included) and peak RSS.
The client processes share the machine with the server: at high V their own receive loops add to the
tail, and their CPU time is reported so this can be judged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from benchmarks.concurrency import (
    ROOT,
    ServerProcess,
    StreamRecord,
    load_clip,
    raise_fd_limit,
    run_speaker,
)
from benchmarks.report import default_output, machine_meta, write_report
from benchmarks.streaming import DEFAULT_EVALDATA, load_items, percentile

VIEWERS_CHILD = "viewers-child"
DEFAULT_FILE = "lf03_ljspeech_lj001_0001-0032"
CONNECT_TIMEOUT = 180.0
"""Seconds for all viewers to be connected before the speaker starts."""
HANDSHAKES_AT_ONCE = 50
"""Concurrent websocket handshakes per client process."""
EXTRA_CONNECTIONS = 64
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
KINDS = {"final": "F", "partial": "P", "speech_started": "S", "speech_ended": "E", "ended": "X"}
"""Message types whose latency is measured, and their one-letter codes in the child's output."""


def message_key(text: str) -> str:
    """Identifies one broadcast message by its exact text (the server sends the same text to everyone)."""
    return f"{zlib.crc32(text.encode()):08x}{len(text):x}"


# -- the viewer client process -----------------------------------------------------------------------------


async def _viewer(url: str, gate: asyncio.Semaphore, compression: str | None, deadline: float) -> dict:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    seen: list[tuple[float, str, str]] = []
    out: dict[str, Any] = {"messages": seen, "close_code": None, "error": None, "ended": False}
    try:
        async with gate:
            ws = await connect(url, max_size=MAX_MESSAGE_BYTES, compression=compression, open_timeout=120)
        async with ws, asyncio.timeout_at(deadline):
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    now = time.monotonic()
                    text = str(raw)
                    kind = KINDS.get(json.loads(text)["type"])
                    if kind is not None:
                        seen.append((round(now, 6), kind, message_key(text)))
                    if kind == "X":
                        out["ended"] = True
                        break
            out["close_code"] = ws.close_code
    except TimeoutError:
        out["error"] = "no ended message before the deadline"
    except Exception as exc:  # a refused or failed connection is a result, not a crash of the benchmark
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def viewers_child(argv: list[str]) -> int:
    """Connects `--count` viewers to `--url`, waits for ``ended`` on each, writes what they saw as JSON."""
    parser = argparse.ArgumentParser(prog=f"benchmarks.fanout {VIEWERS_CHILD}")
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--no-compression", action="store_true")
    args = parser.parse_args(argv)
    raise_fd_limit()

    async def run() -> list[dict]:
        gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
        compression = None if args.no_compression else "deflate"
        deadline = asyncio.get_running_loop().time() + args.timeout  # the loop's clock is time.monotonic
        tasks = [_viewer(args.url, gate, compression, deadline) for _ in range(args.count)]
        return list(await asyncio.gather(*tasks))

    viewers = asyncio.run(run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    args.out.write_text(json.dumps({"cpu_seconds": usage.ru_utime + usage.ru_stime, "viewers": viewers}))
    return 0


# -- one level ---------------------------------------------------------------------------------------------


def _spawn_viewers(url: str, total: int, procs: int, workdir: Path, timeout: float, no_compression: bool):
    children = []
    counts = [total // procs + (i < total % procs) for i in range(procs)]
    for i, count in enumerate(c for c in counts if c):
        out = workdir / f"viewers-{i}.json"
        command = [
            sys.executable, "-m", "benchmarks.fanout", VIEWERS_CHILD,
            "--url", url, "--count", str(count), "--out", str(out), "--timeout", str(timeout),
        ]  # fmt: skip
        if no_compression:
            command.append("--no-compression")
        log = (workdir / f"viewers-{i}.log").open("w")
        children.append((subprocess.Popen(command, cwd=ROOT, stderr=log, stdout=log), out))
    return children


async def _wait_for_viewers(server: ServerProcess, total: int, children: list) -> float:
    started = time.monotonic()
    while time.monotonic() - started < CONNECT_TIMEOUT:
        if (await asyncio.to_thread(server.healthz))["viewers"] >= total:
            return time.monotonic() - started
        if all(proc.poll() is not None for proc, _ in children):
            break
        await asyncio.sleep(0.5)
    connected = (await asyncio.to_thread(server.healthz))["viewers"]
    print(f"  only {connected} of {total} viewers connected; streaming anyway", flush=True)
    return time.monotonic() - started


def analyse(speaker: StreamRecord, viewers: list[dict]) -> dict[str, Any]:
    reference: dict[str, float] = {}
    final_end: dict[str, float] = {}
    for t, raw in speaker.messages:
        key = message_key(raw)
        reference.setdefault(key, t)
        message = json.loads(raw)
        if message["type"] == "final":
            final_end[key] = message["end"]
    finals_sent = len(final_end)
    latency: dict[str, list[float]] = {"F": [], "P": []}
    caption_delay: list[float] = []
    missing_finals = partials = 0
    for viewer in viewers:
        got_finals = 0
        for t, kind, key in viewer["messages"]:
            if key not in reference:
                continue
            if kind in latency:
                latency[kind].append(t - reference[key])
            if kind == "F":
                got_finals += 1
                caption_delay.append(t - (speaker.origin + final_end[key]))
            partials += kind == "P"
        missing_finals += finals_sent - got_finals
    partials_sent = sum(json.loads(raw)["type"] == "partial" for _, raw in speaker.messages)

    def ms(values: list[float], q: float) -> float | None:
        return round(1000 * percentile(values, q), 2) if values else None

    return {
        "finals_sent": finals_sent,
        "partials_sent": partials_sent,
        "final_latency_ms": {q: ms(latency["F"], q) for q in (50, 90, 99)} | {"max": ms(latency["F"], 100)},
        "partial_latency_ms": {q: ms(latency["P"], q) for q in (50, 90, 99)} | {"max": ms(latency["P"], 100)},
        "viewer_final_delay_s": {
            q: round(percentile(caption_delay, q), 3) if caption_delay else None for q in (50, 95)
        },
        "missing_finals": missing_finals,
        "partials_received_ratio": round(partials / (partials_sent * len(viewers)), 4)
        if partials_sent and viewers
        else None,
        "viewers_ended": sum(v["ended"] for v in viewers),
        "viewer_errors": sorted({v["error"] for v in viewers if v["error"]})[:5],
        "close_codes": sorted({v["close_code"] for v in viewers if v["close_code"] not in (None, 1000)}),
        "final_latencies_ms": [round(1000 * x, 2) for x in latency["F"]],
    }


async def _stream(server: ServerProcess, clip: Any, args: argparse.Namespace, v: int, workdir: Path):
    children: list = []
    connect_seconds = math.nan

    async def connect_viewers() -> None:
        nonlocal children, connect_seconds
        url = f"{server.url}/ws/view?session=fanout-{v}"
        timeout = CONNECT_TIMEOUT + clip.seconds + 120
        procs = max(1, min(args.client_procs, v))
        children = _spawn_viewers(url, v, procs, workdir, timeout, args.no_compression)
        connect_seconds = await _wait_for_viewers(server, v, children)

    record = await run_speaker(server.url, clip.samples, f"fanout-{v}", before_audio=connect_viewers)
    return record, children, connect_seconds


def run_level(serve_args: list[str], clip: Any, v: int, args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="streamer-fanout-") as tmp,
        ServerProcess(serve_args, Path(tmp)) as server,
    ):
        cpu0, metrics0 = server.cpu_seconds(), server.metrics()
        speaker, children, connect_seconds = asyncio.run(_stream(server, clip, args, v, Path(tmp)))
        viewers: list[dict] = []
        client_cpu = 0.0
        for proc, out in children:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                data = json.loads(out.read_text())
                viewers += data["viewers"]
                client_cpu += data["cpu_seconds"]
        cpu, metrics = server.cpu_seconds() - cpu0, server.metrics()
        memory = server.memory_mb()
    if speaker.error:
        raise RuntimeError(f"the speaker failed: {speaker.error}")

    def delta(name: str) -> int:
        return int(metrics.get(name, 0) - metrics0.get(name, 0))

    return {
        "viewers": v,
        "connected": len([x for x in viewers if x["error"] is None or x["messages"]]),
        "connect_seconds": round(connect_seconds, 2),
        **analyse(speaker, viewers),
        "messages_dropped": delta("streamer_viewer_messages_dropped_total"),
        "slow_disconnects": delta("streamer_viewers_disconnected_slow_total"),
        "server_cpu_seconds": round(cpu, 2),
        "client_cpu_seconds": round(client_cpu, 2),
        "peak_rss_mb": round(memory.get("peak", math.nan), 1),
    }


# -- the sweep ---------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    header = (
        "viewers", "finals sent", "final latency p50 / p99 / max ms", "partial latency p50 / p99 ms",
        "partials received %", "viewer final delay p50 / p95 s", "finals missed", "dropped msgs",
        "slow disconnects", "server CPU s", "client CPU s", "peak RSS MB",
    )  # fmt: skip
    lines = [
        f"# Viewer fan-out, {meta['date']} on {meta['host']} ({meta['cpus']} CPUs)",
        "",
        f"One real-time speaker ({meta['file']}, {meta['seconds']:.0f} s, model {meta['model']}); viewers "
        f"from {meta['client_procs']} client processes on loopback; compression "
        f"{'off' if meta['no_compression'] else 'permessage-deflate (websockets default)'}. Latency = viewer "
        "receive time - speaker receive time of the same message (see the module docstring).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for lv in result["levels"]:
        f, p, d = lv["final_latency_ms"], lv["partial_latency_ms"], lv["viewer_final_delay_s"]
        ratio = lv["partials_received_ratio"]
        cells = (
            f"{lv['viewers']} ({lv['connected']} connected)",
            str(lv["finals_sent"]),
            f"{_fmt(f[50])} / {_fmt(f[99])} / {_fmt(f['max'])}",
            f"{_fmt(p[50])} / {_fmt(p[99])}",
            _fmt(None if ratio is None else 100 * ratio),
            f"{_fmt(d[50], 2)} / {_fmt(d[95], 2)}",
            str(lv["missing_finals"]),
            str(lv["messages_dropped"]),
            str(lv["slow_disconnects"]),
            _fmt(lv["server_cpu_seconds"]),
            _fmt(lv["client_cpu_seconds"]),
            _fmt(lv["peak_rss_mb"], 0),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", default="10,100,1000", help="numbers of viewers, one level each")
    parser.add_argument("--file", default=DEFAULT_FILE, help="evaldata id the speaker streams")
    parser.add_argument("--evaldata", type=Path, default=DEFAULT_EVALDATA)
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="cut the file at an utterance end within S"
    )
    parser.add_argument("--client-procs", type=int, default=4, help="viewer client processes")
    parser.add_argument("--no-compression", action="store_true", help="viewers refuse permessage-deflate")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--cpu-threads", type=int, default=0, help="model threads (0: library default)")
    parser.add_argument("--json", type=Path, default=None, help="output (default benchmarks/results/...)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [VIEWERS_CHILD]:
        return viewers_child(argv[1:])
    args = build_parser().parse_args(argv)
    raise_fd_limit()
    levels = sorted({int(x) for x in args.viewers.split(",") if x.strip()})
    clip = load_clip(args.evaldata, load_items(args.evaldata, [args.file])[0], args.seconds)
    result: dict[str, Any] = {
        "meta": {
            **machine_meta(args.model, argv),
            "file": clip.id,
            "seconds": round(clip.seconds, 2),
            "client_procs": args.client_procs,
            "no_compression": args.no_compression,
        },
        "levels": [],
    }
    for v in levels:
        serve_args = [
            "--model", args.model, "--cpu-threads", str(args.cpu_threads), "--quiet",
            "--max-connections-per-address", str(v + EXTRA_CONNECTIONS),
        ]  # fmt: skip
        print(f"{v} viewers ...", flush=True)
        level = run_level(serve_args, clip, v, args)
        result["levels"].append(level)
        f = level["final_latency_ms"]
        print(
            f"{v} viewers: final latency p50 {_fmt(f[50])} ms, p99 {_fmt(f[99])} ms; "
            f"{level['missing_finals']} finals missed, {level['slow_disconnects']} slow disconnects",
            flush=True,
        )
    write_report(result, markdown(result), args.json or default_output("fanout"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
