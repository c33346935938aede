"""Accuracy, latency and cost of one live stream against offline transcription of the same file.

    python -m benchmarks.streaming [--files ID_OR_PATH ...] [--evaldata DIR] [--interval S] [--pause-wait S]
                                   [--confident-commit P] [--out FILE]

For each file: the streaming pipeline in a simulated live run (decodes take their real time; see
`live_sim`), and the same model transcribing the whole file at once (the accuracy floor). Prints a Markdown
table and writes it under `benchmarks/results/`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.live_sim import simulate_live
from benchmarks.report import default_output, markdown_path
from benchmarks.scoring import Score, pooled, score
from streamer.audiofile import read_audio
from streamer.config import DecodeConfig, StreamConfig

if TYPE_CHECKING:
    from streamer.engines.silero import SileroVad
    from streamer.engines.whisper import WhisperTranscriber

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVALDATA = ROOT.parent / "shared" / "evaldata"
DEFAULT_FILES = (
    "lf03_ljspeech_lj001_0001-0032",
    "lf02_pm_printing_prisons_lj001_lj002",
    "lf04_multispeaker_turns_assembled",
)


@dataclass(frozen=True)
class Item:
    id: str
    audio: Path
    reference: str


def load_items(evaldata: Path, names: list[str]) -> list[Item]:
    rows = {}
    with (evaldata / "manifest.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            rows[row["id"]] = row
    items = []
    for name in names:
        row = rows[name]
        ref_file = row.get("spoken_reference_file") or row["reference_file"]
        reference = " ".join((evaldata / ref_file).read_text(encoding="utf-8").split())
        items.append(Item(name, evaldata / row["audio_file"], reference))
    return items


def load_engines(model: str) -> tuple[WhisperTranscriber, SileroVad]:
    """The Whisper transcriber for `model` (its default device and compute type) and the Silero VAD."""
    from streamer.config import ModelConfig
    from streamer.engines.silero import SileroVad
    from streamer.engines.whisper import WhisperTranscriber

    return WhisperTranscriber(ModelConfig(name=model)), SileroVad()


def offline_text(transcriber: WhisperTranscriber, audio: np.ndarray) -> str:
    """The floor: the same model on the whole file at once (greedy, temperature 0, no word timestamps)."""
    segments, _ = transcriber.model.transcribe(audio, language="en", beam_size=1, temperature=0.0)
    return " ".join(s.text for s in segments)


def pooled_line(stream: Score, offline: Score) -> str:
    """The WER of several files taken as one, against offline's: errors over all their words."""
    ratio = f"{stream.wer / offline.wer:.2f} x" if offline.errors else "-"
    return (
        f"streaming WER {100 * stream.wer:.2f} % ({stream.errors} errors in {stream.words} words) "
        f"against offline {100 * offline.wer:.2f} % ({offline.errors}), {ratio}"
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", nargs="*", default=list(DEFAULT_FILES))
    parser.add_argument("--evaldata", type=Path, default=DEFAULT_EVALDATA)
    parser.add_argument("--interval", type=float, default=DecodeConfig().interval)
    parser.add_argument("--pause-wait", type=float, default=DecodeConfig().pause_wait)
    parser.add_argument(
        "--confident-commit",
        type=float,
        default=None,
        metavar="P",
        help="commit a word on one hypothesis when its probability is at least P (off by default)",
    )
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    transcriber, detector = load_engines(args.model)
    config = StreamConfig(
        decode=DecodeConfig(
            interval=args.interval, pause_wait=args.pause_wait, confident_commit=args.confident_commit
        )
    )
    rows = []
    raw: dict[str, dict[str, object]] = {}
    all_first: list[float] = []
    all_final: list[float] = []
    stream_scores: list[Score] = []
    offline_scores: list[Score] = []
    for item in load_items(args.evaldata, args.files):
        audio = read_audio(item.audio)
        run = simulate_live(audio, transcriber, detector, config)
        cpu0 = time.process_time()
        offline = offline_text(transcriber, audio)
        offline_cpu = time.process_time() - cpu0
        first, final = run.word_delays()
        all_first += first
        all_final += final
        stream_scores.append(score(item.reference, run.text))
        offline_scores.append(score(item.reference, offline))
        stream_wer, offline_wer = stream_scores[-1].wer, offline_scores[-1].wer
        raw[item.id] = {
            "audio_seconds": run.audio_seconds,
            "stream_wer": stream_wer,
            "offline_wer": offline_wer,
            "first_partial_delays": first,
            "final_delays": final,
            "stream_cpu_seconds": run.cpu_seconds,
            "offline_cpu_seconds": offline_cpu,
            "decode_seconds": run.decode_seconds,
            "final_lag": run.final_lag,
            "flicker": run.flicker(),
            "text": run.text,
        }
        rows.append(
            (
                item.id,
                f"{run.audio_seconds:.0f}",
                f"{100 * stream_wer:.2f}",
                f"{100 * offline_wer:.2f}",
                f"{stream_wer / offline_wer:.2f}" if offline_wer else "-",
                f"{percentile(first, 50):.2f} / {percentile(first, 90):.2f}",
                f"{percentile(final, 50):.2f} / {percentile(final, 90):.2f} / {percentile(final, 95):.2f}",
                f"{np.mean(final):.2f}",
                f"{run.cpu_seconds / run.audio_seconds:.3f}",
                f"{offline_cpu / run.audio_seconds:.3f}",
                f"{run.cpu_seconds / offline_cpu:.1f}",
                f"{len(run.decode_seconds)} ({np.mean(run.decode_seconds):.2f} s)",
                f"{run.flicker():.2f}",
            )
        )
        print(f"done {item.id}: streaming WER {stream_wer:.4f}, offline {offline_wer:.4f}", flush=True)
    header = (
        "file",
        "audio s",
        "stream WER %",
        "offline WER %",
        "ratio",
        "first partial p50/p90 s",
        "final p50/p90/p95 s",
        "final mean s",
        "stream CPU s/s",
        "offline CPU s/s",
        "CPU ratio",
        "decodes (mean s)",
        "flicker / word",
    )
    lines = [
        f"# Streaming vs offline, {dt.date.today()} on {platform.node() or 'this machine'}",
        "",
        f"Model {transcriber.name}, {transcriber.device}/{transcriber.compute_type}; partial decode interval "
        f"{args.interval} s (waiting up to {args.pause_wait} s for a pause), confident commit "
        f"{args.confident_commit}; simulated live run (each decode takes its measured time). Latencies are "
        "from each word's end (its own timestamp) to its first appearance in a partial and to its final.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"All files: {pooled_line(pooled(stream_scores), pooled(offline_scores))}; "
        f"first partial p50 {percentile(all_first, 50):.2f} s; "
        f"final p50 {percentile(all_final, 50):.2f} s, p95 {percentile(all_final, 95):.2f} s, "
        f"mean {np.mean(all_final):.2f} s.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    out = markdown_path(args.out or default_output("streaming"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "interval": args.interval,
                "pause_wait": args.pause_wait,
                "confident_commit": args.confident_commit,
                "files": raw,
            }
        ),
        encoding="utf-8",
    )
    print(f"wrote {out} and its .json")
    try:
        from benchmarks.plots import latency_cdf, wer_bars
    except ImportError:  # matplotlib is in the `bench` extra
        return 0
    latency_cdf(
        {"first partial": all_first, "final": all_final},
        out.with_name(out.stem + "-latency.png"),
        xlabel="seconds after the word was spoken",
        title="Streamer word latency (simulated live, one stream)",
    )
    bars = {}
    for name, numbers in raw.items():
        short = name.split("_")[0]
        bars[f"{short} streaming"] = float(numbers["stream_wer"])  # type: ignore[arg-type]
        bars[f"{short} offline"] = float(numbers["offline_wer"])  # type: ignore[arg-type]
    wer_bars(bars, out.with_name(out.stem + "-wer.png"), title="WER: streaming vs offline, same model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
