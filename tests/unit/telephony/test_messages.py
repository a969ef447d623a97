"""Parsing Twilio Media Streams frames exactly as Twilio sends them, and building our replies."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app.telephony.messages import (
    MAX_MEDIA_BYTES,
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
    StopEvent,
    clear_message,
    mark_message,
    media_message,
    parse_inbound,
)

ACCOUNT_SID = "AC" + "a" * 32
CALL_SID = "CA" + "b" * 32
STREAM_SID = "MZ" + "c" * 32
FRAME = bytes(range(96, 256))  # 160 bytes: one 20 ms frame of mu-law
FRAME_B64 = base64.b64encode(FRAME).decode()

# Frames as Twilio writes them: numbers as strings, streamSid after the payload object.
CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": ACCOUNT_SID,
            "streamSid": STREAM_SID,
            "callSid": CALL_SID,
            "tracks": ["inbound"],
            "customParameters": {"agentId": "agent-7", "from": "+15551234567"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": STREAM_SID,
    }
)
MEDIA = json.dumps(
    {
        "event": "media",
        "sequenceNumber": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": FRAME_B64},
        "streamSid": STREAM_SID,
    }
)
DTMF = json.dumps(
    {
        "event": "dtmf",
        "streamSid": STREAM_SID,
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
)
MARK = json.dumps(
    {"event": "mark", "sequenceNumber": "4", "streamSid": STREAM_SID, "mark": {"name": "turn-3"}}
)
STOP = json.dumps(
    {
        "event": "stop",
        "sequenceNumber": "6",
        "streamSid": STREAM_SID,
        "stop": {"accountSid": ACCOUNT_SID, "callSid": CALL_SID},
    }
)


def _with(raw: str, path: tuple[str, ...], value: Any) -> str:
    """`raw` with the field at `path` set to `value` (or removed when `value` is ...)."""
    data = json.loads(raw)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(data)


def _media_with_payload(payload: str) -> str:
    return _with(MEDIA, ("media", "payload"), payload)


def _error(raw: str | bytes) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_inbound(raw)
    return str(info.value)


def test_connected() -> None:
    event = parse_inbound(CONNECTED)
    assert event == ConnectedEvent(event="connected", protocol="Call", version="1.0.0")


def test_start() -> None:
    event = parse_inbound(START)
    assert isinstance(event, StartEvent)
    assert event.sequenceNumber == 1
    assert event.streamSid == STREAM_SID
    assert event.start.accountSid == ACCOUNT_SID
    assert event.start.callSid == CALL_SID
    assert event.start.streamSid == STREAM_SID
    assert event.start.tracks == ["inbound"]
    assert event.start.customParameters == {"agentId": "agent-7", "from": "+15551234567"}
    assert event.start.mediaFormat.encoding == "audio/x-mulaw"
    assert event.start.mediaFormat.sampleRate == 8000
    assert event.start.mediaFormat.channels == 1


def test_start_without_custom_parameters() -> None:
    event = parse_inbound(_with(START, ("start", "customParameters"), ...))
    assert isinstance(event, StartEvent)
    assert event.start.customParameters == {}


def test_media() -> None:
    event = parse_inbound(MEDIA)
    assert isinstance(event, MediaEvent)
    assert event.sequenceNumber == 3
    assert event.streamSid == STREAM_SID
    assert event.media.track == "inbound"
    assert event.media.chunk == 1
    assert event.media.timestamp == 5
    assert event.media.payload == FRAME_B64
    assert event.audio == FRAME
    assert event.media.audio == FRAME


def test_media_accepts_bytes_and_int_numbers() -> None:
    raw = _with(_with(MEDIA, ("sequenceNumber",), 3), ("media", "timestamp"), 5)
    event = parse_inbound(raw.encode())
    assert isinstance(event, MediaEvent)
    assert (event.sequenceNumber, event.media.timestamp) == (3, 5)


def test_media_size_bounds() -> None:
    for size in (1, 160, MAX_MEDIA_BYTES):
        audio = b"\x7f" * size
        event = parse_inbound(_media_with_payload(base64.b64encode(audio).decode()))
        assert isinstance(event, MediaEvent)
        assert event.audio == audio


def test_dtmf() -> None:
    event = parse_inbound(DTMF)
    assert isinstance(event, DtmfEvent)
    assert event.sequenceNumber == 5
    assert event.streamSid == STREAM_SID
    assert (event.dtmf.track, event.dtmf.digit) == ("inbound_track", "1")


def test_mark() -> None:
    event = parse_inbound(MARK)
    assert isinstance(event, MarkEvent)
    assert event.sequenceNumber == 4
    assert event.streamSid == STREAM_SID
    assert event.mark.name == "turn-3"


def test_stop() -> None:
    event = parse_inbound(STOP)
    assert isinstance(event, StopEvent)
    assert event.sequenceNumber == 6
    assert event.streamSid == STREAM_SID
    assert (event.stop.accountSid, event.stop.callSid) == (ACCOUNT_SID, CALL_SID)


def test_unknown_fields_are_ignored() -> None:
    raw = _with(_with(MEDIA, ("extra",), {"x": 1}), ("media", "newField"), "y")
    assert isinstance(parse_inbound(raw), MediaEvent)


def test_events_are_immutable() -> None:
    event = parse_inbound(MARK)
    with pytest.raises(ValueError):
        event.streamSid = "MZ-other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"event": "media", ', "not valid JSON"),
        ("", "not valid JSON"),
        (b"\x80\x81{}", "not UTF-8"),
        ("[1, 2]", "must be a JSON object, got an array"),
        ('"media"', "must be a JSON object, got a string"),
        ("null", "must be a JSON object, got null"),
        ("42", "must be a JSON object, got a number"),
        ('{"streamSid": "MZ1"}', "no 'event' field"),
        ('{"event": "dance"}', "unknown event 'dance'"),
        ('{"event": 7}', "unknown event 7"),
    ],
)
def test_framing_errors(raw: str | bytes, expected: str) -> None:
    assert expected in _error(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_with(START, ("start", "callSid"), ...), "'start.callSid' is missing"),
        (_with(START, ("streamSid",), ...), "'streamSid' is missing"),
        (_with(START, ("start", "mediaFormat"), ...), "'start.mediaFormat' is missing"),
        (_with(START, ("start", "tracks"), "inbound"), "'start.tracks'"),
        (_with(START, ("start", "customParameters"), {"n": 1}), "'start.customParameters.n'"),
        (_with(MEDIA, ("sequenceNumber",), "three"), "'sequenceNumber'"),
        (_with(MEDIA, ("sequenceNumber",), "-1"), "'sequenceNumber'"),
        (_with(MEDIA, ("media", "timestamp"), ...), "'media.timestamp' is missing"),
        (_with(MEDIA, ("media",), ...), "'media' is missing"),
        (_with(MEDIA, ("streamSid",), ""), "'streamSid'"),
        (_with(DTMF, ("dtmf", "digit"), ...), "'dtmf.digit' is missing"),
        (_with(MARK, ("mark", "name"), ...), "'mark.name' is missing"),
        (_with(STOP, ("stop", "callSid"), ...), "'stop.callSid' is missing"),
        (_with(CONNECTED, ("protocol",), ...), "'protocol' is missing"),
    ],
)
def test_schema_errors_name_the_field(raw: str, expected: str) -> None:
    message = _error(raw)
    assert message.startswith(f"invalid '{json.loads(raw)['event']}' message")
    assert expected in message


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("not base64!", "payload is not valid base64"),
        ("////\n////", "payload is not valid base64"),
        ("//8", "payload is not valid base64"),  # missing padding
        ("", "payload is empty"),
        (
            base64.b64encode(b"\xff" * (MAX_MEDIA_BYTES + 1)).decode(),
            f"payload decodes to {MAX_MEDIA_BYTES + 1} bytes",
        ),
    ],
)
def test_bad_media_payload(payload: str, expected: str) -> None:
    message = _error(_media_with_payload(payload))
    assert "'media'" in message
    assert expected in message


@pytest.mark.parametrize(
    ("media_format", "shown"),
    [
        ({"encoding": "audio/x-alaw", "sampleRate": 8000, "channels": 1}, "audio/x-alaw"),
        ({"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1}, "16000 Hz"),
        ({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2}, "2 channel(s)"),
    ],
)
def test_unsupported_media_format(media_format: dict[str, Any], shown: str) -> None:
    message = _error(_with(START, ("start", "mediaFormat"), media_format))
    assert "unsupported media format" in message
    assert shown in message


def test_media_message_is_exact() -> None:
    assert media_message(STREAM_SID, FRAME) == (
        f'{{"event":"media","streamSid":"{STREAM_SID}","media":{{"payload":"{FRAME_B64}"}}}}'
    )


def test_media_message_refuses_empty_audio() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        media_message(STREAM_SID, b"")


def test_mark_message_is_exact() -> None:
    assert mark_message(STREAM_SID, "turn-3-chunk-2") == (
        f'{{"event":"mark","streamSid":"{STREAM_SID}","mark":{{"name":"turn-3-chunk-2"}}}}'
    )


def test_clear_message_is_exact() -> None:
    assert clear_message(STREAM_SID) == f'{{"event":"clear","streamSid":"{STREAM_SID}"}}'


def test_outbound_media_parses_back_as_audio() -> None:
    sent = json.loads(media_message(STREAM_SID, FRAME))
    assert base64.b64decode(sent["media"]["payload"], validate=True) == FRAME
