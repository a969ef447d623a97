"""Whether this server may take Twilio traffic as configured.

Without TWILIO_AUTH_TOKEN nothing tells Twilio's requests from an attacker's, so voice is served
only where nobody else can reach it - a loopback server - unless a development flag says
otherwise. With the token, signatures must be checked against a URL the requester cannot choose:
the configured public URL, or what trusted proxies forwarded.
"""

from __future__ import annotations

from app.settings import Settings


def voice_refusal(settings: Settings) -> str | None:
    """Why this server must not serve Twilio traffic as configured; None when it may."""
    server = settings.server
    if settings.telephony.twilio_auth_token is None:
        if server.on_loopback or server.velox_insecure_unsigned_voice:
            return None
        return (
            f"TWILIO_AUTH_TOKEN is not set and the server listens on {server.velox_host}, not "
            "loopback: nobody could tell Twilio's requests from anyone else's. Set "
            "TWILIO_AUTH_TOKEN (and VELOX_PUBLIC_URL)"
        )
    if server.velox_public_url or server.trusted_proxies or server.on_loopback:
        return None
    return (
        "TWILIO_AUTH_TOKEN is set but VELOX_PUBLIC_URL is not (nor VELOX_TRUSTED_PROXIES): "
        "signatures cannot be checked against a URL the requester does not choose"
    )
