"""Word error rate against the evaluation set's references, shared by the tests and the benchmarks.

Both sides go through Whisper's English normaliser. That normaliser deletes text in brackets and
parentheses, which is right for a hypothesis ("(laughs)", "[music]") but wrong for a reference: in the
evaluation set a parenthesis holds words the reader speaks ("dated (which also was printed at Maintz ...)").
So a reference's brackets become spaces first, and the words inside them count.
"""

from __future__ import annotations

import re
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


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis`; an empty hypothesis scores 1.0."""
    import jiwer

    hyp = normalize(hypothesis)
    return float(jiwer.wer(normalize_reference(reference), hyp)) if hyp else 1.0
