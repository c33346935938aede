"""One stream's pipeline: 16 kHz audio -> VAD frames -> utterances -> decode requests -> captions.

`StreamSession` is synchronous and does no I/O. The caller (the CLI's file runner, or the server) feeds audio,
takes the decode requests the session wants run (at most one in flight per stream, so results apply in
order), runs them on a shared `Transcriber`, and hands the results back. Every call returns the caption
events it produced, in order.

Finals of one stream are strictly ordered: an ended utterance is finalised before any later utterance
commits, because final decodes of ended utterances always go first. An utterance ends at a pause, at
`cut` (a client asking for its captions now: the final decode is then due at once, and the audio that
follows opens a new utterance) or at `finish`. Its final decode closes it: the final it commits (if any)
has `ends_utterance` set, and a `Partial` with `complete` set follows, its whole text as `stable`.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from streamer.config import SAMPLE_RATE, VAD_FRAME_SAMPLES, StreamConfig
from streamer.core.audio import Framer
from streamer.core.decoder import Outcome, UtteranceDecoder, WindowPlan
from streamer.core.vad import VadSegmenter
from streamer.engines.base import DecodeRequest, DecodeResult, SpeechDetectorStream
from streamer.events import CaptionEvent, Final, Partial, SpeechEnded, SpeechStarted, Word, join_words

logger = logging.getLogger(__name__)

PREROLL_SECONDS = 1.0
"""Audio kept before the current time while idle, so an utterance can start `speech_pad` earlier."""
MAX_OPEN_UTTERANCES = 8
"""Ended utterances waiting for their final decode; past this the session is hopelessly behind."""


class StreamSession:
    def __init__(
        self,
        stream_id: str,
        config: StreamConfig,
        vad: SpeechDetectorStream,
        *,
        start_time: float = 0.0,
        first_index: int = 0,
        first_utterance_id: int = 0,
        context: str = "",
    ) -> None:
        self.stream_id = stream_id
        self.config = config
        self._vad = vad
        self._framer = Framer(VAD_FRAME_SAMPLES)
        self._segmenter = VadSegmenter(config.vad, start_time, first_utterance_id)
        self._origin = start_time  # stream time of self._audio[0]
        self._audio = np.zeros(0, dtype=np.float32)
        self._received = 0  # samples received since start_time
        self._decoders: deque[UtteranceDecoder] = deque()
        self._next_index = first_index
        self._next_request = 0
        self._context = context  # committed text before this session started (a resumed transcript)
        self._context_words: deque[Word] = deque(maxlen=256)
        self._in_flight: tuple[int, UtteranceDecoder] | None = None
        self._last_partial: Partial | None = None
        self._finished = False
        self.start_time = start_time

    # -- audio in -------------------------------------------------------------------------------------------

    @property
    def time(self) -> float:
        """Stream time of the audio received so far."""
        return self.start_time + self._received / SAMPLE_RATE

    @property
    def vad_time(self) -> float:
        return self._segmenter.time

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def idle(self) -> bool:
        """Finished and nothing left to decode."""
        return self._finished and not self._decoders and self._in_flight is None

    @property
    def backlog(self) -> float:
        """Seconds of speech audio not yet decoded (how far captions lag the audio)."""
        if not self._decoders:
            return 0.0
        return max(0.0, self.vad_time - self._decoders[0].decoded_until)

    def feed(self, samples: np.ndarray) -> list[CaptionEvent]:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._audio = np.concatenate([self._audio, samples])
        self._received += len(samples)
        frames = self._framer.push(samples)
        probs = self._probabilities(frames)
        events: list[CaptionEvent] = []
        for probability in probs:
            events.extend(self._on_vad(self._segmenter.push(float(probability))))
        self._drop_old_audio()
        return events

    def finish(self) -> list[CaptionEvent]:
        """End of stream: close the open utterance; its final decode is then due."""
        if self._finished:
            return []
        self._finished = True
        events: list[CaptionEvent] = []
        last = self._framer.flush()
        if last is not None:
            events.extend(self._on_vad(self._segmenter.push(self._vad.probability(last))))
        events.extend(self._on_vad(self._segmenter.flush()))
        return events

    def cut(self) -> list[CaptionEvent]:
        """Ends the open utterance at the audio heard so far; its final decode is then due at once.

        Without an open utterance nothing happens (speech the VAD has not confirmed yet stays pending).
        """
        if self._finished:
            return []
        return self._on_vad(self._segmenter.cut())

    def _probabilities(self, frames: list[np.ndarray]) -> list[float]:
        batch = getattr(self._vad, "probabilities", None)
        if batch is not None and len(frames) > 1:
            return [float(p) for p in batch(frames)]
        return [self._vad.probability(f) for f in frames]

    def _on_vad(self, vad_events: list[SpeechStarted | SpeechEnded]) -> list[CaptionEvent]:
        for event in vad_events:
            if isinstance(event, SpeechStarted):
                self._decoders.append(UtteranceDecoder(event.utterance_id, event.time, self.config.decode))
            else:
                self._decoders[-1].close(event.time)
        if len(self._decoders) > MAX_OPEN_UTTERANCES:
            logger.warning("[%s] %d utterances wait for decoding", self.stream_id, len(self._decoders))
        return list(vad_events)

    def _drop_old_audio(self) -> None:
        keep_from = self.time - PREROLL_SECONDS
        pending = self._segmenter.pending_start
        if pending is not None:
            keep_from = min(keep_from, pending)
        if self._decoders:
            keep_from = min(keep_from, min(d.window_start for d in self._decoders))
        drop = int((keep_from - self._origin) * SAMPLE_RATE)
        if drop > 0:
            self._audio = self._audio[drop:]
            self._origin += drop / SAMPLE_RATE

    def _slice(self, start: float, end: float) -> np.ndarray:
        a = max(0, int(round((start - self._origin) * SAMPLE_RATE)))
        b = max(a, int(round((end - self._origin) * SAMPLE_RATE)))
        return self._audio[a:b].copy()

    # -- decoding -------------------------------------------------------------------------------------------

    def next_request(self) -> DecodeRequest | None:
        """The decode this stream wants run now, if any; at most one is in flight at a time."""
        if self._in_flight is not None:
            return None
        at_pause = self._segmenter.at_pause
        for decoder in self._decoders:
            plan = decoder.plan(self.vad_time, at_pause)
            if plan is not None:
                return self._request(decoder, plan)
            if not decoder.ended:
                return None  # only the oldest unfinished utterance may decode
        return None

    def _request(self, decoder: UtteranceDecoder, plan: WindowPlan) -> DecodeRequest:
        decoder.begin(plan)
        request_id = self._next_request
        self._next_request += 1
        self._in_flight = (request_id, decoder)
        cfg = self.config.decode
        return DecodeRequest(
            stream_id=self.stream_id,
            request_id=request_id,
            audio=self._slice(plan.start, plan.end),
            prompt=self._prompt(plan.start),
            language=cfg.language,
            final=plan.final,
            beam_size=cfg.beam_size if plan.final else 1,
            temperatures=cfg.final_temperatures if plan.final else (0.0,),
        )

    def _prompt(self, before: float) -> str:
        words = [w.text for w in self._context_words if w.end <= before + 1e-6]
        text = " ".join([self._context, *words]).strip() if words else self._context
        limit = self.config.decode.prompt_chars
        if len(text) <= limit:
            return text
        cut = text[-limit:]
        return cut[cut.find(" ") + 1 :] if " " in cut else cut

    def on_result(self, result: DecodeResult) -> list[CaptionEvent]:
        if self._in_flight is None or self._in_flight[0] != result.request_id:
            raise RuntimeError(f"unexpected decode result {result.request_id} for stream {self.stream_id}")
        decoder = self._in_flight[1]
        self._in_flight = None
        if result.error is not None:
            logger.warning("[%s] decode failed: %s", self.stream_id, result.error)
        outcome = decoder.apply(result)
        if outcome.loop:
            logger.info("[%s] repetition loop cut; prompt reset", self.stream_id)
            self._context = ""
            self._context_words.clear()
        events = self._events(decoder, outcome)
        if outcome.done:
            self._decoders.remove(decoder)
        return events

    def _events(self, decoder: UtteranceDecoder, outcome: Outcome) -> list[CaptionEvent]:
        events: list[CaptionEvent] = []
        if outcome.committed:
            words = outcome.committed
            self._context_words.extend(words)
            events.append(
                Final(
                    index=self._next_index,
                    utterance_id=decoder.utterance_id,
                    start=words[0].start,
                    end=words[-1].end,
                    text=join_words(words),
                    words=words,
                    ends_utterance=outcome.done,
                )
            )
            self._next_index += 1
        if outcome.committed or outcome.unstable or outcome.done:
            committed = decoder.committed
            tail = outcome.unstable
            partial = Partial(
                utterance_id=decoder.utterance_id,
                start=committed[0].start if committed else (tail[0].start if tail else decoder.start),
                end=tail[-1].end if tail else (committed[-1].end if committed else decoder.start),
                stable=join_words(committed),
                unstable=join_words(tail),
                complete=outcome.done,
            )
            if partial != self._last_partial:  # an unchanged caption is not sent again
                events.append(partial)
                self._last_partial = partial
        return events
