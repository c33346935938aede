"""Grouping of finals into the paragraphs of the Markdown transcript, one paragraph per N-minute mark.

Rules (N = `TranscriptConfig.paragraph_minutes`, 4 by default):

- The marks fall at N, 2N, 3N, ... minutes of stream time, computed from the full time in seconds, so they
  are correct across hours (the 60-minute mark exists; there is no reading of a minute field).
- A final is a *break candidate* when it opens a new utterance (its `utterance_id` differs from the previous
  final's) or the previous final ends a sentence (`Final.ends_sentence`). Paragraphs therefore never start
  mid-sentence or mid-utterance.
- A new paragraph opens at the first candidate whose `start` is at or after a mark not used yet. If several
  marks pass before a candidate comes (a long silence or monologue), one paragraph opens there, labelled
  with the latest mark passed.
- The first paragraph has no mark, even when its first final starts after a mark; the marks it passed are
  used up.

`ParagraphBuilder` applies these rules one final at a time (the live server's form); `paragraphs()` runs it
over a whole sequence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from streamer.events import Final

DEFAULT_PARAGRAPH_MINUTES = 4.0
SECONDS_PER_MINUTE = 60.0
MARK_EPSILON = 1e-9
"""Slack (in mark units) so that a start exactly on a mark counts as reaching it despite float rounding."""


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A run of finals shown as one paragraph.

    `mark_minutes` is the mark that opened it (``None`` for the first paragraph); `mark_time` is then the
    start of its first final, the time its marker line shows (``None`` when there is no mark).
    """

    mark_minutes: float | None
    mark_time: float | None
    finals: tuple[Final, ...]

    @property
    def start(self) -> float:
        return self.finals[0].start

    @property
    def end(self) -> float:
        return self.finals[-1].end

    @property
    def text(self) -> str:
        """The finals' texts joined with single spaces, punctuation and casing as Whisper gave them."""
        return " ".join(text for f in self.finals if (text := f.text.strip()))


def format_mark_minutes(mark_minutes: float) -> str:
    """``4.0`` -> ``"4"``, ``2.5`` -> ``"2.5"``: the N of ``N minutes mark``."""
    return f"{mark_minutes:g}"


class ParagraphBuilder:
    """Applies the paragraph rules to finals given one at a time, in stream order."""

    def __init__(self, minutes: float = DEFAULT_PARAGRAPH_MINUTES) -> None:
        if not minutes > 0:
            raise ValueError(f"paragraph minutes must be positive, got {minutes!r}")
        self._minutes = float(minutes)
        self._interval = minutes * SECONDS_PER_MINUTE
        self._closed: list[Paragraph] = []
        self._current: list[Final] = []
        self._current_mark: float | None = None
        self._current_mark_time: float | None = None
        self._marks_used = 0
        """Number of marks (counted from the first) already passed by an opened paragraph."""
        self._previous: Final | None = None

    @property
    def minutes(self) -> float:
        return self._minutes

    def _marks_passed(self, time: float) -> int:
        """How many marks lie at or before `time`."""
        return max(0, math.floor(time / self._interval + MARK_EPSILON))

    def _is_candidate(self, final: Final) -> bool:
        previous = self._previous
        return previous is None or final.utterance_id != previous.utterance_id or previous.ends_sentence

    def add(self, final: Final) -> Paragraph | None:
        """Adds `final`; returns the paragraph it opens (holding only `final`), or ``None`` if it continues
        the current one."""
        opened: Paragraph | None = None
        if not self._current:
            self._marks_used = max(self._marks_used, self._marks_passed(final.start))
            opened = Paragraph(None, None, (final,))
        elif self._is_candidate(final):
            passed = self._marks_passed(final.start)
            if passed > self._marks_used:
                self._closed.append(self._snapshot_current())
                self._current = []
                self._marks_used = passed
                self._current_mark = self._mark_minutes(passed)
                self._current_mark_time = final.start
                opened = Paragraph(self._current_mark, self._current_mark_time, (final,))
        self._current.append(final)
        self._previous = final
        return opened

    def extend(self, finals: Iterable[Final]) -> None:
        for final in finals:
            self.add(final)

    def _mark_minutes(self, mark_number: int) -> float:
        """The mark's label in minutes: an `int` when whole (so JSON shows ``4``, not ``4.0``), else the
        product with float noise rounded away (3 * 0.1 -> 0.3)."""
        value = round(mark_number * self._minutes, 9)
        return int(value) if value.is_integer() else value

    def _snapshot_current(self) -> Paragraph:
        return Paragraph(self._current_mark, self._current_mark_time, tuple(self._current))

    @property
    def current(self) -> Paragraph | None:
        """The paragraph still open (it may grow), or ``None`` before the first final."""
        return self._snapshot_current() if self._current else None

    @property
    def closed(self) -> tuple[Paragraph, ...]:
        """The paragraphs that will not change any more."""
        return tuple(self._closed)

    def paragraphs(self) -> list[Paragraph]:
        """All paragraphs so far, the open one last."""
        current = self.current
        return [*self._closed, current] if current is not None else list(self._closed)


def paragraphs(finals: Iterable[Final], minutes: float = DEFAULT_PARAGRAPH_MINUTES) -> list[Paragraph]:
    """Groups `finals` (in stream order) into paragraphs with a break at each `minutes`-minute mark."""
    builder = ParagraphBuilder(minutes)
    builder.extend(finals)
    return builder.paragraphs()
