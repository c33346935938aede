"""Reading audio files (wav, flac, mp3, m4a, webm, ...) with PyAV, as 16 kHz mono float32 in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from streamer.config import SAMPLE_RATE
from streamer.errors import AudioFormatError


def iter_audio(
    path: str | Path, chunk_seconds: float = 0.1, *, input_format: str | None = None
) -> Iterator[np.ndarray]:
    """Yield the audio as 16 kHz mono float32 chunks of `chunk_seconds` (the last may be shorter).

    `path` is a file, or with `input_format` (an FFmpeg input device or source such as ``alsa``,
    ``avfoundation``, ``dshow`` or ``lavfi``) a device name: a live source that paces itself.
    """
    import av

    chunk = max(1, int(round(chunk_seconds * SAMPLE_RATE)))
    pending = np.zeros(0, dtype=np.float32)
    try:
        container = av.open(str(path), format=input_format)
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioFormatError(f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise AudioFormatError(f"{path} has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pending = np.concatenate([pending, out.to_ndarray().reshape(-1)])
                    while len(pending) >= chunk:
                        yield pending[:chunk]
                        pending = pending[chunk:]
            for out in resampler.resample(None):
                pending = np.concatenate([pending, out.to_ndarray().reshape(-1)])
        except av.error.FFmpegError as exc:
            raise AudioFormatError(f"cannot decode {path}: {exc}") from exc
    while len(pending):
        yield pending[:chunk]
        pending = pending[chunk:]


def read_audio(path: str | Path) -> np.ndarray:
    """The whole file as one 16 kHz mono float32 array."""
    chunks = list(iter_audio(path, chunk_seconds=30.0))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def duration_of(path: str | Path) -> float | None:
    """The file's duration in seconds, from its header where it has one."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return float(container.duration) / 1_000_000
    except (av.error.FFmpegError, OSError):
        return None
    return None


MICROPHONE_FORMATS = {"linux": "alsa", "darwin": "avfoundation", "win32": "dshow"}
"""The FFmpeg input device format that captures a microphone, per platform."""
DEFAULT_MICROPHONES = {"linux": "default", "darwin": ":0"}


def microphone(device: str | None = None) -> tuple[str, str]:
    """(device, input format) of the microphone to capture: `device` or the platform's default."""
    import sys

    platform = "linux" if sys.platform.startswith("linux") else sys.platform
    input_format = MICROPHONE_FORMATS.get(platform)
    if input_format is None:
        raise AudioFormatError(f"capturing a microphone is not supported on {sys.platform}")
    name = device or DEFAULT_MICROPHONES.get(platform)
    if name is None:
        raise AudioFormatError("name the microphone, e.g. `mic:audio=Microphone (USB Audio)` on Windows")
    return name, input_format
