"""Deepgram's live transcription API: websocket ``/v1/listen?encoding=linear16&sample_rate=16000&...``.

Query: ``encoding`` (``linear16``; Streamer also takes ``float32``), ``sample_rate``, ``channels`` (1 or 2,
mixed to mono: results are for channel 0), ``language``, ``interim_results``, ``vad_events``,
``utterance_end_ms`` (any value turns ``UtteranceEnd`` messages on). ``endpointing``, ``model``,
``smart_format``, ``punctuate`` are accepted and ignored (Streamer's VAD and Whisper's punctuation decide).
Auth: ``Authorization: Token <key>`` (or ``Bearer``, or ``?token=``) carries the speaker token.

Client messages: binary audio; ``{"type": "KeepAlive"}`` (ignored); ``{"type": "Finalize"}``: the open
utterance is cut where the audio received ends and finalised at once (`CompatSession.cut`), the stream goes
on; ``{"type": "CloseStream"}``: everything is finalised, the last ``Results`` sent, then ``Metadata``, then
close 1000.
Server messages: ``Results`` (a final: ``is_final`` true; a partial with ``interim_results=true``: its
not-yet-final tail, ``is_final`` false), ``SpeechStarted`` (``vad_events=true``), ``UtteranceEnd`` and, at
the end, ``Metadata``.

``speech_final`` is true on exactly one ``Results`` per utterance, once it has ended (at a pause, by
``Finalize``, at the end): the final its final decode commits (Streamer's ``ends_utterance``), or, when that
decode adds nothing, an empty final sent on the utterance's ``complete`` partial. A ``Finalize`` is answered
by one ``from_finalize`` ``Results``: that same closing one of the newest utterance still being decoded when
it came (``Finalize`` messages before it share it), or, with none, an empty final sent at once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from streamer.core.audio import AudioFormat
from streamer.errors import AudioFormatError, StreamerError
from streamer.protocol import MalformedMessage
from streamer.server.auth import check_speaker, query_params, request_token
from streamer.server.boundary import refuse
from streamer.server.compat.session import SessionRequest, Translator, open_session, serve_stream
from streamer.server.context import ServerContext

logger = logging.getLogger(__name__)

DEEPGRAM_PATH = "/v1/listen"
ENCODINGS = {"linear16": "pcm16", "float32": "float32"}
"""Deepgram's encoding names -> Streamer's."""
TRUE = ("true", "1", "yes")


@dataclass(frozen=True, slots=True)
class ListenOptions:
    audio: AudioFormat
    language: str | None = None
    interim_results: bool = False
    vad_events: bool = False
    utterance_end: bool = False


def parse_options(query: dict[str, str]) -> ListenOptions:
    """The ``/v1/listen`` query; raises `AudioFormatError`."""
    encoding = query.get("encoding", "linear16").lower()
    if encoding not in ENCODINGS:
        raise AudioFormatError(f"unsupported encoding {encoding!r}; use linear16 (raw PCM16) or float32")
    try:
        rate, channels = int(query.get("sample_rate", "16000")), int(query.get("channels", "1"))
    except ValueError:
        raise AudioFormatError("sample_rate and channels must be integers") from None
    audio = AudioFormat.parse(rate, ENCODINGS[encoding], channels)
    language = query.get("language", "").split("-")[0].lower() or None
    return ListenOptions(
        audio=audio,
        language=None if language == "multi" else language,
        interim_results=query.get("interim_results", "").lower() in TRUE,
        vad_events=query.get("vad_events", "").lower() in TRUE,
        utterance_end=bool(query.get("utterance_end_ms")),
    )


def deepgram_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("token "):
        return header[6:].strip() or None
    return request_token(request)


def _words(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "word": w["text"].strip(".,?!;:\"'()…").lower() or w["text"],
            "start": w["start"],
            "end": w["end"],
            "confidence": w["probability"],
            "punctuated_word": w["text"],
        }
        for w in words
    ]


@dataclass(slots=True)
class ResultsView:
    """Streamer messages -> Deepgram messages (per connection)."""

    options: ListenOptions
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    undecided: set[int] = field(default_factory=set)
    """Utterances started and not yet complete (their last final still to come)."""
    answered: set[int] = field(default_factory=set)
    """Utterances whose ``speech_final`` went out on a final with text."""
    finalizing: set[int] = field(default_factory=set)
    """Utterances whose closing ``Results`` answers a ``Finalize``."""
    last_word_end: float = 0.0
    duration: float = 0.0

    def __call__(self, message: dict[str, Any]) -> Iterable[str]:
        kind = message["type"]
        if kind == "final":
            utterance = message["utterance_id"]
            self.last_word_end = max(self.last_word_end, message["end"])
            closing = bool(message.get("ends_utterance"))
            if closing:
                self.answered.add(utterance)
            words = _words(message["words"])
            return (
                self.results(
                    message["start"],
                    message["end"],
                    message["text"],
                    words,
                    is_final=True,
                    speech_final=closing,
                    from_finalize=closing and utterance in self.finalizing,
                ),
            )
        if kind == "partial" and message.get("complete"):
            return self._complete(message["utterance_id"], message["end"])
        if kind == "partial" and self.options.interim_results and message["unstable"]:
            return (self.results(message["start"], message["end"], message["unstable"], [], False, False),)
        if kind == "speech_started":
            self.undecided.add(message["utterance_id"])
            if self.options.vad_events:
                return (self.encode({"type": "SpeechStarted", "channel": [0], "timestamp": message["time"]}),)
        if kind == "speech_ended" and self.options.utterance_end:
            end = self.last_word_end or message["time"]
            return (self.encode({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": end}),)
        if kind == "error":
            return (
                self.encode({"type": "Error", "description": message["message"], "message": message["code"]}),
            )
        return ()

    def _complete(self, utterance: int, end: float) -> Iterable[str]:
        """The utterance is finalised: its ``speech_final`` goes out now unless its last final carried it."""
        self.undecided.discard(utterance)
        from_finalize = utterance in self.finalizing
        self.finalizing.discard(utterance)
        if utterance in self.answered:
            self.answered.discard(utterance)
            return ()
        return (self.results(end, end, "", [], True, True, from_finalize),)

    def finalize(self) -> str | None:
        """A ``Finalize`` came (after the cut): marks the utterance whose closing ``Results`` answers it.

        Returns the answer to send at once when nothing is left to finalise.
        """
        if self.undecided:
            self.finalizing.add(max(self.undecided))
            return None
        return self.results(self.last_word_end, self.last_word_end, "", [], True, False, True)

    def results(
        self,
        start: float,
        end: float,
        text: str,
        words: list[dict[str, Any]],
        is_final: bool,
        speech_final: bool,
        from_finalize: bool = False,
    ) -> str:
        confidence = min((w["confidence"] for w in words), default=0.0 if not is_final else 1.0)
        return self.encode(
            {
                "type": "Results",
                "channel_index": [0, 1],
                "duration": round(end - start, 3),
                "start": round(start, 3),
                "is_final": is_final,
                "speech_final": speech_final,
                "from_finalize": from_finalize,
                "channel": {"alternatives": [{"transcript": text, "confidence": confidence, "words": words}]},
                "metadata": {
                    "request_id": self.request_id,
                    "model_info": {"name": "streamer", "version": "1", "arch": "whisper"},
                    "model_uuid": self.request_id,
                },
            }
        )

    def metadata(self, duration: float) -> str:
        return self.encode(
            {
                "type": "Metadata",
                "transaction_key": "deprecated",
                "request_id": self.request_id,
                "sha256": "",
                "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "duration": round(duration, 3),
                "channels": 1,
                "models": [self.request_id],
                "model_info": {self.request_id: {"name": "streamer", "version": "1", "arch": "whisper"}},
            }
        )

    @staticmethod
    def encode(message: dict[str, Any]) -> str:
        return json.dumps(message, ensure_ascii=False)


def control_type(text: str) -> str:
    """The ``type`` of a control message; raises `MalformedMessage`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise MalformedMessage("control messages must be JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise MalformedMessage("a control message needs a type")
    return str(data["type"])


async def handle_deepgram(ws: ServerConnection, ctx: ServerContext) -> None:
    try:
        assert ws.request is not None
        check_speaker(ctx.config, deepgram_token(ws.request))
        options = parse_options(query_params(ws.request.path))
        view = ResultsView(options)
        speaker = Translator(ws, view.request_id, ctx.config.viewer_queue, ctx, view)
        request = SessionRequest("deepgram-" + view.request_id[:8], options.audio, options.language)
        compat = await open_session(ctx, request, speaker)
    except ConnectionClosed:
        return
    except StreamerError as exc:
        await refuse(ws, exc, ctx.metrics)
        return

    async def on_message(message: str | bytes) -> bool:
        if isinstance(message, bytes):
            if message:  # Deepgram's old clients close with an empty frame
                await compat.feed(message)
                return False
            return True
        kind = control_type(message)
        if kind == "CloseStream":
            return True
        if kind == "Finalize":
            compat.cut()  # its speech_ended reaches the view before the next line
            answer = view.finalize()
            if answer is not None:
                speaker.send_now(answer)
        elif kind != "KeepAlive":
            raise MalformedMessage(f"unknown control message type {kind!r}")
        return False

    await serve_stream(
        ws,
        ctx,
        compat,
        on_message,
        on_error=lambda reason, code: speaker.send_now(
            view.encode({"type": "Error", "description": reason, "message": code})
        ),
        on_close=lambda: speaker.send_now(view.metadata(compat.session.time)),
    )
