"""Who may do what: API keys for senders, site + Origin for the public widget endpoints."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import HTTPConnection

from realtime.accounts import Site
from realtime.platform import SITE_ID, BadRequest, Forbidden, Unauthorized
from realtime.runtime import Runtime

KEY_PARAMETERS = frozenset({"api_key", "apikey", "key", "x-api-key", "token"})
OWN_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def runtime_of(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def sending_site(connection: HTTPConnection) -> Site:
    """The site whose X-API-Key / X-Site-ID headers came with this request."""
    if KEY_PARAMETERS & {name.lower() for name in connection.query_params}:
        # A key in a URL ends up in proxy logs and browser history: refuse it outright.
        raise BadRequest(
            "API keys are only accepted in the X-API-Key header, never in the URL",
            code="api_key_in_url",
        )
    site_id = connection.headers.get("x-site-id")
    if site_id is not None and not SITE_ID.fullmatch(site_id):
        raise Unauthorized("unknown site or API key", code="invalid_credentials")
    return await runtime_of(connection).sites.authenticate(
        site_id, connection.headers.get("x-api-key")
    )


async def widget_site(runtime: Runtime, connection: HTTPConnection, site_id: str) -> Site:
    """The site a widget (poll or socket) speaks for; its page Origin must be allowed."""
    site = await runtime.sites.get(site_id)
    if site is None:
        raise Unauthorized(f"unknown site '{site_id}'", code="unknown_site")
    origin = connection.headers.get("origin")
    if origin is not None and not _origin_allowed(site, origin, connection):
        raise Forbidden(
            f"origin '{origin}' is not allowed for site '{site_id}'", code="origin_not_allowed"
        )
    return site


def _origin_allowed(site: Site, origin: str, connection: HTTPConnection) -> bool:
    origin = origin.lower()
    return site.allows_origin(origin) or origin == own_origin(connection)


def own_origin(connection: HTTPConnection) -> str:
    """This server's own origin: its pages (the demo, the dashboard) are always allowed."""
    # The scope's scheme, not connection.url's: building the URL cost ~10 µs a request.
    scheme = OWN_SCHEME.get(connection.scope.get("scheme", "http"), "http")
    return f"{scheme}://{connection.headers.get('host', '')}".lower()


def client_address(connection: HTTPConnection) -> str:
    """Who is asking, for per-address limits. Behind a proxy, uvicorn's --proxy-headers
    puts the visitor's address in the scope."""
    return address_key(connection.client.host if connection.client else "unknown")


# Remembered: parsing the address again on every request (ipaddress) cost a tenth of an
# idle poll's time in the app. The same few addresses come over and over; a new one costs
# one parse.
@lru_cache(maxsize=4096)
def address_key(host: str) -> str:
    """An IPv6 client is keyed by its /64: one subscriber, one host even, holds 2^64
    addresses, so a key per address would be no limit at all. An IPv4-mapped address
    (::ffff:a.b.c.d, from a dual-stack socket) is its IPv4 address. Anything else (a
    unix socket's peer, "unknown", a test client's name) stays as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"
    return str(address)
