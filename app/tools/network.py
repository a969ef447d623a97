"""The HTTP client for tenants' tool URLs: it connects only to addresses a tool may reach.

The check sits where the socket is opened: the host is resolved once, every address it has is
checked, and the connection goes to one of those very addresses. TLS still verifies the host
name (httpcore sends the URL's host as SNI and checks the certificate against it) and the Host
header is the URL's, so nothing else changes for the server; a name that resolves differently a
moment later (DNS rebinding) gains nothing, as no second lookup happens.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import anyio
import httpcore
import httpx

from app.tools.urls import IPAddress, address_problem

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class RefusedAddress(Exception):
    """A tool's host resolved to an address it must not reach (not retried: it would again)."""

    def __init__(self, host: str, address: IPAddress, why: str) -> None:
        super().__init__(f"{host} resolves to {address}, {why}")
        self.host = host
        self.address = address


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses `address_problem` allows."""

    def __init__(self, *, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow_private = allow_private
        self._inner = inner or httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int, within_s: float | None) -> list[IPAddress]:
        """Every address of `host`, each once, in the resolver's order."""
        try:
            with anyio.fail_after(within_s):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        found: dict[IPAddress, None] = {}
        for *_, sockaddr in infos:
            found[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
        return list(found)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve `host`, refuse it if any of its addresses is refused, else connect to one."""
        addresses = await self.resolve(host, port, timeout)
        # One bad address refuses the host: which one a connection would use is not ours to know.
        for address in addresses:
            if (why := address_problem(address, allow_private=self.allow_private)) is not None:
                raise RefusedAddress(host, address, why)
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a tenant's tool reaches hosts, not this machine's sockets."""
        raise RefusedAddress(path, ipaddress.ip_address("127.0.0.1"), "a local socket")

    async def sleep(self, seconds: float) -> None:
        """Wait, as the inner backend waits."""
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its exception mapping and streaming) over a `GuardedBackend`."""

    def __init__(self, *, allow_private: bool, limits: httpx.Limits | None = None) -> None:
        super().__init__(trust_env=False)
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        # httpx builds its pool with the default backend; the same pool over ours replaces it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private),
        )


def guarded_client(*, allow_private: bool, headers: dict[str, str]) -> httpx.AsyncClient:
    """A client for tenants' URLs: guarded addresses, no redirects, no proxy from the
    environment (a proxy would be the address connected to, and it is not checked)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=allow_private),
        headers=headers,
        follow_redirects=False,
        trust_env=False,
    )
