"""Which base URLs a tenant may give its tools, which addresses a tool may reach, and how a
path is joined to a base URL."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from app.tools.urls import (
    ToolUrlError,
    address_problem,
    check_tool_url,
    host_problem,
    ip_literal,
    join,
    tool_url_problem,
)


@pytest.mark.parametrize(
    "url",
    [
        "https://orders.example.com",
        "https://orders.example.com/api/v1",
        "https://orders.example.com:8443/api/",
        "https://8.8.8.8/api",
        "https://[2606:4700:4700::1111]/api",
    ],
)
def test_public_https_urls_are_accepted(url: str) -> None:
    assert tool_url_problem(url, allow_private=False) is None
    assert check_tool_url(url, allow_private=False) == httpx.URL(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://orders.example.com", "must use https"),
        ("ftp://orders.example.com", "must be an https URL"),
        ("file:///etc/passwd", "must be an https URL"),
        ("https://user:pw@orders.example.com", "user name or password"),
        ("https://user@orders.example.com", "user name or password"),
        ("https://orders.example.com/api?q=1", "must not have a query"),
        ("https://orders.example.com/api?", "must not have a query"),
        ("https://orders.example.com/api#f", "must not have a fragment"),
        ("https://orders.example.com/a b", "spaces"),
        ("https://orders.example.com\\@127.0.0.1/", "backslashes"),
        ("https://orders.example.com/\x00", "control characters"),
        ("https:///api", "must name a host"),
        ("not a url", "spaces"),
    ],
)
def test_malformed_or_unsafe_urls_say_what_is_wrong(url: str, problem: str) -> None:
    found = tool_url_problem(url, allow_private=True)
    assert found is not None and problem in found
    with pytest.raises(ToolUrlError, match=problem):
        check_tool_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/api",
        "https://127.8.9.10",
        "https://localhost/api",
        "https://LOCALHOST./api",
        "https://api.localhost",
        "https://2130706433/",  # 127.0.0.1 as one decimal number
        "https://0177.0.0.1/",  # octal
        "https://0x7f.1/",  # hex and a short form
        "https://127.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
        "https://[::ffff:7f00:1]/",
        "https://10.0.0.5/",
        "https://172.16.3.4/",
        "https://192.168.1.1/",
        "https://[fd12:3456::1]/",
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00:ec2::254]/",
        "https://metadata.google.internal/computeMetadata/v1",
        "https://metadata.google.internal./",
        "https://0.0.0.0/",
        "https://[::]/",
        "https://224.0.0.1/",
        "https://[fe80::1]/",
        "https://100.64.0.1/",  # carrier-grade NAT, not the internet
        "https://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "https://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    ],
)
def test_private_loopback_and_metadata_hosts_are_refused(url: str) -> None:
    problem = tool_url_problem(url, allow_private=False)
    assert problem is not None and problem.startswith("must not point at a"), problem


def test_development_allows_loopback_and_private_but_never_metadata() -> None:
    for url in ("http://127.0.0.1:8100", "http://localhost:8100/api", "http://[::1]:9"):
        assert tool_url_problem(url, allow_private=True) is None, url
    assert tool_url_problem("https://10.0.0.5/api", allow_private=True) is None
    # http stays for this machine only, even in development.
    assert "must use https" in (tool_url_problem("http://10.0.0.5/", allow_private=True) or "")
    assert "must use https" in (tool_url_problem("http://example.com/", allow_private=True) or "")
    for url in (
        "http://169.254.169.254/",
        "https://169.254.169.254/",
        "https://[::ffff:169.254.169.254]/",
        "https://[fd00:ec2::254]/",
        "https://metadata.google.internal/",
    ):
        problem = tool_url_problem(url, allow_private=True)
        assert problem is not None and "metadata" in problem, url


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("10.0.0.1.", "10.0.0.1"),
        ("example.com", None),
        ("cafe.be", None),
        ("1.2.3.4.5", None),
    ],
)
def test_ip_literals_in_every_form_a_resolver_reads(host: str, address: str | None) -> None:
    found = ip_literal(host)
    assert (str(found) if found else None) == address


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.1.1", "non-public"),
    ],
)
def test_every_kind_of_non_public_address_is_refused(address: str, kind: str) -> None:
    assert (
        address_problem(ipaddress.ip_address(address), allow_private=False) == f"a {kind} address"
    )


def test_public_addresses_pass_and_development_lets_private_ones_through() -> None:
    for public in ("8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert address_problem(ipaddress.ip_address(public), allow_private=False) is None
    for private in ("127.0.0.1", "::1", "10.0.0.1", "192.168.0.10", "fd12::1"):
        assert address_problem(ipaddress.ip_address(private), allow_private=True) is None
    for never in ("169.254.169.254", "fd00:ec2::254", "0.0.0.0", "224.0.0.1", "169.254.1.1"):
        assert address_problem(ipaddress.ip_address(never), allow_private=True) is not None


def test_host_names_are_checked_before_resolving() -> None:
    assert host_problem("localhost.", allow_private=False) == "a loopback address"
    assert host_problem("localhost", allow_private=True) is None
    assert host_problem("Metadata.Google.Internal", allow_private=True) == (
        "a cloud metadata address"
    )
    assert host_problem("orders.example.com", allow_private=False) is None


def test_path_segments_are_escaped_and_stay_under_the_base_path() -> None:
    base = "https://orders.example.com/api/v1"
    assert str(join(base, ("orders", "A1042"))) == "https://orders.example.com/api/v1/orders/A1042"
    assert str(join(base + "/", ("orders",))) == "https://orders.example.com/api/v1/orders"
    assert str(join("https://orders.example.com", ("stock",))) == "https://orders.example.com/stock"
    for hostile, escaped in [
        ("../admin", "..%2Fadmin"),
        ("A1?debug=1", "A1%3Fdebug%3D1"),
        ("A1#x", "A1%23x"),
        ("@evil.example", "%40evil.example"),
        ("%2e%2e", "%252e%252e"),
        ("a/b", "a%2Fb"),
    ]:
        url = join(base, ("orders", hostile))
        assert url.host == "orders.example.com" and not url.query and not url.fragment
        assert url.raw_path.decode() == f"/api/v1/orders/{escaped}"
    for climbing in ("..", ".", ""):
        with pytest.raises(ToolUrlError):
            join(base, ("orders", climbing))
    with pytest.raises(ToolUrlError):
        join("https://orders.example.com/?q=1", ("orders",))
