"""The faster-whisper adapter behind the `Transcriber` interface.

Requests decoded at temperature 0 (all partial decodes, and final ones unless fallback is configured) go
through `whisper_batch`, one CTranslate2 call per group of compatible requests; the rest through
faster-whisper's `transcribe`.

It turns `DecodeRequest`s into `DecodeResult`s and nothing else: no VAD (the core already segmented), no
prompt conditioning across requests (the core sends the prompt), no filtering of non-speech (the core's
guards decide, from the probabilities reported here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from streamer.config import ModelConfig
from streamer.engines.base import DecodedSegment, DecodeRequest, DecodeResult
from streamer.engines.models import ResolvedModel, resolve_model
from streamer.engines.whisper_batch import batch_key, decode_batch
from streamer.errors import ModelNotFoundError
from streamer.events import Word

logger = logging.getLogger(__name__)


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except (ImportError, RuntimeError):
        return "cpu"


def _compute_type(requested: str, device: str) -> str:
    if requested != "default":
        return requested
    return "float16" if device == "cuda" else "int8"


class WhisperTranscriber:
    """One faster-whisper model; `decode` runs requests one after another on it."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        from faster_whisper import WhisperModel

        config = config or ModelConfig()
        self.resolved: ResolvedModel = resolve_model(config.name)
        self.device = _device(config.device)
        self.compute_type = _compute_type(config.compute_type, self.device)
        started = time.perf_counter()
        try:
            self.model = WhisperModel(
                self.resolved.path_or_name,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=config.cpu_threads,
                num_workers=config.num_workers,
                local_files_only=self.resolved.local,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelNotFoundError(
                f"cannot load Whisper model {config.name!r}: {exc}. {self.resolved.hint}"
            ) from exc
        self.english_only = not self.model.model.is_multilingual
        logger.info(
            "loaded model %s (%s, %s) in %.2f s",
            self.resolved.label,
            self.device,
            self.compute_type,
            time.perf_counter() - started,
        )

    @property
    def name(self) -> str:
        return self.resolved.label

    def decode(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        """Temperature-0 requests run batched (grouped by `batch_key`); fallback requests one by one."""
        results: dict[int, DecodeResult] = {}
        groups: dict[tuple[int, bool], list[DecodeRequest]] = {}
        for request in requests:
            if tuple(request.temperatures) == (0.0,):
                groups.setdefault(batch_key(request), []).append(request)
            else:
                results[id(request)] = self._decode_one(request)
        for group in groups.values():
            try:
                decoded = decode_batch(self.model, group, self.english_only)
            except (RuntimeError, ValueError) as exc:
                logger.exception("batched decode of %d requests failed", len(group))
                decoded = [DecodeResult(r.stream_id, r.request_id, (), None, error=str(exc)) for r in group]
            results.update((id(r), d) for r, d in zip(group, decoded, strict=True))
        return [results[id(r)] for r in requests]

    def _decode_one(self, request: DecodeRequest) -> DecodeResult:
        language = "en" if self.english_only else request.language
        options: dict[str, Any] = dict(
            language=language,
            beam_size=request.beam_size,
            temperature=list(request.temperatures),
            initial_prompt=request.prompt or None,
            word_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            no_speech_threshold=None,
            without_timestamps=False,
        )
        try:
            segments, info = self.model.transcribe(request.audio, **options)
            decoded = tuple(_segment(s) for s in segments)
        except (RuntimeError, ValueError) as exc:
            logger.exception("[%s] decode failed", request.stream_id)
            return DecodeResult(request.stream_id, request.request_id, (), None, error=str(exc))
        return DecodeResult(request.stream_id, request.request_id, decoded, info.language)


def _segment(segment: Any) -> DecodedSegment:
    words = tuple(Word(w.start, w.end, w.word.strip(), w.probability) for w in (segment.words or ()))
    return DecodedSegment(
        start=segment.start,
        end=segment.end,
        text=segment.text.strip(),
        words=tuple(w for w in words if w.text),
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        compression_ratio=segment.compression_ratio,
    )
