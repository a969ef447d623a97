"""X-Twilio-Signature checks for webhooks and the media-stream handshake."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from app.telephony.twiml import ws_scheme

_HTTP_SCHEMES = {"https": "https", "http": "http", "wss": "https", "ws": "http"}


class SignatureVerifier:
    """Checks (and, for tests and the simulator, makes) Twilio request signatures."""

    def __init__(self, auth_token: str | SecretStr) -> None:
        """Use the account's auth token (the secret Twilio signs with); refuse an empty one."""
        token = auth_token.get_secret_value() if isinstance(auth_token, SecretStr) else auth_token
        if not token:
            raise ValueError("the Twilio auth token is empty; set TWILIO_AUTH_TOKEN")
        self._validator = RequestValidator(token)

    def verify(self, url: str, params: Mapping[str, str], signature: str | None) -> bool:
        """True when `signature` is Twilio's signature of `url` and the POST `params`.

        `url` must be the public URL Twilio called (see `public_request_url`). `params` is
        passed through untouched so a multi-dict (Starlette's FormData) keeps repeated keys,
        which Twilio's validator reads with `getlist`. The WebSocket handshake has no params.
        """
        if not signature:
            return False
        return bool(self._validator.validate(url, params, signature))

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """The X-Twilio-Signature Twilio would send for this request."""
        return str(self._validator.compute_signature(url, params))

    def __repr__(self) -> str:
        """Never shows the token."""
        return "SignatureVerifier(auth_token=**********)"


def public_request_url(
    url: str,
    forwarded_proto: str | None = None,
    forwarded_host: str | None = None,
    public_url: str | None = None,
) -> str:
    """The URL Twilio actually called, which is what it signed.

    Behind a proxy the app sees its own scheme and host; a configured `public_url` (its path, if
    any, is a prefix the proxy strips) or else a trusted proxy's X-Forwarded-Proto /
    X-Forwarded-Host (`app.api.proxy.forwarded`) put Twilio's back. Path and query are kept.
    A ws(s) request URL stays ws(s): a proxy that terminates TLS reports `https` for a `wss`
    handshake, so the scheme is mapped to the request's kind.

    Raises:
        ValueError: a scheme is neither http(s) nor ws(s).
    """
    parts = urlsplit(url)
    if public_url:
        base = urlsplit(public_url)
        scheme, netloc = base.scheme, base.netloc
        prefix = base.path.rstrip("/")
        path = parts.path
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            path = prefix + path
    else:
        scheme = forwarded_proto or parts.scheme
        netloc = forwarded_host or parts.netloc
        path = parts.path
    if parts.scheme.lower() in ("ws", "wss"):
        scheme = ws_scheme(scheme)
    else:
        scheme = _http_scheme(scheme)
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def _http_scheme(scheme: str) -> str:
    try:
        return _HTTP_SCHEMES[scheme.strip().lower()]
    except KeyError:
        raise ValueError(f"unsupported URL scheme {scheme!r}; expected http(s) or ws(s)") from None
