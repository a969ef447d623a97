"""TwiML answers to Twilio's voice webhook, built with the official `twilio` library."""

from __future__ import annotations

from urllib.parse import urlsplit

from twilio.twiml.voice_response import VoiceResponse

STREAM_PATH = "/voice/stream"

_WS_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}


def connect_stream(stream_url: str, parameters: dict[str, str]) -> str:
    """`<Connect><Stream>`: a bidirectional media stream; each parameter becomes `<Parameter>`.

    Parameters travel in the `start` message's `customParameters`, which Twilio documents as the
    reliable channel (query strings on the stream URL are not).
    """
    response = VoiceResponse()
    stream = response.connect().stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    return str(response)


def say_and_hangup(message: str) -> str:
    """Speak `message` with Twilio's own voice, then end the call."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)


def stream_url(
    *,
    public_url: str | None,
    scheme: str,
    host: str,
    forwarded_proto: str | None,
    forwarded_host: str | None,
    path: str = STREAM_PATH,
) -> str:
    """The WebSocket URL Twilio should open for the media stream.

    A configured `public_url` wins (its path, if any, prefixes `path`); otherwise a trusted
    proxy's X-Forwarded-Proto / X-Forwarded-Host (`app.api.proxy.forwarded`) override the
    request's own scheme and host.

    Raises:
        ValueError: the scheme is neither http(s) nor ws(s), or no host is known.
    """
    if public_url:
        base = urlsplit(public_url)
        proto, netloc, prefix = base.scheme, base.netloc, base.path.rstrip("/")
    else:
        proto = forwarded_proto or scheme
        netloc = forwarded_host or host
        prefix = ""
    if not netloc:
        raise ValueError("cannot build the stream URL: no host (set VELOX_PUBLIC_URL)")
    return f"{ws_scheme(proto)}://{netloc}{prefix}{path}"


def ws_scheme(scheme: str) -> str:
    """The WebSocket scheme matching an HTTP one: https → wss, http → ws."""
    try:
        return _WS_SCHEMES[scheme.strip().lower()]
    except KeyError:
        raise ValueError(f"unsupported URL scheme {scheme!r}; expected http(s) or ws(s)") from None
