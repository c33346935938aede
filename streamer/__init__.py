"""Streamer: live captions from speech, with Silero VAD and faster-whisper."""

__version__ = "0.1.0"
