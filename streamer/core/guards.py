"""Quality guards over decoded segments: non-speech, known hallucinations, and repetition loops.

Pure functions. `screen` takes a decode's segments and returns the words worth keeping, plus whether a loop
(repeated n-grams, or a run of words the model did not align to any audio) was seen (the caller then stops
prompting with text that may have caused it).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from streamer.config import DecodeConfig
from streamer.engines.base import DecodedSegment
from streamer.events import Word

HALLUCINATIONS = frozenset(
    {
        "thank you",
        "thank you very much",
        "thanks for watching",
        "thank you for watching",
        "thank you so much for watching",
        "thanks for watching and see you next time",
        "please subscribe",
        "please subscribe to my channel",
        "like and subscribe",
        "subtitles by the amaraorg community",
        "subtitles by",
        "transcribed by",
        "you",
        "bye",
        "so",
        "okay",
        "the end",
        "music",
        "applause",
        "silence",
    }
)
"""Whole-segment texts Whisper is known to produce from silence or noise (normalised)."""

HALLUCINATION_MAX_PROBABILITY = 0.6
"""A known-hallucination segment is kept only if its mean word probability is above this and it is not
flagged by the no-speech probability either."""
HALLUCINATION_NO_SPEECH = 0.2

WEAK_SEGMENT_NO_SPEECH = 0.3
WEAK_SEGMENT_WORD_PROBABILITY = 0.4
"""A segment with avg_logprob below the threshold is dropped as made up when its no-speech probability is
above WEAK_SEGMENT_NO_SPEECH or its words' mean probability is below WEAK_SEGMENT_WORD_PROBABILITY: Whisper
appends such segments ("see you next time") after the last word of an utterance."""

MAX_LOOP_NGRAM = 6

UNALIGNED_DURATION = 0.02
"""Seconds: a word this short was not aligned to any audio. Whisper gives single words no duration now and
then (a digit, a short word at a window's end); a run of them is text it made up after the speech, typically
a loop that repeats with a period too long for the n-gram check ("3. The chapel yard. 4. The middle yard.
3. The chapel yard. ...")."""

_NON_WORD = re.compile(r"[^\w' ]+")


def normalize_text(text: str) -> str:
    return " ".join(_NON_WORD.sub("", text.lower()).split())


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True, slots=True)
class Screened:
    words: tuple[Word, ...]
    loop: bool
    """A repetition loop was found and cut."""
    dropped: int
    """Segments dropped as non-speech or hallucination."""


def _mean_probability(segment: DecodedSegment) -> float:
    if not segment.words:
        return 0.0
    return sum(w.probability for w in segment.words) / len(segment.words)


def _is_non_speech(segment: DecodedSegment, config: DecodeConfig) -> bool:
    if segment.avg_logprob >= config.logprob_threshold:
        return False
    return (
        segment.no_speech_prob > min(config.no_speech_threshold, WEAK_SEGMENT_NO_SPEECH)
        or _mean_probability(segment) < WEAK_SEGMENT_WORD_PROBABILITY
    )


def _has_letters(word: Word) -> bool:
    return any(ch.isalnum() for ch in word.text)


def _is_hallucination(segment: DecodedSegment) -> bool:
    if normalize_text(segment.text) not in HALLUCINATIONS:
        return False
    if not segment.words:
        return True
    return (
        _mean_probability(segment) < HALLUCINATION_MAX_PROBABILITY
        or segment.no_speech_prob > HALLUCINATION_NO_SPEECH
    )


def cut_repetition(words: Sequence[Word], max_repeats: int) -> tuple[list[Word], bool]:
    """Cut a run where an n-gram (n <= 6) repeats back to back more than `max_repeats` times.

    Keeps the first occurrence of the repeated n-gram and drops everything after it.
    """
    keys = [normalize_text(w.text) for w in words]
    for start in range(len(keys)):
        for size in range(1, MAX_LOOP_NGRAM + 1):
            gram = keys[start : start + size]
            if len(gram) < size:
                break
            repeats = 1
            pos = start + size
            while keys[pos : pos + size] == gram:
                repeats += 1
                pos += size
            if repeats > max_repeats:
                return list(words[: start + size]), True
    return list(words), False


def cut_unaligned(words: Sequence[Word], max_run: int) -> tuple[list[Word], bool]:
    """Cut the words at the first run of more than `max_run` consecutive words without duration."""
    run = 0
    for i, word in enumerate(words):
        run = run + 1 if word.end - word.start <= UNALIGNED_DURATION else 0
        if run > max_run:
            return list(words[: i + 1 - run]), True
    return list(words), False


def screen(segments: Sequence[DecodedSegment], config: DecodeConfig) -> Screened:
    kept: list[Word] = []
    loop = False
    dropped = 0
    for segment in segments:
        if _is_non_speech(segment, config) or _is_hallucination(segment):
            dropped += 1
            continue
        if segment.compression_ratio > config.compression_ratio_threshold:
            loop = True
            dropped += 1
            continue
        kept.extend(w for w in segment.words if _has_letters(w))
    words, repeated = cut_repetition(kept, config.max_ngram_repeats)
    words, unaligned = cut_unaligned(words, config.max_unaligned_words)
    return Screened(tuple(words), loop or repeated or unaligned, dropped)
