"""Who may see what only the operator should: health details and the Prometheus metrics.

The operator shows VELOX_OPERATOR_TOKEN as a bearer token. On a developer's machine — a server
listening on loopback only, asked directly from loopback with no proxy in between — no token
is needed, so `make run` and `curl localhost:8000/health` keep working with nothing set.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import HTTPConnection

from app.api.proxy import peer_address
from app.settings import Settings

# A reverse proxy on the same host makes every visitor look like loopback; these say one is there.
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def is_operator(connection: HTTPConnection, settings: Settings) -> bool:
    """The request carries the operator token, or comes straight from this machine to a
    loopback-only server."""
    token = settings.server.velox_operator_token
    if token is not None:
        scheme, _, presented = connection.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected):
            return True
    return (
        settings.server.on_loopback
        and _is_loopback(peer_address(connection))
        and not any(h in connection.headers for h in PROXY_HEADERS)
    )


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
