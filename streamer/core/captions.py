"""Cutting the word stream of finals into subtitle cues for the SRT and WebVTT exports.

Rules, with the limits from `TranscriptConfig` (`caption_chars`, `caption_lines`, `caption_max_duration`):

- A line holds at most `caption_chars` characters and is split only between words; a word longer than that
  stands alone on its line. A cue holds at most `caption_lines` lines and lasts at most
  `caption_max_duration` seconds (first word's start to last word's end); a single word that is longer
  still makes a cue of its own.
- An utterance change always ends a cue. Inside an utterance, when the words up to the next utterance do
  not fit in one cue, the cue ends at the latest sentence end that fits, else at the latest pause of at
  least `PAUSE_GAP` seconds, else at the latest clause mark (``,`` ``;`` ``:``) that leaves the cue at least
  half as long as it could be, else where the limits stop it.
- The lines of a cue are as few as the limits allow and as even as possible (least sum of squared lengths).
- Cue times come from the word times. A final without words is split on whitespace and its span is shared
  out among those words in proportion to their position in the text.
- Every word of every final appears in exactly one cue, in order; texts keep Whisper's punctuation/casing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streamer.config import TranscriptConfig
from streamer.events import SENTENCE_END, Final

PAUSE_GAP = 0.5
"""Seconds of silence between two words that make a good place to end a cue."""
CLAUSE_END = (",", ";", ":", "—", "–")
MIN_CLAUSE_FILL = 0.5
"""A cue ends at a clause mark only if that keeps at least this share of the characters that would fit."""
CLOSING_QUOTES = "\"')]}»”’"
"""Stripped before looking for sentence or clause punctuation: ``"Stop."`` ends a sentence."""

_TIER_NONE = 0
_TIER_CLAUSE = 1
_TIER_PAUSE = 2
_TIER_SENTENCE = 3


@dataclass(frozen=True, slots=True)
class Cue:
    """One subtitle: its 1-based position, its times in seconds and its text lines (no line is empty)."""

    index: int
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True, slots=True)
class _Token:
    start: float
    end: float
    text: str
    utterance_id: int


def _final_tokens(final: Final) -> list[_Token]:
    words = [(w.start, w.end, text) for w in final.words if (text := w.text.strip())]
    if words:
        return [_Token(start, end, text, final.utterance_id) for start, end, text in words]
    # No word timings: spread the final's span over its whitespace-separated words by character position.
    texts = final.text.split()
    total = len(" ".join(texts))
    span = final.end - final.start
    tokens: list[_Token] = []
    offset = 0
    for text in texts:
        start = final.start + span * offset / total
        offset += len(text)
        tokens.append(_Token(start, final.start + span * offset / total, text, final.utterance_id))
        offset += 1
    return tokens


def _tokens(finals: Iterable[Final]) -> list[_Token]:
    return [token for final in finals for token in _final_tokens(final)]


def _segments(tokens: list[_Token]) -> list[list[_Token]]:
    """Splits the tokens at every utterance change."""
    segments: list[list[_Token]] = []
    for token in tokens:
        if segments and segments[-1][-1].utterance_id == token.utterance_id:
            segments[-1].append(token)
        else:
            segments.append([token])
    return segments


def _break_tier(token: _Token, following: _Token) -> int:
    """How good a place the gap between `token` and `following` is to end a cue."""
    text = token.text.rstrip(CLOSING_QUOTES)
    if text.endswith(SENTENCE_END):
        return _TIER_SENTENCE
    if following.start - token.end >= PAUSE_GAP:
        return _TIER_PAUSE
    if text.endswith(CLAUSE_END):
        return _TIER_CLAUSE
    return _TIER_NONE


class _GreedyLayout:
    """Greedy line filling, which gives the least number of lines; grows one word at a time."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.lines = 0
        self.current = 0

    def add(self, word_length: int) -> None:
        if self.lines and self.current + 1 + word_length <= self.max_chars:
            self.current += 1 + word_length
        else:
            self.lines += 1
            self.current = word_length


