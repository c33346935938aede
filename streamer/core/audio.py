"""Audio in: PCM decoding, down-mixing, streaming resampling to 16 kHz, and fixed-size framing.

Pure numpy, no I/O. `AudioDecoder` turns the bytes a client sends (PCM16 or float32, any common rate, mono or
stereo) into 16 kHz mono float32, keeping the resampler's state across chunks so a stream cut into arbitrary
pieces decodes exactly as if it arrived whole. `Framer` cuts samples into fixed frames (Silero's 512).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from streamer.config import SAMPLE_RATE
from streamer.errors import AudioFormatError

SUPPORTED_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000})
MAX_CHANNELS = 2
RESAMPLER_HALF_TAPS = 16
"""Windowed-sinc half length, in input samples at the lower of the two rates."""


class Encoding(StrEnum):
    PCM16 = "pcm16"
    FLOAT32 = "float32"

    @property
    def sample_width(self) -> int:
        return 2 if self is Encoding.PCM16 else 4


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What a client promises to send."""

    sample_rate: int = SAMPLE_RATE
    encoding: Encoding = Encoding.PCM16
    channels: int = 1

    def __post_init__(self) -> None:
        if self.sample_rate not in SUPPORTED_RATES:
            raise AudioFormatError(
                f"unsupported sample rate {self.sample_rate} Hz; use one of {sorted(SUPPORTED_RATES)}"
            )
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise AudioFormatError(f"unsupported channel count {self.channels}; use 1 or 2")

    @property
    def bytes_per_frame(self) -> int:
        return self.encoding.sample_width * self.channels

    @classmethod
    def parse(cls, sample_rate: object, encoding: object, channels: object) -> AudioFormat:
        """Build from untrusted values (a client's start message)."""
        try:
            enc = Encoding(str(encoding).lower())
        except ValueError:
            raise AudioFormatError(f"unsupported encoding {encoding!r}; use 'pcm16' or 'float32'") from None
        if not isinstance(sample_rate, int) or isinstance(sample_rate, bool):
            raise AudioFormatError("sample_rate must be an integer")
        if not isinstance(channels, int) or isinstance(channels, bool):
            raise AudioFormatError("channels must be an integer")
        return cls(sample_rate=sample_rate, encoding=enc, channels=channels)


class StreamingResampler:
    """Band-limited (windowed-sinc) resampler whose state carries across chunks."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._step = in_rate / out_rate  # input samples per output sample
        self._cutoff = min(1.0, out_rate / in_rate)
        self._half = int(np.ceil(RESAMPLER_HALF_TAPS / self._cutoff))
        # History holds the input samples still needed; `_pos` is the next output's position in it.
        self._history = np.zeros(self._half, dtype=np.float32)
        self._pos = float(self._half)

    def process(self, samples: np.ndarray) -> np.ndarray:
        if self.in_rate == self.out_rate:
            return samples.astype(np.float32, copy=False)
        buf = np.concatenate([self._history, samples.astype(np.float32, copy=False)])
        last = len(buf) - self._half - 1  # an output needs `_half` samples of look-ahead
        if last < self._pos:
            self._history = buf
            return np.zeros(0, dtype=np.float32)
        positions = np.arange(self._pos, last + 1e-9, self._step)
        out = self._interpolate(buf, positions)
        next_pos = positions[-1] + self._step
        keep_from = int(np.floor(next_pos)) - self._half
        self._history = buf[keep_from:]
        self._pos = next_pos - keep_from
        return out

    def _interpolate(self, buf: np.ndarray, positions: np.ndarray) -> np.ndarray:
        base = np.floor(positions).astype(np.int64)
        offsets = np.arange(-self._half + 1, self._half + 1)
        idx = base[:, None] + offsets[None, :]
        x = idx - positions[:, None]
        window = 0.5 * (1.0 + np.cos(np.pi * x / (self._half + 1)))
        kernel = self._cutoff * np.sinc(self._cutoff * x) * window
        result: np.ndarray = np.einsum("ij,ij->i", buf[idx], kernel).astype(np.float32)
        return result


class AudioDecoder:
    """Bytes of one client's audio format in, 16 kHz mono float32 out."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._resampler = StreamingResampler(fmt.sample_rate)
        self._remainder = b""

    def decode(self, data: bytes) -> np.ndarray:
        data = self._remainder + data
        usable = len(data) - len(data) % self.format.bytes_per_frame
        self._remainder = data[usable:]
        if self.format.encoding is Encoding.PCM16:
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        else:
            samples = np.frombuffer(data[:usable], dtype="<f4").astype(np.float32)
            if not np.all(np.isfinite(samples)):
                raise AudioFormatError("float32 audio contains NaN or infinity")
            samples = np.clip(samples, -1.0, 1.0)
        if self.format.channels > 1:
            samples = samples.reshape(-1, self.format.channels).mean(axis=1)
        return self._resampler.process(samples)


class Framer:
    """Cuts a sample stream into fixed-size frames, keeping the leftover for the next call."""

    def __init__(self, frame_samples: int) -> None:
        self.frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n = len(buf) // self.frame_samples
        frames = [buf[i * self.frame_samples : (i + 1) * self.frame_samples] for i in range(n)]
        self._pending = buf[n * self.frame_samples :].astype(np.float32, copy=True)
        return frames

    def flush(self) -> np.ndarray | None:
        """The last, zero-padded partial frame, if any samples are left."""
        if not len(self._pending):
            return None
        frame = np.zeros(self.frame_samples, dtype=np.float32)
        frame[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        return frame


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian PCM16 bytes (what clients send)."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
