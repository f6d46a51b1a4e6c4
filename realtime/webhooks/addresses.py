"""Where a tenant may aim Teaser: an https URL (http outside production) of a public host.
The host is resolved before each attempt, every address it has is checked, and the request
goes to the checked address, so a name that resolves elsewhere a moment later (DNS
rebinding) can't lead the connection into the internal network."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from realtime.platform import InvalidInput

MAX_URL_LENGTH = 2048
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeAddress(Exception):
    """The host is, or resolves to, an address Teaser may not send to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """Where one attempt connects: `url` names the checked address itself; `host` goes in
    the Host header and, for https, in the TLS handshake (SNI and the certificate check)."""

    url: str
    host: str
    server_name: str | None


def check_url(url: str, *, production: bool, allow_private: bool) -> str:
    """The URL as given, if Teaser may send to it; InvalidInput saying why not."""
    problem = _url_problem(url, production, allow_private)
    if problem:
        raise InvalidInput("url", problem)
    return url


def _url_problem(url: str, production: bool, allow_private: bool) -> str:
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        return f"must be a URL of at most {MAX_URL_LENGTH} characters, without spaces"
    parts = urlsplit(url)
    schemes = ("https",) if production else ("https", "http")
    if parts.scheme not in schemes:
        return "must start with https://" + ("" if production else " (or http://)")
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked)
    except ValueError:
        return "its port is not a number from 0 to 65535"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "may not carry a user name or password (the signature says who is calling)"
    if parts.fragment or url.endswith("#"):
        return "may not have a #fragment"
    literal = _literal(parts.hostname)
    if not allow_private and (
        (literal is not None and not public(literal)) or _is_localhost(parts.hostname)
    ):
        return "names a loopback or private address (TEASER_WEBHOOK_ALLOW_PRIVATE allows it)"
    return ""


def public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_localhost(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


async def resolve(url: str, *, production: bool, allow_private: bool) -> Target:
    """The attempt's target, pinned to a checked address; UnsafeAddress if there is none."""
    problem = _url_problem(url, production, allow_private)
    if problem:
        raise UnsafeAddress(f"the URL {problem}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _addresses(host, port)
    if not allow_private:
        refused = [a for a in addresses if not public(a)]
        if refused:
            raise UnsafeAddress(
                f"{host} resolves to {refused[0]}, a loopback or private address "
                "(TEASER_WEBHOOK_ALLOW_PRIVATE allows it)"
            )
    return Target(
        _with_address(parts, addresses[0]),
        parts.netloc.rpartition("@")[2],
        host if parts.scheme == "https" else None,
    )


async def _addresses(host: str, port: int) -> list[Address]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeAddress(f"{host} does not resolve ({exc.strerror or exc})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
    if not addresses:
        raise UnsafeAddress(f"{host} resolves to no address")
    return addresses


def _with_address(parts: SplitResult, address: Address) -> str:
    shown = f"[{address}]" if address.version == 6 else str(address)
    port = f":{parts.port}" if parts.port is not None else ""
    return parts._replace(netloc=shown + port).geturl()
