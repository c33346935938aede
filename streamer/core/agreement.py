"""The commit policy: LocalAgreement-n over timed words.

Each decode of an utterance's buffer gives a hypothesis: words with absolute times. A word is committed once
`n` consecutive hypotheses agree on it (same normalised text, in the same position after the committed
prefix). Optionally, a word the latest hypothesis is confident about (probability at least `confident`, and
ending at least `confident_context` seconds before the window's end) is committed on that hypothesis alone,
which saves one decode interval of delay. Committed words never change; the rest of the latest hypothesis is
the unstable tail.

Re-decoded audio repeats already committed words; they are recognised by time (a word starting before the
committed end is old) and by the n-gram overlap between the committed tail and the new words.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

from streamer.events import Word

OVERLAP_TOLERANCE = 0.1
"""Seconds: a new word starting this much before the committed end still counts as new."""
MAX_OVERLAP_NGRAM = 5
TAIL_GUARD = 0.3
"""Seconds: a word ending this close to the end of a decoded window may be cut off and is not committed on
that hypothesis's vote."""
OVERLAP_WINDOW = 1.0
"""Seconds: n-gram overlap is only checked when the new words start this close to the committed end."""

_NON_WORD = re.compile(r"[^\w']+")


def normalize_word(text: str) -> str:
    return _NON_WORD.sub("", text.lower())


def _same(a: Sequence[Word], b: Sequence[Word]) -> bool:
    return len(a) == len(b) and all(
        normalize_word(x.text) == normalize_word(y.text) for x, y in zip(a, b, strict=True)
    )


class LocalAgreement:
    """Hypotheses in, newly committed words out. One instance per utterance."""

    def __init__(self, n: int = 2, confident: float | None = None, confident_context: float = 0.6) -> None:
        self.n = n
        self.confident = confident
        self.confident_context = confident_context
        self._hypotheses: deque[list[Word]] = deque(maxlen=n)
        self._window_ends: deque[float] = deque(maxlen=n)
        self.committed: list[Word] = []

    @property
    def committed_end(self) -> float:
        return self.committed[-1].end if self.committed else float("-inf")

    @property
    def unstable(self) -> list[Word]:
        return list(self._hypotheses[-1]) if self._hypotheses else []

    def new_words(self, words: Sequence[Word]) -> list[Word]:
        """The part of a hypothesis that lies after the committed prefix."""
        end = self.committed_end
        fresh = [w for w in words if w.start > end - OVERLAP_TOLERANCE]
        if fresh and self.committed and abs(fresh[0].start - end) < OVERLAP_WINDOW:
            for size in range(min(MAX_OVERLAP_NGRAM, len(fresh), len(self.committed)), 0, -1):
                if _same(self.committed[-size:], fresh[:size]):
                    return fresh[size:]
        return fresh

    def insert(self, words: Sequence[Word], window_end: float = float("inf")) -> list[Word]:
        """Add the hypothesis of a window ending at `window_end`; return the words it commits."""
        self._hypotheses.append(self.new_words(words))
        self._window_ends.append(window_end)
        latest = self._hypotheses[-1]
        agreed = 0
        while (
            len(self._hypotheses) == self.n
            and agreed < len(latest)
            and all(
                agreed < len(h)
                and normalize_word(h[agreed].text) == normalize_word(latest[agreed].text)
                and h[agreed].end <= end - TAIL_GUARD
                for h, end in zip(self._hypotheses, self._window_ends, strict=True)
            )
        ):
            agreed += 1
        if self.confident is not None:
            while (
                agreed < len(latest)
                and latest[agreed].probability >= self.confident
                and latest[agreed].end <= window_end - self.confident_context
            ):
                agreed += 1
        return self._commit(agreed)

    def force(self, before: float) -> list[Word]:
        """Commit the latest hypothesis's words that end before `before` (the buffer is too long)."""
        latest = self.unstable
        count = 0
        while count < len(latest) and latest[count].end <= before:
            count += 1
        return self._commit(count)

    def finish(self, words: Sequence[Word]) -> list[Word]:
        """The final hypothesis of the utterance: commit all of it that is new."""
        self._hypotheses.append(self.new_words(words))
        return self._commit(len(self._hypotheses[-1]))

    def _commit(self, count: int) -> list[Word]:
        if count <= 0:
            return []
        latest = self._hypotheses[-1]
        words = []
        floor = self.committed_end
        for word in latest[:count]:  # committed times never go backwards
            start = max(word.start, floor)
            floor = max(word.end, start)
            words.append(Word(start, floor, word.text, word.probability) if start != word.start else word)
        self.committed.extend(words)
        for i, hypothesis in enumerate(self._hypotheses):
            self._hypotheses[i] = hypothesis[count:] if len(hypothesis) >= count else []
        return words
