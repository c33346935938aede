"""Stream an audio file to a Streamer server and print the captions: the smallest use of `streamer.client`.

python clients/python/stream_file.py FILE [ws://127.0.0.1:8765]
"""

import asyncio
import sys

from streamer.client import stream_file


def show(message: dict) -> None:
    if message["type"] == "final":
        print(f"[{message['start']:7.2f} -> {message['end']:7.2f}] {message['text']}")


def main() -> None:
    path = sys.argv[1]
    url = sys.argv[2] if len(sys.argv) > 2 else "ws://127.0.0.1:8765"
    result = asyncio.run(stream_file(url, path, realtime=True, on_message=show))
    print(
        f"session {result.session}: {len(result.finals)} finals; transcript at "
        f"{url.replace('ws://', 'http://')}/sessions/{result.session}/transcript.md"
    )


if __name__ == "__main__":
    main()
