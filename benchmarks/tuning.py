"""Accuracy of commit-policy and cadence variants: which knob moves streaming WER, and which way.

    python -m benchmarks.tuning [--files ID_OR_PATH ...] [--variants NAME ...] [--model NAME] [--out FILE]

Each variant is the default `StreamConfig` with a few fields changed. Every file is streamed through the same
synchronous runner the command line uses, as fast as the machine allows: the decode schedule follows the audio
clock only (as if decodes took no time), so the transcripts are deterministic and differences between rows
come from the configuration alone. Latency is not measured here (`benchmarks.streaming` does that); the
decode count stands for the cost. The offline row is the floor: the same model on the whole file at once.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from benchmarks.report import default_output, markdown_path
from benchmarks.scoring import Score, pooled, score
from benchmarks.streaming import (
    DEFAULT_EVALDATA,
    DEFAULT_FILES,
    load_engines,
    load_items,
    offline_text,
)
from streamer.audiofile import read_audio
from streamer.config import DecodeConfig, StreamConfig, VadConfig
from streamer.runner import run_stream

CHUNK_SAMPLES = 1600
"""100 ms of 16 kHz audio per chunk, as a live client sends it."""

_DEFAULT = StreamConfig()
VARIANTS: dict[str, StreamConfig] = {
    "default": _DEFAULT,
    "interval-0.5": replace(_DEFAULT, decode=DecodeConfig(interval=0.5)),
    "agreement-3": replace(_DEFAULT, decode=DecodeConfig(agreement=3)),
    "confident-0.9": replace(_DEFAULT, decode=DecodeConfig(confident_commit=0.9)),
    "confident-0.8": replace(_DEFAULT, decode=DecodeConfig(confident_commit=0.8)),
    "prompt-600": replace(_DEFAULT, decode=DecodeConfig(prompt_chars=600)),
    "final-beam-5": replace(_DEFAULT, decode=DecodeConfig(beam_size=5)),
    "pad-0.4": replace(_DEFAULT, vad=VadConfig(speech_pad=0.4)),
    "window-8": replace(_DEFAULT, decode=DecodeConfig(trim_after=8.0, max_buffer=14.0)),
    "window-18": replace(_DEFAULT, decode=DecodeConfig(trim_after=18.0, max_buffer=26.0)),
    "min-window-1.5": replace(_DEFAULT, decode=DecodeConfig(min_window=1.5)),
    "pause-wait-0": replace(_DEFAULT, decode=DecodeConfig(pause_wait=0.0)),
    "pause-wait-0.6": replace(_DEFAULT, decode=DecodeConfig(pause_wait=0.6)),
    "pause-wait-1.0": replace(_DEFAULT, decode=DecodeConfig(pause_wait=1.0)),
    "trim-overlap-0": replace(_DEFAULT, decode=DecodeConfig(trim_overlap=0.0)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", nargs="*", default=list(DEFAULT_FILES))
    parser.add_argument("--evaldata", type=Path, default=DEFAULT_EVALDATA)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    transcriber, detector = load_engines(args.model)
    items = load_items(args.evaldata, args.files)
    audios = {item.id: read_audio(item.audio) for item in items}

    rows: list[tuple[str, list[Score], int]] = []
    offline = [score(item.reference, offline_text(transcriber, audios[item.id])) for item in items]
    rows.append(("offline (whole file, the floor)", offline, 0))
    for name in args.variants:
        scores, decodes = [], 0
        for item in items:
            audio = audios[item.id]
            chunks = [audio[i : i + CHUNK_SAMPLES] for i in range(0, len(audio), CHUNK_SAMPLES)]
            stats = run_stream(chunks, transcriber, detector, VARIANTS[name])
            scores.append(score(item.reference, " ".join(f.text for f in stats.finals)))
            decodes += stats.decodes
        rows.append((name, scores, decodes))
        print(f"done {name}: " + " | ".join(f"{100 * s.wer:.2f}" for s in scores), flush=True)

    short = [item.id.split("_")[0] for item in items]
    lines = [
        f"| variant | {' | '.join(f'{s} WER %' for s in short)} | all WER % (errors) | / offline | decodes |",
        "|---|" + "---|" * (len(short) + 3),
    ]
    floor = pooled(offline)
    for name, scores, decodes in rows:
        total = pooled(scores)
        cells = " | ".join(f"{100 * s.wer:.2f}" for s in scores)
        ratio = f"{total.wer / floor.wer:.2f}" if floor.errors else "-"
        lines.append(
            f"| {name} | {cells} | {100 * total.wer:.2f} ({total.errors}) | {ratio} | {decodes or '-'} |"
        )
    table = "\n".join(lines)
    print(table)
    out = markdown_path(args.out or default_output("tuning"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Streaming WER by configuration ({args.model})\n\n{table}\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
