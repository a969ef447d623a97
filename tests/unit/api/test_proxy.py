"""Behind reverse proxies: X-Forwarded-* believed only from our own proxies, right-most first."""

from __future__ import annotations

from starlette.requests import Request

from app.api.proxy import client_address, forwarded
from tests import factories

TRUSTING = factories.settings(velox_trusted_proxies="10.0.0.0/8, 192.168.1.5")
TRUSTING_NONE = factories.settings()


def request(peer: str, **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "client": (peer, 5000), "path": "/"})


def test_without_trusted_proxies_the_peer_is_the_client_and_headers_are_ignored() -> None:
    spoofed = request("203.0.113.9", x_forwarded_for="127.0.0.1", x_forwarded_host="evil.com")
    assert client_address(spoofed, TRUSTING_NONE) == "203.0.113.9"
    assert forwarded(spoofed, TRUSTING_NONE, "x-forwarded-host") is None


def test_a_client_cannot_forge_its_address_through_a_trusted_proxy() -> None:
    # The client wrote "127.0.0.1"; our proxy appended the address it really saw.
    via_proxy = request("10.0.0.7", x_forwarded_for="127.0.0.1, 198.51.100.4")
    assert client_address(via_proxy, TRUSTING) == "198.51.100.4"


def test_several_trusted_hops_are_skipped() -> None:
    chain = request("10.0.0.7", x_forwarded_for="198.51.100.4, 192.168.1.5, 10.1.2.3")
    assert client_address(chain, TRUSTING) == "198.51.100.4"
    only_ours = request("10.0.0.7", x_forwarded_for="10.0.0.8")
    assert client_address(only_ours, TRUSTING) == "10.0.0.7"


def test_forwarded_values_are_the_right_most_from_a_trusted_peer() -> None:
    hops = request("10.0.0.7", x_forwarded_host="evil.com, voice.example.com")
    assert forwarded(hops, TRUSTING, "x-forwarded-host") == "voice.example.com"
    assert forwarded(request("10.0.0.7"), TRUSTING, "x-forwarded-host") is None
    assert (
        forwarded(request("not-an-ip", x_forwarded_host="a"), TRUSTING, "x-forwarded-host") is None
    )
