"""One frozen configuration tree, validated once where it is built and passed down unchanged.

Every tunable of the pipeline is named here with its unit; nothing else in the package hides magic numbers
that a user might want to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamer.errors import ConfigError

SAMPLE_RATE = 16_000
"""The pipeline's internal sample rate (Hz); Whisper and Silero both want 16 kHz mono."""

VAD_FRAME_SAMPLES = 512
"""Silero VAD frame at 16 kHz: 32 ms."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Speech segmentation over Silero's per-frame speech probabilities."""

    threshold: float = 0.5
    """A frame with probability at or above this is speech."""
    neg_threshold: float = 0.35
    """A frame below this counts towards the silence that ends an utterance (hysteresis)."""
    min_silence: float = 0.6
    """Seconds of silence that end an utterance."""
    speech_pad: float = 0.25
    """Seconds of audio kept before the detected start and after the detected end."""
    min_speech: float = 0.25
    """Utterances with less detected speech than this (seconds) are dropped as noise."""
    max_utterance: float = 45.0
    """An utterance longer than this (seconds) is closed and a new one opened."""

    def __post_init__(self) -> None:
        _require(0.0 < self.threshold < 1.0, "vad.threshold must be in (0, 1)")
        _require(0.0 < self.neg_threshold <= self.threshold, "vad.neg_threshold must be in (0, threshold]")
        _require(self.min_silence > 0, "vad.min_silence must be positive")
        _require(self.speech_pad >= 0, "vad.speech_pad must be >= 0")
        _require(self.max_utterance >= 5, "vad.max_utterance must be at least 5 s")


@dataclass(frozen=True, slots=True)
class DecodeConfig:
    """Incremental decoding, the commit policy and the quality guards."""

    interval: float = 1.0
    """Seconds of new audio between two partial decodes of the active utterance."""
    min_window: float = 0.5
    """No partial decode of an utterance shorter than this (seconds)."""
    pause_wait: float = 0.3
    """Once due, a partial decode waits up to this many seconds more for a pause between words (the latest
    VAD frame below the VAD's speech `threshold`), so that its window ends between two words rather than
    inside one. 0 decodes as soon as `interval` has passed."""
    agreement: int = 2
    """LocalAgreement-n: a word is committed once this many consecutive hypotheses agree on it."""
    confident_commit: float | None = None
    """If set, a word whose probability is at least this is committed on one hypothesis (no second vote),
    once it ends `confident_context` seconds before the decoded window's end."""
    confident_context: float = 0.6
    trim_after: float = 12.0
    """Once the uncommitted buffer is longer than this (seconds), it is cut at the last committed word."""
    trim_overlap: float = 0.5
    """Seconds of committed audio kept before a cut, so a word timestamp that ends late cannot clip the
    first uncommitted word; the re-heard words are recognised as already committed."""
    max_buffer: float = 20.0
    """The buffer never grows past this: the hypothesis is then force-committed up to `force_keep`."""
    force_keep: float = 2.0
    """Seconds at the end of the buffer that a forced commit leaves uncommitted."""
    prompt_chars: int = 200
    """Characters of committed text given to Whisper as the prompt."""
    language: str | None = None
    """ISO code, or None to let a multilingual model detect it (English-only models ignore it)."""
    beam_size: int = 1
    """Beam size of the decode that finalises an utterance; partial decodes are always greedy."""
    final_temperatures: tuple[float, ...] = (0.0,)
    """Temperatures of the finalising decode (more than one enables Whisper's fallback, which samples and so
    is not reproducible); partial decodes always use temperature 0 alone."""
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    """A segment is dropped as non-speech when no_speech_prob > no_speech_threshold and
    avg_logprob < logprob_threshold (Whisper's rule)."""
    compression_ratio_threshold: float = 2.4
    """A segment whose gzip compression ratio exceeds this is a repetition loop."""
    max_ngram_repeats: int = 3
    """A word n-gram repeated back to back more than this is cut as a loop."""
    max_unaligned_words: int = 2
    """More consecutive words than this without duration (text the model appended without hearing it,
    the mark of a loop) cut the hypothesis there."""

    def __post_init__(self) -> None:
        _require(0.1 <= self.interval <= 10, "decode.interval must be between 0.1 and 10 s")
        _require(0 <= self.pause_wait <= 5, "decode.pause_wait must be between 0 and 5 s")
        _require(self.agreement >= 2, "decode.agreement must be >= 2")
        _require(5 <= self.trim_after < self.max_buffer <= 28, "need 5 <= trim_after < max_buffer <= 28 s")
        _require(0 < self.force_keep < self.trim_after, "decode.force_keep must be in (0, trim_after)")
        _require(0 <= self.trim_overlap <= 2, "decode.trim_overlap must be between 0 and 2 s")
        _require(self.max_unaligned_words >= 1, "decode.max_unaligned_words must be >= 1")
        _require(
            self.confident_commit is None or 0 < self.confident_commit <= 1,
            "decode.confident_commit must be in (0, 1]",
        )
        _require(self.confident_context >= 0, "decode.confident_context must be >= 0")
        _require(self.beam_size >= 1, "decode.beam_size must be >= 1")
        _require(len(self.final_temperatures) >= 1, "decode.final_temperatures must not be empty")


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Everything one stream's pipeline needs."""

    vad: VadConfig = field(default_factory=VadConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Which Whisper weights to load and how."""

    name: str = "tiny.en"
    """`tiny.en` (bundled), `base` (bundled multilingual, optional extra), a local CTranslate2 folder,
    or any model name faster-whisper can download."""
    device: str = "auto"
    compute_type: str = "default"
    """`default` means int8 on CPU and float16 on CUDA."""
    cpu_threads: int = 0
    num_workers: int = 1


@dataclass(frozen=True, slots=True)
class TranscriptConfig:
    """How exports are laid out."""

    title: str = "Transcript"
    paragraph_minutes: float = 4.0
    line_width: int = 110
    caption_chars: int = 42
    caption_lines: int = 2
    caption_max_duration: float = 6.0

    def __post_init__(self) -> None:
        _require(self.paragraph_minutes > 0, "paragraph_minutes must be positive")
        _require(self.line_width >= 20, "line_width must be at least 20")
        _require(self.caption_chars >= 10, "caption_chars must be at least 10")
        _require(self.caption_lines >= 1, "caption_lines must be at least 1")
