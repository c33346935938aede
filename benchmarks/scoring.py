"""Word error rate against the evaluation set's references, shared by the tests and the benchmarks.

Both sides go through Whisper's English normaliser. That normaliser deletes text in brackets and
parentheses, which is right for a hypothesis ("(laughs)", "[music]") but wrong for a reference: in the
evaluation set a parenthesis holds words the reader speaks ("dated (which also was printed at Maintz ...)").
So a reference's brackets become spaces first, and the words inside them count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

_BRACKETS = re.compile(r"[()\[\]{}<>]")


@cache
def _normalizer() -> Any:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """A hypothesis in scoring form: lower case, no punctuation, spelled-out forms unified."""
    return " ".join(_normalizer()(text).split())


def normalize_reference(text: str) -> str:
    """A reference in scoring form: as `normalize`, but words in brackets are kept."""
    return normalize(_BRACKETS.sub(" ", text))


@dataclass(frozen=True, slots=True)
class Score:
    """Word errors (substitutions + deletions + insertions) against the reference's word count."""

    errors: int
    words: int

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(self.errors + other.errors, self.words + other.words)


def score(reference: str, hypothesis: str) -> Score:
    """`hypothesis` scored against `reference`; an empty hypothesis is all deletions."""
    import jiwer

    ref, hyp = normalize_reference(reference), normalize(hypothesis)
    words = len(ref.split())
    if not hyp:
        return Score(words, words)
    out = jiwer.process_words(ref, hyp)
    return Score(out.substitutions + out.deletions + out.insertions, words)


def pooled(scores: Iterable[Score]) -> Score:
    """Several files as one: errors over words, so a long file weighs more than a short one."""
    return sum(scores, Score(0, 0))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis`; an empty hypothesis scores 1.0."""
    return score(reference, hypothesis).wer
