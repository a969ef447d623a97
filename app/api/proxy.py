"""Who is really asking, and which URL they asked for, behind reverse proxies.

X-Forwarded-* headers are whatever the client wrote unless a proxy we run rewrote them, so they
are believed only when the connection itself comes from an address in VELOX_TRUSTED_PROXIES.
Each proxy appends what it saw, so the value to believe is the right-most one that a trusted
proxy added: the first from the right that is not itself one of our proxies.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import HTTPConnection

from app.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, settings: Settings) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(tuple(settings.server.trusted_proxies)))


def peer_address(connection: HTTPConnection) -> str:
    """The address the TCP connection came from ("" when the server does not say)."""
    return connection.client.host if connection.client else ""


def from_trusted_proxy(connection: HTTPConnection, settings: Settings) -> bool:
    """The connection comes from one of our own proxies."""
    return _trusted(peer_address(connection), settings)


def forwarded(connection: HTTPConnection, settings: Settings, header: str) -> str | None:
    """The right-most value of an X-Forwarded-* header, when a trusted proxy sent it."""
    if not from_trusted_proxy(connection, settings):
        return None
    values = [v.strip() for v in connection.headers.get(header, "").split(",") if v.strip()]
    return values[-1] if values else None


def client_address(connection: HTTPConnection, settings: Settings) -> str:
    """The client's address: the peer, or behind trusted proxies the X-Forwarded-For hop just
    before the first of ours (anything further left was written by the client)."""
    peer = peer_address(connection)
    if not _trusted(peer, settings):
        return peer
    hops = [v.strip() for v in connection.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, settings):
            return hop
    return peer
