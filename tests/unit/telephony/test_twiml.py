"""TwiML answers and the stream URL Twilio is told to open."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from app.telephony.twiml import connect_stream, say_and_hangup, stream_url


def test_connect_stream_structure() -> None:
    xml = connect_stream(
        "wss://voice.example.com/voice/stream", {"agentId": "agent-7", "callerName": "A & B <x>"}
    )
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Connect"]
    connect = root[0]
    assert [child.tag for child in connect] == ["Stream"]
    stream = connect[0]
    assert stream.attrib == {"url": "wss://voice.example.com/voice/stream"}
    assert [(p.tag, p.attrib) for p in stream] == [
        ("Parameter", {"name": "agentId", "value": "agent-7"}),
        ("Parameter", {"name": "callerName", "value": "A & B <x>"}),
    ]


def test_connect_stream_without_parameters() -> None:
    stream = ET.fromstring(connect_stream("wss://h/voice/stream", {})).find("./Connect/Stream")
    assert stream is not None
    assert list(stream) == []


def test_say_and_hangup_structure() -> None:
    root = ET.fromstring(say_and_hangup("Sorry, we can't take your call right now & goodbye."))
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == "Sorry, we can't take your call right now & goodbye."
    assert list(root[1]) == [] and not root[1].text


def _url(**overrides: str | None) -> str:
    args: dict[str, str | None] = {
        "public_url": None,
        "scheme": "http",
        "host": "127.0.0.1:8000",
        "forwarded_proto": None,
        "forwarded_host": None,
    }
    args.update(overrides)
    return stream_url(**args)  # type: ignore[arg-type]


def test_stream_url_from_the_request() -> None:
    assert _url() == "ws://127.0.0.1:8000/voice/stream"
    assert _url(scheme="https", host="voice.example.com") == "wss://voice.example.com/voice/stream"


def test_stream_url_honours_forwarded_headers() -> None:
    url = _url(forwarded_proto="https", forwarded_host="abc.ngrok.app")
    assert url == "wss://abc.ngrok.app/voice/stream"


def test_stream_url_forwarded_proto_only() -> None:
    assert _url(forwarded_proto="HTTPS") == "wss://127.0.0.1:8000/voice/stream"


def test_stream_url_public_url_wins() -> None:
    url = _url(
        public_url="https://voice.example.com",
        forwarded_proto="http",
        forwarded_host="internal:9000",
    )
    assert url == "wss://voice.example.com/voice/stream"


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("https://voice.example.com/", "wss://voice.example.com/voice/stream"),
        ("http://localhost:8000", "ws://localhost:8000/voice/stream"),
        ("https://example.com/velox", "wss://example.com/velox/voice/stream"),
        ("https://example.com:8443/velox/", "wss://example.com:8443/velox/voice/stream"),
    ],
)
def test_stream_url_public_url_forms(public_url: str, expected: str) -> None:
    assert _url(public_url=public_url) == expected


def test_stream_url_custom_path() -> None:
    assert _url(public_url="https://h", path="/other") == "wss://h/other"


def test_stream_url_rejects_odd_schemes() -> None:
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        _url(public_url="ftp://example.com")