def _balanced_lines(words: Sequence[str], line_count: int, max_chars: int) -> tuple[str, ...]:
    """Splits `words` into exactly `line_count` valid lines with the least sum of squared line lengths.

    A line is valid when it fits in `max_chars` or is a single word. `line_count` must be achievable (the
    greedy count is).
    """
    n = len(words)
    inf = float("inf")
    # best[l][i]: least cost of putting words[:i] on l lines; cut[l][i]: where the l-th line starts then.
    best = [[inf] * (n + 1) for _ in range(line_count + 1)]
    cut = [[0] * (n + 1) for _ in range(line_count + 1)]
    best[0][0] = 0.0
    for lines in range(1, line_count + 1):
        for end in range(1, n + 1):
            length = -1
            for begin in range(end - 1, -1, -1):
                length += len(words[begin]) + 1
                if length > max_chars and begin < end - 1:
                    break
                cost = best[lines - 1][begin] + length * length
                if cost < best[lines][end]:
                    best[lines][end] = cost
                    cut[lines][end] = begin
    result: list[str] = []
    end = n
    for lines in range(line_count, 0, -1):
        begin = cut[lines][end]
        result.append(" ".join(words[begin:end]))
        end = begin
    return tuple(reversed(result))


class _Cutter:
    """Cuts one utterance's tokens into cue-sized runs."""

    def __init__(self, config: TranscriptConfig) -> None:
        self.max_chars = config.caption_chars
        self.max_lines = config.caption_lines
        self.max_duration = config.caption_max_duration

    def _last_fitting(self, tokens: list[_Token], first: int) -> int:
        """The index of the last token that fits in a cue starting at `first` (at least `first`)."""
        layout = _GreedyLayout(self.max_chars)
        layout.add(len(tokens[first].text))
        last = first
        for index in range(first + 1, len(tokens)):
            layout.add(len(tokens[index].text))
            too_long = tokens[index].end - tokens[first].start > self.max_duration
            if layout.lines > self.max_lines or too_long:
                break
            last = index
        return last

    def _choose_end(self, tokens: list[_Token], first: int, last: int) -> int:
        """Where to end a cue that cannot reach the end of the utterance: an index in ``[first, last]``."""
        tiers = [_break_tier(tokens[k], tokens[k + 1]) for k in range(first, last + 1)]
        for tier in (_TIER_SENTENCE, _TIER_PAUSE):
            for offset in range(len(tiers) - 1, -1, -1):
                if tiers[offset] == tier:
                    return first + offset
        full = sum(len(t.text) + 1 for t in tokens[first : last + 1])
        filled = 0
        clause_end: int | None = None
        for offset, tier in enumerate(tiers):
            filled += len(tokens[first + offset].text) + 1
            if tier == _TIER_CLAUSE and filled >= MIN_CLAUSE_FILL * full:
                clause_end = first + offset
        return clause_end if clause_end is not None else last

    def runs(self, tokens: list[_Token]) -> list[list[_Token]]:
        runs: list[list[_Token]] = []
        first = 0
        while first < len(tokens):
            last = self._last_fitting(tokens, first)
            if last < len(tokens) - 1:
                last = self._choose_end(tokens, first, last)
            runs.append(tokens[first : last + 1])
            first = last + 1
        return runs

    def lines(self, run: list[_Token]) -> tuple[str, ...]:
        layout = _GreedyLayout(self.max_chars)
        for token in run:
            layout.add(len(token.text))
        return _balanced_lines([t.text for t in run], layout.lines, self.max_chars)


def cues(finals: Iterable[Final], config: TranscriptConfig | None = None) -> list[Cue]:
    """Cuts `finals` (in stream order) into numbered cues within `config`'s caption limits.

    Cue times never go backwards: a cue starts no earlier than the previous cue ends, and ends no earlier
    than it starts.
    """
    cutter = _Cutter(config or TranscriptConfig())
    result: list[Cue] = []
    previous_end = 0.0
    for segment in _segments(_tokens(finals)):
        for run in cutter.runs(segment):
            start = max(run[0].start, previous_end) if result else run[0].start
            end = max(run[-1].end, start)
            result.append(Cue(len(result) + 1, start, end, cutter.lines(run)))
            previous_end = end
    return result
