"""Which base URLs a tenant may give its tools, which addresses a tool may connect to, and how
a request's path is joined to a base URL.

A tenant's URL is checked twice: its shape when the agent is saved (`tool_url_problem`), and the
address actually connected to on every request (`address_problem`, used by `app.tools.network`),
since a name that resolved to a public address yesterday may resolve to 127.0.0.1 today.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata: refused even in development, since its answers are credentials.
# Sources: docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html (IPv4 and
# fd00:ec2::254), cloud.google.com/compute/docs/metadata/querying-metadata (the name),
# alibabacloud.com/help/en/ecs/user-guide/view-instance-metadata (100.100.100.200).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})

# What development (VELOX_ALLOW_PRIVATE_TOOL_URLS) lets through: a fake on this machine or the LAN.
_PRIVATE_KINDS = frozenset({"loopback", "private", "non-public"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The shorthand IPv4 forms inet_aton accepts: 2130706433, 0177.0.0.1, 0x7f.1, 127.1.
_NUMERIC_V4 = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)
_UNSAFE_CHARS = re.compile(r"[\s\\\x00-\x1f\x7f]")


class ToolUrlError(ValueError):
    """A tool URL, or a path joined to one, that must not be used."""


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` names by itself, in any form a resolver would read it, else None."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_V4.fullmatch(name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 addresses it carries (mapped, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return [address.ipv4_mapped]  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
    return found


def _kind(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if address.is_private or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a tool must not connect to `address` (e.g. "a loopback address"), or None."""
    kinds = [kind for a in _embedded(address) if (kind := _kind(a)) is not None]
    refused = [k for k in kinds if not (allow_private and k in _PRIVATE_KINDS)]
    return f"a {refused[0]} address" if refused else None


def _loopback_name(name: str) -> bool:
    # RFC 6761 section 6.3: "localhost" and names under it are the host itself.
    return name == "localhost" or name.endswith(".localhost")


def host_problem(host: str, *, allow_private: bool) -> str | None:
    """Why a URL must not name `host` (before resolving it), or None."""
    name = host.strip("[]").rstrip(".").lower()
    if name in METADATA_HOSTS:
        return "a cloud metadata address"
    if (address := ip_literal(name)) is not None:
        return address_problem(address, allow_private=allow_private)
    if _loopback_name(name) and not allow_private:
        return "a loopback address"
    return None


def is_loopback_host(host: str) -> bool:
    """Whether `host` is this machine by name or address."""
    name = host.strip("[]").rstrip(".").lower()
    address = ip_literal(name)
    return _loopback_name(name) if address is None else _kind(address) == "loopback"


def tool_url_problem(url: str, *, allow_private: bool) -> str | None:
    """What is wrong with `url` as a tenant's tool base URL, said to the tenant, or None.

    https only (http to loopback only in development), no credentials, no query, no fragment,
    and no host that is a private, loopback, link-local or metadata address.
    """
    if _UNSAFE_CHARS.search(url):
        return "must not contain spaces, backslashes or control characters"
    if "#" in url:
        return "must not have a fragment (#...)"
    if "?" in url:
        return "must not have a query (?...); tools add their own parameters"
    try:
        split = urlsplit(url)
        host = split.hostname or ""
    except ValueError:
        return "is not a valid URL"
    if split.scheme.lower() not in ("http", "https"):
        return "must be an https URL"
    if "@" in split.netloc:
        return "must not contain a user name or password"
    if not host:
        return "must name a host"
    # Before httpx reads it: httpx refuses 0177.0.0.1, which a resolver takes for 127.0.0.1.
    if (why := host_problem(host, allow_private=allow_private)) is not None:
        return f"must not point at {why}"
    try:
        parsed = httpx.URL(url)  # the parser the request will use
    except httpx.InvalidURL:
        return "is not a valid URL"
    if parsed.userinfo:
        return "must not contain a user name or password"
    if parsed.host != host:
        return "is not a valid URL"
    if parsed.scheme == "http" and not (allow_private and is_loopback_host(parsed.host)):
        return "must use https (http only to this machine, in development)"
    return None


def check_tool_url(url: str, *, allow_private: bool) -> httpx.URL:
    """`url` parsed, when it is a base URL a tenant may give; raises ToolUrlError otherwise."""
    if (problem := tool_url_problem(url, allow_private=allow_private)) is not None:
        raise ToolUrlError(f"tool URL {problem}")
    return httpx.URL(url)


def join(base: str | httpx.URL, segments: Sequence[str]) -> httpx.URL:
    """`base` with `segments` appended to its path, each one escaped as a single segment.

    A segment cannot climb out of the base path ("..") nor start a query, a fragment or an
    authority of its own: "/", "?", "#", "@" and "%" are escaped.
    """
    url = httpx.URL(base)
    if url.query or url.fragment:
        raise ToolUrlError("a base URL has no query or fragment")
    parts: list[str] = []
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ToolUrlError(f"path segment {segment!r} is not allowed")
        parts.append(quote(segment, safe=""))
    path = url.raw_path.decode("ascii").rstrip("/") + "/" + "/".join(parts)
    return url.copy_with(raw_path=path.encode("ascii"))
