"""The error hierarchy of Streamer. Everything the package raises on purpose derives from `StreamerError`.

The server maps these to websocket close codes at the connection boundary; the CLI prints their message
(one line, no traceback) and exits non-zero.
"""

from __future__ import annotations


class StreamerError(Exception):
    """Base class of every error Streamer raises deliberately."""


class ConfigError(StreamerError):
    """A configuration value is invalid."""


class ModelNotFoundError(StreamerError):
    """The requested Whisper weights are not available on this machine."""


class AudioFormatError(StreamerError):
    """Audio cannot be decoded: unsupported encoding, sample rate or channel count, or bad bytes."""
