"""Streaming speech segmentation: per-frame speech probabilities in, utterance start and end out.

Pure state machine, one instance per stream. Rules (all thresholds in `VadConfig`):
- Idle -> candidate: a frame with probability >= `threshold`.
- Candidate -> speaking: once the candidate holds `min_speech` seconds of speech frames. The utterance
  starts `speech_pad` before its first speech frame (never before the previous utterance's end). A candidate
  that meets `min_silence` of silence first is dropped: short clicks and noise cost no decodes.
- Speaking -> idle: after `min_silence` seconds of frames below `neg_threshold`; the utterance ends
  `speech_pad` after its last speech frame.
- An utterance longer than `max_utterance` seconds ends at its next pause, even a single frame below
  `neg_threshold` (cut there, without padding); one that finds no pause within `SPLIT_GRACE` more seconds is
  cut where it is and a new one opened at the same instant.
- `cut` (a client asking to finalise now) ends an open utterance at once, `speech_pad` after its last speech
  frame (never past the audio heard); speech that goes on is a new utterance, starting no earlier than that
  end. A candidate is kept as it is: too short to be an utterance yet, it becomes the next one if confirmed.
"""

from __future__ import annotations

from enum import Enum

from streamer.config import SAMPLE_RATE, VAD_FRAME_SAMPLES, VadConfig
from streamer.events import SpeechEnded, SpeechStarted

FRAME_SECONDS = VAD_FRAME_SAMPLES / SAMPLE_RATE
SPLIT_GRACE = 5.0
"""Seconds past `max_utterance` to wait for a pause before cutting mid-speech."""


class _State(Enum):
    IDLE = "idle"
    CANDIDATE = "candidate"
    SPEAKING = "speaking"


class VadSegmenter:
    """Turns one probability per frame into `SpeechStarted` / `SpeechEnded` events."""

    def __init__(self, config: VadConfig, start_time: float = 0.0, first_utterance_id: int = 0) -> None:
        self.config = config
        self._origin = start_time
        self._frames = 0  # frames consumed so far
        self._state = _State.IDLE
        self._next_id = first_utterance_id
        self._first_speech = 0  # frame index of the candidate's or utterance's first speech frame
        self._last_speech = 0  # frame index of the latest speech frame
        self._speech_frames = 0
        self._latest_is_speech = False
        self._start_time = start_time
        self._floor = start_time  # an utterance never starts before this (the previous end)
        self._min_speech_frames = max(1, round(config.min_speech / FRAME_SECONDS))
        self._min_silence_frames = max(1, round(config.min_silence / FRAME_SECONDS))

    @property
    def speaking(self) -> bool:
        return self._state is _State.SPEAKING

    @property
    def at_pause(self) -> bool:
        """The latest frame is below the speech threshold: a pause between words, or silence."""
        return not self._latest_is_speech

    @property
    def current_utterance(self) -> int | None:
        return self._next_id - 1 if self.speaking else None

    @property
    def pending_start(self) -> float | None:
        """Where an utterance would start if the speech now being detected is confirmed."""
        if self._state is not _State.CANDIDATE:
            return None
        return max(self._floor, self._time(self._first_speech) - self.config.speech_pad)

    @property
    def time(self) -> float:
        return self._time(self._frames)

    def _time(self, frame: int) -> float:
        return self._origin + frame * FRAME_SECONDS

    def push(self, probability: float) -> list[SpeechStarted | SpeechEnded]:
        frame = self._frames
        self._frames += 1
        is_speech = probability >= self.config.threshold
        self._latest_is_speech = is_speech
        is_silence = probability < self.config.neg_threshold
        if self._state is _State.IDLE:
            if is_speech:
                self._state = _State.CANDIDATE
                self._first_speech = self._last_speech = frame
                self._speech_frames = 1
                return self._maybe_confirm()
            return []
        if is_speech or not is_silence:
            self._last_speech = frame
            self._speech_frames += int(is_speech)
        if self._state is _State.CANDIDATE:
            if frame - self._last_speech >= self._min_silence_frames:
                self._state = _State.IDLE
                return []
            return self._maybe_confirm()
        if frame - self._last_speech >= self._min_silence_frames:
            return [self._end(self._time(self._last_speech + 1) + self.config.speech_pad)]
        length = self._time(self._frames) - self._start_time
        if length >= self.config.max_utterance:
            if is_silence:  # a pause: end here; speech that resumes opens a new utterance
                return [self._end(self._time(frame))]
            if length < self.config.max_utterance + SPLIT_GRACE:
                return []
            now = self._time(self._frames)
            ended = self._end(now)
            self._state = _State.SPEAKING
            self._first_speech = self._last_speech = frame
            return [ended, self._begin(now)]
        return []

    def cut(self) -> list[SpeechStarted | SpeechEnded]:
        """Ends the open utterance now, as a pause would (see the module docstring); [] if none is open."""
        if self._state is not _State.SPEAKING:
            return []
        return [self._end(self._time(self._last_speech + 1) + self.config.speech_pad)]

    def flush(self) -> list[SpeechStarted | SpeechEnded]:
        """End of stream: close an open utterance at the end of its speech; drop a candidate."""
        events = self.cut()
        self._state = _State.IDLE
        return events

    def _maybe_confirm(self) -> list[SpeechStarted | SpeechEnded]:
        if self._speech_frames < self._min_speech_frames:
            return []
        self._state = _State.SPEAKING
        start = max(self._floor, self._time(self._first_speech) - self.config.speech_pad)
        return [self._begin(start)]

    def _begin(self, start: float) -> SpeechStarted:
        self._start_time = start
        event = SpeechStarted(self._next_id, start)
        self._next_id += 1
        return event

    def _end(self, end: float) -> SpeechEnded:
        self._state = _State.IDLE
        end = min(end, self.time)
        self._floor = end
        return SpeechEnded(self._next_id - 1, end)
