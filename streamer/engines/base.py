"""The two model interfaces the core talks to, and the values that cross them.

- `Transcriber`: decode requests in, decoded segments out. A request carries everything one decode needs,
  so requests of many streams can be run by one shared model, one by one or batched.
- `SpeechDetector` / `SpeechDetectorStream`: per-frame speech probability, state carried per stream.

Times in a `DecodeResult` are relative to the start of the request's audio window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from streamer.events import Word


@dataclass(frozen=True, slots=True, eq=False)
class DecodeRequest:
    """Decode this window of one stream's audio (16 kHz mono float32)."""

    stream_id: str
    request_id: int
    audio: np.ndarray
    prompt: str = ""
    language: str | None = None
    final: bool = False
    """The last decode of an utterance: may use beam search and temperature fallback."""
    beam_size: int = 1
    temperatures: tuple[float, ...] = (0.0,)

    @property
    def duration(self) -> float:
        return len(self.audio) / 16_000


@dataclass(frozen=True, slots=True)
class DecodedSegment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0


@dataclass(frozen=True, slots=True)
class DecodeResult:
    stream_id: str
    request_id: int
    segments: tuple[DecodedSegment, ...] = field(default_factory=tuple)
    language: str | None = None
    error: str | None = None
    """Set when the decode failed; the stream carries on and retries with later audio."""


class Transcriber(Protocol):
    """A Whisper model, treated as I/O."""

    @property
    def name(self) -> str: ...

    def decode(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        """Run the requests (possibly as one batch); results in the same order."""
        ...


class SpeechDetectorStream(Protocol):
    """One stream's VAD state."""

    def probability(self, frame: np.ndarray) -> float:
        """Speech probability of the next 512-sample frame."""
        ...


class SpeechDetector(Protocol):
    """A shared VAD model that hands out per-stream states."""

    def stream(self) -> SpeechDetectorStream: ...
