"""Incremental decoding of one utterance: when to ask for a decode, and what a result commits.

An `UtteranceDecoder` owns the utterance's uncommitted audio window (as times on the stream clock), its
commit policy and its committed words. It never touches audio or models itself: the session slices the audio
and the scheduler runs the decode. Rules:
- While the utterance is open, a partial decode is due once `interval` seconds of new audio arrived and the
  window is at least `min_window` long. It then waits (up to `pause_wait`) until the audio is at a pause
  between words, so the window does not end inside a word. Partial decodes are greedy at temperature 0.
- When the utterance has ended, one final decode of the remaining window commits everything left (beam and
  temperature fallback allowed).
- After each commit, a window longer than `trim_after` is cut at the last committed word (preferably at a
  sentence end), so a speaker who never pauses is committed continuously; past `max_buffer` the hypothesis
  is force-committed up to `force_keep` seconds before the window's end. The cut keeps `trim_overlap`
  seconds of committed audio: word end times are estimates, and a cut exactly at one can clip the onset of
  the next word ("block" heard as "rock").
"""

from __future__ import annotations

from dataclasses import dataclass

from streamer.config import DecodeConfig
from streamer.core.agreement import LocalAgreement
from streamer.core.guards import screen
from streamer.engines.base import DecodeResult
from streamer.events import SENTENCE_END, Word


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """What the next decode of this utterance covers."""

    utterance_id: int
    start: float
    end: float
    final: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one decode result did to the utterance."""

    committed: tuple[Word, ...]
    unstable: tuple[Word, ...]
    loop: bool
    done: bool


class UtteranceDecoder:
    def __init__(self, utterance_id: int, start: float, config: DecodeConfig) -> None:
        self.utterance_id = utterance_id
        self.start = start
        self.window_start = start
        self.end: float | None = None
        self.config = config
        self.agreement = LocalAgreement(config.agreement, config.confident_commit, config.confident_context)
        self.decoded_until = start
        self.in_flight: WindowPlan | None = None
        self.done = False

    @property
    def committed(self) -> list[Word]:
        return self.agreement.committed

    @property
    def ended(self) -> bool:
        return self.end is not None

    def close(self, end: float) -> None:
        self.end = max(end, self.start)

    def plan(self, now: float, at_pause: bool) -> WindowPlan | None:
        """The next decode to run, if one is due at stream time `now` (`at_pause`: the audio there is a pause
        between words)."""
        if self.in_flight is not None or self.done:
            return None
        if self.end is not None:
            return WindowPlan(self.utterance_id, self.window_start, self.end, final=True)
        new_audio = now - self.decoded_until
        waited = new_audio >= self.config.interval + self.config.pause_wait
        enough_new = new_audio >= self.config.interval and (at_pause or waited)
        long_enough = now - self.window_start >= self.config.min_window
        if enough_new and long_enough:
            return WindowPlan(self.utterance_id, self.window_start, now, final=False)
        return None

    def begin(self, plan: WindowPlan) -> None:
        self.in_flight = plan

    def apply(self, result: DecodeResult) -> Outcome:
        plan = self.in_flight
        if plan is None:
            raise RuntimeError("decode result without a decode in flight")
        self.in_flight = None
        self.decoded_until = plan.end
        screened = screen(result.segments, self.config) if result.error is None else None
        words = [_shift(w, plan.start, plan.end) for w in screened.words] if screened else []
        loop = bool(screened and screened.loop)
        if plan.final:
            # A failed final decode keeps what the partials already showed.
            committed = self.agreement.finish(words if screened is not None else self.agreement.unstable)
            self.done = True
            return Outcome(tuple(committed), (), loop, done=True)
        committed = self.agreement.insert(words, plan.end) if screened else []
        if plan.end - self.window_start > self.config.max_buffer:
            committed += self.agreement.force(plan.end - self.config.force_keep)
        self._trim(plan.end)
        return Outcome(tuple(committed), tuple(self.agreement.unstable), loop, done=False)

    def _trim(self, now: float) -> None:
        if now - self.window_start <= self.config.trim_after or not self.committed:
            return
        overlap = self.config.trim_overlap
        # Only a cut that moves the window on: the words it re-hears are no candidates.
        inside = [w for w in self.committed if w.end - overlap > self.window_start]
        if not inside:
            return
        cut = next((w.end for w in reversed(inside) if w.text.endswith(SENTENCE_END)), inside[-1].end)
        self.window_start = cut - overlap


def _shift(word: Word, offset: float, limit: float) -> Word:
    start = min(offset + word.start, limit)
    end = min(max(offset + word.end, start), limit)
    return Word(start, end, word.text.strip(), word.probability)
