"""The sans-I/O wire protocol: parsing and validating client messages, serializing server messages."""

from __future__ import annotations

import json

import pytest

from streamer.core.audio import Encoding
from streamer.events import Final, Partial, SpeechEnded, SpeechStarted, Word
from streamer.protocol import (
    PROTOCOL_VERSION,
    EndMessage,
    FlushMessage,
    InvalidMessage,
    MalformedMessage,
    MessageTooBig,
    SpeakerProtocol,
    StartMessage,
    UnexpectedMessage,
    UnsupportedAudio,
    UnsupportedVersion,
    event_message,
    history_message,
    parse_client_text,
    parse_server_text,
    ready_message,
)


def start(**fields: object) -> str:
    return json.dumps({"type": "start", "version": 1, "sample_rate": 16000, "encoding": "pcm16", **fields})


def test_start_message_parses_with_defaults() -> None:
    message = parse_client_text(start(session="talk-1", title=" Keynote ", language="en"))
    assert isinstance(message, StartMessage)
    assert message.session == "talk-1"
    assert message.title == "Keynote"
    assert message.language == "en"
    assert message.audio.encoding is Encoding.PCM16
    assert message.audio.channels == 1
    assert parse_client_text(json.dumps(message.to_json())) == message


def test_start_without_optional_fields() -> None:
    message = parse_client_text('{"type": "start"}')
    assert isinstance(message, StartMessage)
    assert message.session is None and message.version == PROTOCOL_VERSION
    assert message.audio.sample_rate == 16000


def test_end_and_flush_messages() -> None:
    assert parse_client_text('{"type": "end"}') == EndMessage()
    assert parse_client_text('{"type": "flush"}') == FlushMessage()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", MalformedMessage),
        ("[1, 2]", MalformedMessage),
        ('{"type": "stop"}', UnexpectedMessage),
        ('{"no": "type"}', UnexpectedMessage),
        (start(encoding="mp3"), UnsupportedAudio),
        (start(sample_rate=12345), UnsupportedAudio),
        (start(sample_rate="16000"), UnsupportedAudio),
        (start(channels=6), UnsupportedAudio),
        (start(version=2), UnsupportedVersion),
        (start(session="../etc"), InvalidMessage),
        (start(session=""), InvalidMessage),
        (start(session="x" * 65), InvalidMessage),
        (start(session=7), InvalidMessage),
        (start(title=""), InvalidMessage),
        (start(language=["en"]), InvalidMessage),
    ],
)
def test_bad_client_messages(text: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        parse_client_text(text)
    assert info.value.code == error.code  # type: ignore[attr-defined]
    assert str(info.value)


def test_speaker_state_machine_order() -> None:
    proto = SpeakerProtocol(max_frame_bytes=8)
    with pytest.raises(UnexpectedMessage):
        proto.receive_audio(b"\x00\x00")
    with pytest.raises(UnexpectedMessage):
        proto.receive_text('{"type": "end"}')
    with pytest.raises(UnexpectedMessage):
        proto.receive_text('{"type": "flush"}')
    assert isinstance(proto.receive_text(start()), StartMessage)
    assert proto.receive_text('{"type": "flush"}') == FlushMessage()  # any number, among the audio
    assert proto.receive_text('{"type": "flush"}') == FlushMessage()
    with pytest.raises(UnexpectedMessage):
        proto.receive_text(start())
    assert proto.receive_audio(b"\x01\x02") == b"\x01\x02"
    with pytest.raises(MessageTooBig):
        proto.receive_audio(b"\x00" * 9)
    assert proto.receive_text('{"type": "end"}') == EndMessage()
    with pytest.raises(UnexpectedMessage):
        proto.receive_audio(b"\x00\x00")
    with pytest.raises(UnexpectedMessage):
        proto.receive_text('{"type": "flush"}')


def test_events_serialize() -> None:
    final = Final(3, 1, 1.2345, 2.5, "Hello there.", (Word(1.2345, 1.6, "Hello"), Word(1.7, 2.5, "there.")))
    data = parse_server_text(event_message(final))
    assert data["type"] == "final"
    assert Final.from_json(data).text == "Hello there."
    assert data["start"] == 1.234 or data["start"] == 1.235
    partial = parse_server_text(event_message(Partial(1, 1.0, 2.0, "Hello", "there")))
    assert partial == {
        "type": "partial",
        "utterance_id": 1,
        "start": 1.0,
        "end": 2.0,
        "stable": "Hello",
        "unstable": "there",
        "complete": False,
    }
    closing = Final(4, 1, 2.5, 3.0, "Bye.", (Word(2.5, 3.0, "Bye."),), ends_utterance=True)
    assert Final.from_json(parse_server_text(event_message(closing))) == closing
    assert parse_server_text(event_message(Partial(1, 1.0, 3.0, "Hello there. Bye.", "", True)))["complete"]
    assert parse_server_text(event_message(SpeechStarted(2, 3.0)))["type"] == "speech_started"
    assert parse_server_text(event_message(SpeechEnded(2, 4.0)))["type"] == "speech_ended"


def test_ready_and_history() -> None:
    ready = parse_server_text(ready_message("s1", True, 12.3456))
    assert ready == {"type": "ready", "version": 1, "session": "s1", "resumed": True, "time": 12.346}
    finals = [Final(i, i, i, i + 0.5, f"w{i}") for i in range(3)]
    history = parse_server_text(history_message("s1", finals[1:], total=3, live=False))
    assert history["total"] == 3 and [f["index"] for f in history["finals"]] == [1, 2]


def test_parse_server_text_rejects_untyped() -> None:
    with pytest.raises(MalformedMessage):
        parse_server_text('{"x": 1}')
