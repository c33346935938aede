"""Peers of Streamer, run side by side with it in the benchmarks (never dependencies of Streamer).

`benchmarks.peer.whisperlive`: WhisperLive (PyPI ``whisper-live``), installed in its own virtual
environment under ``~/.cache/streamer-bench/`` and driven over its websocket protocol.
"""
