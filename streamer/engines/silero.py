"""Silero VAD on onnxruntime, streamed: one shared ONNX session, recurrent state carried per stream.

The model file is the one faster-whisper ships (`assets/silero_vad_v6.onnx`): its input is rows of
64 context samples + 512 new samples, with LSTM states `h` and `c` of shape (1, 1, 128). faster-whisper's own
wrapper resets those states on every call, so it cannot stream; here each `SileroStream` keeps its own.
No torch is needed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from streamer.config import VAD_FRAME_SAMPLES
from streamer.errors import ModelNotFoundError

CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)


def default_model_path() -> Path:
    path = Path(str(resources.files("faster_whisper") / "assets" / "silero_vad_v6.onnx"))
    if not path.exists():
        raise ModelNotFoundError(f"Silero VAD model not found at {path}; reinstall faster-whisper")
    return path


class SileroVad:
    """The shared model; onnxruntime sessions may be run from several threads at once."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path or default_model_path()), providers=["CPUExecutionProvider"], sess_options=opts
        )

    def stream(self) -> SileroStream:
        return SileroStream(self)

    def run(
        self, rows: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out, h2, c2 = self._session.run(None, {"input": rows, "h": h, "c": c})
        return np.asarray(out).reshape(-1), h2, c2


class SileroStream:
    """One stream's VAD state: the LSTM states and the last 64 samples of context."""

    def __init__(self, model: SileroVad) -> None:
        self._model = model
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def probability(self, frame: np.ndarray) -> float:
        return float(self.probabilities([frame])[0])

    def probabilities(self, frames: list[np.ndarray]) -> np.ndarray:
        """Probabilities of consecutive frames in one call (the LSTM runs over the rows in order)."""
        if not frames:
            return np.zeros(0, dtype=np.float32)
        audio = np.concatenate(frames).astype(np.float32, copy=False)
        rows = audio.reshape(-1, VAD_FRAME_SAMPLES)
        contexts = np.empty((len(rows), CONTEXT_SAMPLES), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = rows[:-1, -CONTEXT_SAMPLES:]
        self._context = rows[-1, -CONTEXT_SAMPLES:].copy()
        probs, self._h, self._c = self._model.run(np.concatenate([contexts, rows], axis=1), self._h, self._c)
        return probs
