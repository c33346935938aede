"""The ``serve``, ``stream`` and ``watch`` commands of the ``streamer`` CLI.

`add_commands(subparsers)` registers them and returns their handlers; ``streamer.cli`` wires them in. Heavy
imports (the model, websockets) happen inside the handlers so ``streamer --help`` stays fast.
`python -m streamer.server` runs the same commands standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamer.errors import StreamerError

Handler = Callable[[argparse.Namespace], int]
SPEAKER_TOKEN_ENV = "STREAMER_SPEAKER_TOKEN"
VIEWER_TOKEN_ENV = "STREAMER_VIEWER_TOKEN"
CLIENT_TOKEN_ENV = "STREAMER_TOKEN"


def add_commands(subparsers: Any) -> dict[str, Handler]:
    """Adds ``serve``, ``stream`` and ``watch`` to an argparse subparsers object; returns their handlers."""
    from streamer.cli import _add_model_options
    from streamer.client import DEFAULT_URL
    from streamer.server.settings import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, ServerConfig

    defaults = ServerConfig()
    serve = subparsers.add_parser("serve", help="run the live captioning server (websockets + HTTP)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"journals and session files (default ./{DEFAULT_DATA_DIR})",
    )
    serve.add_argument(
        "--speaker-token",
        default=os.environ.get(SPEAKER_TOKEN_ENV),
        help=f"token speakers must give (env {SPEAKER_TOKEN_ENV})",
    )
    serve.add_argument(
        "--viewer-token",
        default=os.environ.get(VIEWER_TOKEN_ENV),
        help=f"token viewers must give (env {VIEWER_TOKEN_ENV})",
    )
    serve.add_argument(
        "--allow-public-without-auth",
        action="store_true",
        help="listen on a non-loopback host without tokens",
    )
    serve.add_argument(
        "--max-speakers", type=int, default=defaults.max_speakers, help="hard cap on live speakers"
    )
    serve.add_argument(
        "--admission-headroom",
        type=float,
        default=defaults.admission_headroom,
        help="projected model load (1.0 = busy all the time) above which new speakers are refused "
        f"(default {defaults.admission_headroom}; 4 effectively turns the load check off)",
    )
    serve.add_argument(
        "--max-batch",
        type=int,
        default=defaults.max_batch,
        help="decode requests batched per model call (1: off)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="model replicas, each with its own thread (default 1)"
    )
    serve.add_argument(
        "--history", type=int, default=defaults.history_limit, help="finals sent to a joining viewer (0: all)"
    )
    serve.add_argument(
        "--max-connections-per-address",
        type=int,
        default=defaults.max_connections_per_address,
        help="per client IP",
    )
    serve.add_argument("--paragraph-minutes", type=float, default=4.0, help="paragraph marks in exports")
    serve.add_argument("--quiet", action="store_true", help="log warnings only")
    _add_model_options(serve)

    stream = subparsers.add_parser("stream", help="stream an audio file to a server as a speaker")
    stream.add_argument(
        "file",
        metavar="FILE_OR_MIC",
        help="audio file (wav, flac, mp3, ...), or `mic` / `mic:DEVICE` to capture a microphone",
    )
    stream.add_argument(
        "--input-format",
        default=None,
        help="read FILE_OR_MIC as a device of this FFmpeg input format (alsa, avfoundation, dshow, lavfi)",
    )
    stream.add_argument("--url", default=DEFAULT_URL, help=f"server (default {DEFAULT_URL})")
    stream.add_argument(
        "--session", default=None, help="session id to open or resume (default: server picks)"
    )
    stream.add_argument("--title", default=None, help="session title (default: the file name)")
    stream.add_argument("--language", default=None, help="language code for multilingual models")
    stream.add_argument(
        "--fast", action="store_true", help="send as fast as the server accepts, not real time"
    )
    stream.add_argument(
        "--token", default=os.environ.get(CLIENT_TOKEN_ENV), help=f"speaker token (env {CLIENT_TOKEN_ENV})"
    )
    stream.add_argument("--quiet", action="store_true", help="print only the final captions")

    watch = subparsers.add_parser("watch", help="print a session's captions as a viewer")
    watch.add_argument("session", help="session id")
    watch.add_argument("--url", default=DEFAULT_URL, help=f"server (default {DEFAULT_URL})")
    watch.add_argument(
        "--token", default=os.environ.get(CLIENT_TOKEN_ENV), help=f"viewer token (env {CLIENT_TOKEN_ENV})"
    )
    watch.add_argument("--follow", action="store_true", help="keep watching after the speaker's stream ends")
    watch.add_argument("--quiet", action="store_true", help="print only the final captions")
    return dict(HANDLERS)


def server_config(args: argparse.Namespace) -> Any:
    import dataclasses

    from streamer.cli import model_config, stream_config
    from streamer.config import TranscriptConfig
    from streamer.server.settings import ServerConfig

    return ServerConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        model=dataclasses.replace(model_config(args), num_workers=max(1, args.workers)),
        stream=stream_config(args),
        transcript=TranscriptConfig(paragraph_minutes=args.paragraph_minutes),
        speaker_token=args.speaker_token or None,
        viewer_token=args.viewer_token or None,
        allow_public_without_auth=args.allow_public_without_auth,
        max_speakers=args.max_speakers,
        max_batch=args.max_batch,
        admission_headroom=args.admission_headroom,
        history_limit=args.history,
        max_connections_per_address=args.max_connections_per_address,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from streamer.server.app import serve

    config = server_config(args)  # validates: raises ConfigError before anything loads
    if not args.quiet:
        logging.getLogger("streamer").setLevel(
            min(logging.getLogger("streamer").getEffectiveLevel(), logging.INFO)
        )
    asyncio.run(serve(config))
    return 0


def _printer(quiet: bool) -> Callable[[dict[str, Any]], None]:
    from streamer.cli import LiveDisplay
    from streamer.events import Final, Partial

    display = LiveDisplay(sys.stdout, None, quiet)

    def on_message(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "final":
            final = Final.from_json(message)
            display.on_event(final, final.end)
        elif kind == "history":
            for item in message["finals"]:
                final = Final.from_json(item)
                display.on_event(final, final.end)
        elif kind == "partial":
            partial = Partial(
                message["utterance_id"],
                message["start"],
                message["end"],
                message["stable"],
                message["unstable"],
            )
            display.on_event(partial, partial.end)
        elif kind in ("warning", "error") and not quiet:
            display.done()
            print(f"{kind}: {message.get('message')} ({message.get('code')})", file=sys.stderr)
        elif kind == "ready" and not quiet:
            state = "resumed" if message["resumed"] else "opened"
            print(f"session {message['session']} {state} at {message['time']:.2f} s", file=sys.stderr)

    return on_message


def _connect_errors(url: str, run: Callable[[], Any]) -> Any:
    try:
        return run()
    except OSError as exc:
        raise StreamerError(f"cannot reach the server at {url}: {exc}") from exc


def cmd_stream(args: argparse.Namespace) -> int:
    import itertools

    import numpy as np

    from streamer.audiofile import iter_audio, microphone
    from streamer.client import stream_file, stream_live

    options = dict(
        session=args.session,
        title=args.title,
        language=args.language,
        token=args.token,
        on_message=_printer(args.quiet),
    )
    source: str = args.file
    if source == "mic" or source.startswith("mic:") or args.input_format:
        if args.input_format:
            device, input_format = source, args.input_format
        else:
            device, input_format = microphone(source[4:] or None)
        live = iter_audio(device, input_format=input_format)
        # Open the device (and fail clearly) before connecting to the server.
        chunks = itertools.chain([next(live, np.zeros(0, dtype=np.float32))], live)
        options.setdefault("title", "microphone")
        if not args.quiet:
            print(f"capturing {device} ({input_format}); Ctrl-C ends the stream", file=sys.stderr)
        run = lambda: asyncio.run(stream_live(args.url, chunks, **options))  # noqa: E731
    else:
        path = Path(source)
        if not path.exists():
            raise StreamerError(f"no such file: {path}")
        run = lambda: asyncio.run(  # noqa: E731
            stream_file(args.url, path, realtime=not args.fast, **options)
        )
    result = _connect_errors(args.url, run)
    print(f"session {result.session}: {len(result.finals)} finals", file=sys.stderr)
    if result.error is not None:
        return 1
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from streamer.client import watch

    finals = _connect_errors(
        args.url,
        lambda: asyncio.run(
            watch(
                args.url, args.session, token=args.token, on_message=_printer(args.quiet), follow=args.follow
            )
        ),
    )
    print(f"session {args.session}: {len(finals)} finals", file=sys.stderr)
    return 0


HANDLERS: dict[str, Handler] = {"serve": cmd_serve, "stream": cmd_stream, "watch": cmd_watch}


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (``python -m streamer.server``): the `streamer` command line itself."""
    from streamer.cli import main as cli_main

    return cli_main(argv)
