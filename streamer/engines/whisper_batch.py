"""One CTranslate2 call for many streams' decode requests: batched encoder, generate and word alignment.

Each request brings its own audio window (padded to Whisper's 30 s), its own prompt and its own language;
CTranslate2's Whisper `generate` takes the whole batch at once. Segments are cut at the timestamp tokens and
words aligned with faster-whisper's own helpers, so a request decoded alone or in a batch gives the same
result. Greedy or beam search at temperature 0 only: a request that wants temperature fallback goes through
faster-whisper's sequential `transcribe` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil
from typing import Any

import numpy as np

from streamer.config import SAMPLE_RATE
from streamer.engines.base import DecodedSegment, DecodeRequest, DecodeResult
from streamer.events import Word

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
MAX_NEW_TOKENS = 224
MAX_INITIAL_TIMESTAMP_INDEX = 50
"""The first timestamp may be at most 1.0 s into the window (faster-whisper's default)."""
MAX_PASSES = 3
MIN_CONTINUATION = 1.0
"""Seconds of audio left after a window's last segment that make it worth decoding again from there."""


def _compression_ratio(text: str) -> float:
    import zlib

    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def batch_key(request: DecodeRequest) -> tuple[int, bool]:
    """Requests with equal keys can share one `decode_batch` call."""
    return (request.beam_size, bool(request.prompt.strip()))


def decode_batch(model: Any, requests: Sequence[DecodeRequest], english_only: bool) -> list[DecodeResult]:
    """Decode `requests` (equal `batch_key`, temperature 0) in one batch on a faster-whisper `WhisperModel`.

    Like faster-whisper's own loop, a window whose text ends well before its audio does (the model closed a
    segment and stopped) is decoded again from there, with the text so far added to its prompt.
    """
    from faster_whisper.tokenizer import Tokenizer

    pending = [_Pass(r, r.audio, 0.0, r.prompt) for r in requests]
    languages: list[str] = []
    segments: dict[int, list[DecodedSegment]] = {id(r): [] for r in requests}
    for round_ in range(MAX_PASSES):
        if not pending:
            break
        features = np.stack([_features(model, p.audio) for p in pending])
        encoder_output = model.encode(features)
        if round_ == 0:
            languages = _languages(model, requests, encoder_output, english_only)
        language_of = {id(r): lang for r, lang in zip(requests, languages, strict=True)}
        tokenizers = [
            Tokenizer(
                model.hf_tokenizer,
                model.model.is_multilingual,
                task="transcribe",
                language=language_of[id(p.request)],
            )
            for p in pending
        ]
        pieces, seeks = _generate(model, pending, tokenizers, encoder_output)
        follow_up = []
        for p, found, seek in zip(pending, pieces, seeks, strict=True):
            segments[id(p.request)].extend(_segment(piece, p.offset) for piece in found)
            duration = len(p.audio) / SAMPLE_RATE
            if found and seek < duration - MIN_CONTINUATION:
                text = " ".join(piece["text"].strip() for piece in found)
                cut = int(seek * SAMPLE_RATE)
                follow_up.append(
                    _Pass(p.request, p.audio[cut:], p.offset + seek, f"{p.prompt} {text}".strip())
                )
        pending = _same_prompt_shape(follow_up)
    return [
        DecodeResult(r.stream_id, r.request_id, tuple(segments[id(r)]), lang)
        for r, lang in zip(requests, languages, strict=True)
    ]


@dataclass(frozen=True, slots=True, eq=False)
class _Pass:
    request: DecodeRequest
    audio: np.ndarray
    offset: float
    prompt: str


def _same_prompt_shape(passes: list[_Pass]) -> list[_Pass]:
    """Continuations all carry a prompt; keep the batch uniform (see `batch_key`)."""
    return [p for p in passes if p.prompt.strip()]


def _features(model: Any, audio: np.ndarray) -> np.ndarray:
    from faster_whisper.audio import pad_or_trim

    return np.asarray(pad_or_trim(model.feature_extractor(audio)[..., :-1]))


def _generate(
    model: Any, passes: list[_Pass], tokenizers: list[Any], encoder_output: Any
) -> tuple[list[list[dict[str, Any]]], list[float]]:
    from faster_whisper.transcribe import get_suppressed_tokens

    previous = [
        tokenizer.encode(" " + p.prompt.strip()) if p.prompt.strip() else []
        for p, tokenizer in zip(passes, tokenizers, strict=True)
    ]
    # CTranslate2 needs the start-of-transcript token at one position across the batch: every prompt keeps
    # the same number of its most recent tokens (callers group prompted and unprompted requests apart).
    keep = min(min(len(p) for p in previous), model.max_length // 2 - 1)
    prompts = [
        model.get_prompt(tokenizer, previous_tokens=p[len(p) - keep :], without_timestamps=False)
        for p, tokenizer in zip(previous, tokenizers, strict=True)
    ]
    results = model.model.generate(
        encoder_output,
        prompts,
        beam_size=passes[0].request.beam_size,
        max_length=min(model.max_length, len(prompts[0]) + MAX_NEW_TOKENS),
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizers[0], [-1]),
        return_scores=True,
        return_no_speech_prob=True,
        max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
    )
    pieces: list[list[dict[str, Any]]] = []
    seeks: list[float] = []
    sizes: list[int] = []
    for p, tokenizer, result in zip(passes, tokenizers, results, strict=True):
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        duration = len(p.audio) / SAMPLE_RATE
        size = int(ceil(duration) * model.frames_per_second)
        sizes.append(size)
        found, _, _ = model._split_segments_by_timestamps(
            tokenizer=tokenizer,
            tokens=tokens,
            time_offset=0.0,
            segment_size=size,
            segment_duration=duration,
            seek=0,
        )
        pieces.append(
            [
                dict(
                    text=tokenizer.decode(piece["tokens"]),
                    tokens=piece["tokens"],
                    start=piece["start"],
                    end=piece["end"],
                    avg_logprob=avg_logprob,
                    no_speech_prob=result.no_speech_prob,
                    seek=0,
                )
                for piece in found
                if piece["tokens"]
            ]
        )
    if any(pieces):
        model.add_word_timestamps(
            pieces, tokenizers[0], encoder_output, sizes, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0
        )
    for p, found in zip(passes, pieces, strict=True):
        # As faster-whisper does: the next pass (if any) starts at the end of the last aligned word.
        ends = [w["end"] for piece in found for w in piece.get("words", ())]
        seeks.append(float(max(ends)) if ends else len(p.audio) / SAMPLE_RATE)
    return pieces, seeks


def _languages(
    model: Any, requests: Sequence[DecodeRequest], encoder_output: Any, english_only: bool
) -> list[str]:
    if english_only:
        return ["en"] * len(requests)
    wanted = [r.language for r in requests]
    if all(wanted):
        return [str(w) for w in wanted]
    detected = model.model.detect_language(encoder_output)
    return [w or pairs[0][0][2:-2] for w, pairs in zip(wanted, detected, strict=True)]


def _segment(piece: dict[str, Any], offset: float) -> DecodedSegment:
    text = piece["text"].strip()
    words = tuple(
        Word(offset + float(w["start"]), offset + float(w["end"]), w["word"].strip(), float(w["probability"]))
        for w in piece.get("words", ())
        if w["word"].strip()
    )
    return DecodedSegment(
        start=offset + float(piece["start"]),
        end=offset + float(piece["end"]),
        text=text,
        words=words,
        avg_logprob=float(piece["avg_logprob"]),
        no_speech_prob=float(piece["no_speech_prob"]),
        compression_ratio=_compression_ratio(text),
    )
