"""`ServerConfig`: every setting of the live server, frozen and validated once where it is built."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from streamer.config import ModelConfig, StreamConfig, TranscriptConfig
from streamer.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_DATA_DIR = Path("streamer-data")
MiB = 1024 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    """0 picks a free port (tests)."""
    data_dir: Path = DEFAULT_DATA_DIR
    model: ModelConfig = field(default_factory=ModelConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    transcript: TranscriptConfig = field(default_factory=TranscriptConfig)

    speaker_token: str | None = None
    viewer_token: str | None = None
    allow_public_without_auth: bool = False

    max_speakers: int = 8
    """Hard cap on concurrent speakers, whatever the load estimate says."""
    max_batch: int = 1
    """Decode requests of different sessions run as one `decode` call (1: batching off)."""
    decode_queue: int = 64
    """Bound of the scheduler's queue; a full queue makes a session's decode wait (backpressure)."""
    admission_interval: float = 3.0
    """Admission assumes each speaker needs at least one decode per this many seconds of audio."""
    admission_headroom: float = 0.9
    """Refuse a speaker when the projected model utilisation would exceed this."""

    viewer_queue: int = 256
    """Messages queued per viewer; when full, partials are dropped, and a final disconnects the viewer."""
    history_limit: int = 0
    """Finals sent to a joining viewer: the last N, 0 for all."""
    max_frame_bytes: int = 1 * MiB
    """Largest websocket message accepted; larger ones are refused with close code 1009."""
    max_connections_per_address: int = 64
    start_timeout: float = 10.0
    """Seconds a speaker has to send its start message."""
    lag_warning: float = 4.0
    """A speaker whose captions lag the audio by more than this (seconds) gets a ``warning``."""
    max_backlog: float = 8.0
    """Undecoded speech (seconds) past which the server stops reading a speaker's audio until it catches up
    (paces clients that send faster than real time)."""
    shutdown_timeout: float = 30.0
    """Seconds the graceful shutdown waits for open utterances to be finalised."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be in 0-65535")
        if self.max_speakers < 1 or self.max_batch < 1 or self.decode_queue < 1:
            raise ConfigError("max_speakers, max_batch and decode_queue must be at least 1")
        if self.viewer_queue < 8:
            raise ConfigError("viewer_queue must be at least 8")
        if self.history_limit < 0:
            raise ConfigError("history_limit must be >= 0")
        if self.max_frame_bytes < 4096:
            raise ConfigError("max_frame_bytes must be at least 4096")
        if not 0 < self.admission_headroom <= 4:
            raise ConfigError("admission_headroom must be in (0, 4]")
        for name in ("speaker_token", "viewer_token"):
            token = getattr(self, name)
            if token is not None and len(token) < 8:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 8 characters")
        if self.speaker_token and self.speaker_token == self.viewer_token:
            raise ConfigError("the speaker and viewer tokens must differ")
        if not is_loopback(self.host) and not self.speaker_token and not self.allow_public_without_auth:
            raise ConfigError(
                f"refusing to listen on non-loopback host {self.host} without --speaker-token "
                "(and --viewer-token); pass --allow-public-without-auth to do it anyway"
            )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.speaker_token or self.viewer_token)
