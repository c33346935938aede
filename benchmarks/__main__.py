"""Run every benchmark in one go and gather the tables into `benchmarks/results/<date>-<machine>-all.md`.

    python -m benchmarks [--quick] [--no-peer] [--files ID ...] [--evaldata DIR]

Each benchmark runs in its own process, one after another (they measure time: run on a quiet machine):
the single-stream streaming/offline comparison, WhisperLive on the same file (installs it in its own
virtual environment on first use; `--no-peer` skips it), concurrency (batching off and on, one and two model
workers) and viewer fan-out; then the charts. `--quick` shortens everything to a few minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
from pathlib import Path

from benchmarks.report import RESULTS


def _run(name: str, args: list[str]) -> bool:
    print(f"== {name}: python -m {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", *args], check=False)
    if done.returncode != 0:
        print(f"== {name} failed with exit status {done.returncode}", flush=True)
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short settings (minutes, not an hour)")
    parser.add_argument("--no-peer", action="store_true", help="skip WhisperLive")
    parser.add_argument("--files", nargs="*", default=None, help="evaldata ids of long-form files")
    parser.add_argument("--evaldata", default=None)
    args = parser.parse_args(argv)

    stem = RESULTS / f"{dt.date.today()}-{platform.machine()}"
    data = ["--evaldata", args.evaldata] if args.evaldata else []
    files = ["--files", *args.files] if args.files else []
    first_file = args.files[0] if args.files else "lf03_ljspeech_lj001_0001-0032"
    seconds = ["--seconds", "60"] if args.quick else []
    steps: list[tuple[str, list[str], Path]] = [
        (
            "streaming",
            ["benchmarks.streaming", *files, *data, "--out", f"{stem}-streaming.md"],
            Path(f"{stem}-streaming.md"),
        )
    ]
    if not args.no_peer:
        peer_json = Path(f"{stem}-whisperlive.json")
        steps.append(
            (
                "whisperlive",
                ["benchmarks.peer.whisperlive", "--file", first_file, "--concurrency", "1,2", *seconds]
                + ["--json", str(peer_json)],
                peer_json,
            )
        )
    levels = ["--levels", "1,2,3,4,5,6"]
    for workers in ("1", "2"):
        batches = "1,4" if workers == "1" else "1"
        out = Path(f"{stem}-concurrency-workers{workers}.json")
        steps.append(
            (
                f"concurrency, {workers} worker(s)",
                ["benchmarks.concurrency", *files, *data, *(seconds or ["--seconds", "120"]), *levels]
                + ["--max-batch", batches, "--workers", workers, "--bound-delay", "3.5", "--json", str(out)],
                out.with_suffix(".md"),
            )
        )
    fan = Path(f"{stem}-fanout.json")
    steps.append(
        (
            "fan-out",
            ["benchmarks.fanout", *data, "--seconds", "40", "--json", str(fan)],
            fan.with_suffix(".md"),
        )
    )

    sections = [f"# Streamer benchmarks, {dt.date.today()} on {platform.node() or 'this machine'}", ""]
    for name, command, output in steps:
        ok = _run(name, command)
        if output.suffix == ".md" and output.exists():
            sections += [output.read_text(encoding="utf-8").replace("\n# ", "\n## "), ""]
        elif ok:
            sections += [f"## {name}", "", f"Raw results: `{output.name}`.", ""]
        else:
            sections += [f"## {name}", "", "Failed: see the console output of this run.", ""]
        if name.startswith("concurrency") and output.with_suffix(".json").exists():
            _run("plots", ["benchmarks.plots", "concurrency", str(output.with_suffix(".json"))])
        if name == "fan-out" and fan.exists():
            _run("plots", ["benchmarks.plots", "fanout", str(fan)])
    summary = Path(f"{stem}-all.md")
    summary.write_text("\n".join(sections), encoding="utf-8")
    print(f"wrote {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
