"""Frozen values that flow out of the streaming core: words, speech boundaries, partial and final captions.

Times are seconds on the stream's sample clock (samples received / 16 kHz, plus the session's offset when a
session is resumed), never wall-clock times.

Invariants the core guarantees:
- A `Final` never changes once emitted; finals of a stream are emitted in order of `index` and time.
- A `Partial` always extends the committed text of its utterance: ``partial.text.startswith(partial.stable)``
  and ``partial.stable`` is exactly the text of the finals emitted so far for ``partial.utterance_id``.
- Once an utterance has ended, its final decode closes it: the `Final` that decode commits (if any) has
  `ends_utterance` set, and exactly one `Partial` with `complete` set follows it, the last event of that
  utterance (its ``stable`` is the utterance's whole text, its ``unstable`` empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SENTENCE_END = (".", "?", "!", "…")


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its timing; `text` keeps Whisper's punctuation and casing, no spaces."""

    start: float
    end: float
    text: str
    probability: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "probability": round(self.probability, 3),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Word:
        return cls(float(data["start"]), float(data["end"]), str(data["text"]), float(data["probability"]))


def join_words(words: tuple[Word, ...] | list[Word]) -> str:
    """The display text of a run of words."""
    return " ".join(w.text for w in words)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    utterance_id: int
    time: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    utterance_id: int
    time: float


@dataclass(frozen=True, slots=True)
class Partial:
    """The live caption of the current utterance: committed text plus a tail that may still change."""

    utterance_id: int
    start: float
    end: float
    stable: str
    unstable: str
    complete: bool = False
    """The utterance is finalised: nothing more of it follows."""

    @property
    def text(self) -> str:
        if self.stable and self.unstable:
            return f"{self.stable} {self.unstable}"
        return self.stable or self.unstable


@dataclass(frozen=True, slots=True)
class Final:
    """An immutable, committed caption: a run of words of one utterance."""

    index: int
    utterance_id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = field(default_factory=tuple)
    ends_utterance: bool = False
    """Committed by its utterance's final decode: the last final of an utterance that has ended."""

    @property
    def ends_sentence(self) -> bool:
        return self.text.rstrip().endswith(SENTENCE_END)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "utterance_id": self.utterance_id,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "words": [w.to_json() for w in self.words],
            "ends_utterance": self.ends_utterance,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Final:
        return cls(
            index=int(data["index"]),
            utterance_id=int(data["utterance_id"]),
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data["text"]),
            words=tuple(Word.from_json(w) for w in data.get("words", ())),
            ends_utterance=bool(data.get("ends_utterance", False)),
        )


CaptionEvent = SpeechStarted | SpeechEnded | Partial | Final
