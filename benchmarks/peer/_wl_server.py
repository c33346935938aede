"""Runs WhisperLive's websocket server. Executed by the peer venv's python, never imported by Streamer.

python _wl_server.py --port PORT --model CT2_DIR [--max-clients N] [--max-connection-time S]
"""

import argparse
import logging
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True, help="a local CTranslate2 Whisper folder")
    parser.add_argument("--max-clients", type=int, default=4)
    parser.add_argument("--max-connection-time", type=int, default=3600)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    from whisper_live.server import TranscriptionServer

    print(f"whisper-live server starting on {args.host}:{args.port}", file=sys.stderr, flush=True)
    TranscriptionServer().run(
        args.host,
        args.port,
        backend="faster_whisper",
        faster_whisper_custom_model_path=args.model,
        single_model=True,
        max_clients=args.max_clients,
        max_connection_time=args.max_connection_time,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
