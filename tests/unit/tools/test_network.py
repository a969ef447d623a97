"""The guarded connection of tenants' tools: the machine's real resolver, a real socket."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator

import httpcore
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.tools.network import GuardedBackend, RefusedAddress, SocketOption, guarded_client
from harness.serving import serving


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (the kernel completes the handshake)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


class Recording(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, keeping the host each connection was opened to."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return await self.inner.connect_tcp(host, port, timeout=timeout)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "::1"])
async def test_a_name_that_resolves_to_loopback_is_refused(host: str, listener: int) -> None:
    inner = Recording()
    backend = GuardedBackend(allow_private=False, inner=inner)
    with pytest.raises(RefusedAddress, match="loopback"):
        await backend.connect_tcp(host, listener, timeout=2)
    assert inner.hosts == [], "refused before any connection is opened"


async def test_development_connects_to_the_very_address_it_checked(listener: int) -> None:
    inner = Recording()
    backend = GuardedBackend(allow_private=True, inner=inner)
    stream = await backend.connect_tcp("localhost", listener, timeout=2)
    await stream.aclose()
    # The resolved, checked address is what was connected to: no second lookup of the name.
    (host,) = inner.hosts[-1:]
    assert host in ("127.0.0.1", "::1")


async def test_metadata_is_refused_even_in_development() -> None:
    backend = GuardedBackend(allow_private=True, inner=Recording())
    with pytest.raises(RefusedAddress, match="metadata"):
        await backend.connect_tcp("169.254.169.254", 80, timeout=2)


async def test_an_unknown_name_is_a_connect_error() -> None:
    backend = GuardedBackend(allow_private=False)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("no-such-host.invalid", 443, timeout=2)


async def test_unix_sockets_are_never_opened() -> None:
    with pytest.raises(RefusedAddress):
        await GuardedBackend(allow_private=True).connect_unix_socket("/var/run/docker.sock")


async def test_the_guarded_client_checks_the_address_it_connects_to() -> None:
    # "localhost" passes no URL rule here: the client itself resolves it and refuses 127.0.0.1.
    hosts: list[str] = []

    async def order(request: Request) -> JSONResponse:
        hosts.append(request.headers["host"])
        return JSONResponse({"order_id": "A1042"})

    with serving(Starlette(routes=[Route("/orders/A1042", order)])) as url:
        port = httpx.URL(url).port
        async with guarded_client(allow_private=False, headers={}) as client:
            with pytest.raises(RefusedAddress, match="loopback"):
                await client.get(f"http://localhost:{port}/orders/A1042")
        assert hosts == [], "nothing reached the server"
        async with guarded_client(allow_private=True, headers={}) as client:
            answer = await client.get(f"http://localhost:{port}/orders/A1042")
    assert answer.status_code == 200
    assert hosts == [f"localhost:{port}"], "the Host header is the URL's, not the address"
