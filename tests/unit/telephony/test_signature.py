"""X-Twilio-Signature: Twilio's documented example, tampering, and the URL Twilio signed."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.telephony.signature import SignatureVerifier, public_request_url

# Twilio's documented example: twilio.com/docs/usage/security#validating-requests
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


@pytest.fixture
def verifier() -> SignatureVerifier:
    return SignatureVerifier(DOC_TOKEN)


def test_known_answer(verifier: SignatureVerifier) -> None:
    assert verifier.sign(DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert verifier.verify(DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_tampered_param_fails(verifier: SignatureVerifier) -> None:
    assert not verifier.verify(DOC_URL, {**DOC_PARAMS, "Digits": "1235"}, DOC_SIGNATURE)
    assert not verifier.verify(DOC_URL, {**DOC_PARAMS, "Extra": "x"}, DOC_SIGNATURE)


def test_tampered_url_fails(verifier: SignatureVerifier) -> None:
    assert not verifier.verify(DOC_URL.replace("foo=1", "foo=2"), DOC_PARAMS, DOC_SIGNATURE)
    assert not verifier.verify(DOC_URL.replace("https", "http"), DOC_PARAMS, DOC_SIGNATURE)


def test_other_token_fails() -> None:
    assert not SignatureVerifier("54321").verify(DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature_fails(verifier: SignatureVerifier, signature: str | None) -> None:
    assert not verifier.verify(DOC_URL, DOC_PARAMS, signature)


def test_websocket_handshake_round_trip(verifier: SignatureVerifier) -> None:
    url = "wss://voice.example.com/voice/stream"
    signature = verifier.sign(url, {})
    assert verifier.verify(url, {}, signature)
    assert not verifier.verify("wss://evil.example.com/voice/stream", {}, signature)


def test_explicit_default_port_still_verifies(verifier: SignatureVerifier) -> None:
    # Twilio may sign with or without :443; its validator tries both.
    signature = verifier.sign("https://mycompany.com:443/myapp.php?foo=1&bar=2", DOC_PARAMS)
    assert verifier.verify(DOC_URL, DOC_PARAMS, signature)


def test_secret_str_token_and_repr() -> None:
    verifier = SignatureVerifier(SecretStr(DOC_TOKEN))
    assert verifier.verify(DOC_URL, DOC_PARAMS, DOC_SIGNATURE)
    assert DOC_TOKEN not in repr(verifier)


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN"):
        SignatureVerifier("")


@pytest.mark.parametrize(
    ("url", "proto", "host", "public", "expected"),
    [
        # No proxy: the URL is already what Twilio called.
        (
            "https://voice.example.com/voice/incoming?x=1",
            None,
            None,
            None,
            "https://voice.example.com/voice/incoming?x=1",
        ),
        # TLS-terminating proxy.
        (
            "http://127.0.0.1:8000/voice/incoming?x=1&y=2",
            "https",
            "abc.ngrok.app",
            None,
            "https://abc.ngrok.app/voice/incoming?x=1&y=2",
        ),
        # Only the protocol is forwarded.
        (
            "http://voice.example.com/voice/incoming",
            "https",
            None,
            None,
            "https://voice.example.com/voice/incoming",
        ),
        # The configured public URL wins over forwarded headers.
        (
            "http://127.0.0.1:8000/voice/incoming?x=1",
            "http",
            "internal:9000",
            "https://voice.example.com",
            "https://voice.example.com/voice/incoming?x=1",
        ),
        # A public URL with a path prefix the proxy strips ...
        (
            "http://127.0.0.1:8000/voice/incoming",
            None,
            None,
            "https://example.com/velox/",
            "https://example.com/velox/voice/incoming",
        ),
        # ... or does not strip.
        (
            "http://127.0.0.1:8000/velox/voice/incoming",
            None,
            None,
            "https://example.com/velox",
            "https://example.com/velox/voice/incoming",
        ),
        # WebSocket handshake behind a TLS proxy: forwarded https means wss.
        (
            "ws://127.0.0.1:8000/voice/stream",
            "https",
            "abc.ngrok.app",
            None,
            "wss://abc.ngrok.app/voice/stream",
        ),
        (
            "ws://127.0.0.1:8000/voice/stream",
            "http",
            None,
            None,
            "ws://127.0.0.1:8000/voice/stream",
        ),
        (
            "ws://127.0.0.1:8000/voice/stream",
            None,
            None,
            "https://voice.example.com",
            "wss://voice.example.com/voice/stream",
        ),
        (
            "ws://127.0.0.1:8000/voice/stream",
            None,
            None,
            "http://localhost:8000",
            "ws://localhost:8000/voice/stream",
        ),
        # Some proxies forward the WebSocket scheme itself.
        (
            "ws://127.0.0.1:8000/voice/stream",
            "wss",
            "voice.example.com",
            None,
            "wss://voice.example.com/voice/stream",
        ),
    ],
)
def test_public_request_url(
    url: str, proto: str | None, host: str | None, public: str | None, expected: str
) -> None:
    assert public_request_url(url, proto, host, public) == expected


def test_public_request_url_rejects_odd_schemes() -> None:
    with pytest.raises(ValueError, match="unsupported URL scheme 'gopher'"):
        public_request_url("http://h/p", "gopher", None, None)


def test_verify_behind_a_proxy(verifier: SignatureVerifier) -> None:
    # Twilio signed the public URL; the app sees its own; reconstructing makes them agree.
    params = {"CallSid": "CA" + "0" * 32, "From": "+15551234567"}
    signature = verifier.sign("https://abc.ngrok.app/voice/incoming", params)
    seen = "http://127.0.0.1:8000/voice/incoming"
    assert not verifier.verify(seen, params, signature)
    assert verifier.verify(
        public_request_url(seen, "https", "abc.ngrok.app", None), params, signature
    )
