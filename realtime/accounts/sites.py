"""Sites (tenants) and their API keys. Keys are stored as SHA-256 digests, never in clear:
they are long random tokens, so a fast hash is enough and a slow one would only add
latency to every send."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Insert

from realtime.platform.clock import Clock, now_ms
from realtime.platform.errors import InvalidInput, NotFound, Unauthorized
from realtime.platform.ids import check_site_id
from realtime.platform.tables import site_keys, sites

ANY_ORIGIN = "*"
CACHE_LIMIT = 10_000
# Two keys added to one site at once may pick the same next number; the loser picks again.
NUMBERING_TRIES = 5
MAX_KEY_NUMBER = 2**31 - 1


@dataclass(frozen=True)
class Site:
    id: str
    name: str = ""
    allowed_origins: tuple[str, ...] = ()
    key_hashes: tuple[str, ...] = field(default=(), repr=False)

    def allows_origin(self, origin: str) -> bool:
        return ANY_ORIGIN in self.allowed_origins or origin in self.allowed_origins


@dataclass(frozen=True)
class KeyInfo:
    number: int  # 1, 2, 3… within the site: what `teaser key list` shows and `revoke` takes
    site_id: str
    hint: str
    created_at: int
    revoked_at: int | None


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def new_api_key() -> str:
    return "tk_" + secrets.token_urlsafe(32)


def normalise_origin(origin: str) -> str:
    """scheme://host[:port], as a browser's Origin header names a page (lower case, no
    default port); InvalidInput saying what is wrong with anything else."""
    if origin == ANY_ORIGIN:
        return origin
    problem = _origin_problem(origin)
    if problem:
        raise InvalidInput(
            "origin",
            f"'{origin}' is not an origin ({problem}): write scheme://host[:port], "
            "like https://shop.example or http://localhost:3000",
        )
    parts = urlsplit(origin.lower())
    # As a browser's Origin header has it: the default port left out, IPv6 in brackets,
    # an internationalised name in its ASCII form.
    default = {"http": 80, "https": 443}[parts.scheme]
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{_host(parts.hostname or '')}{port}"


def _host(hostname: str) -> str:
    if ":" in hostname:
        return f"[{hostname}]"
    return hostname.encode("idna").decode("ascii")


def _origin_problem(origin: str) -> str:
    parts = urlsplit(origin.strip())
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked for it)
    except ValueError:
        return "its port is not a number from 0 to 65535"
    if origin != origin.strip() or any(c.isspace() or c in '\\<>"' for c in origin):
        return "it holds a space or a character no host has"
    if parts.scheme.lower() not in ("http", "https"):
        return "it needs http:// or https://"
    if not parts.hostname:
        return "it has no host"
    if parts.username is not None or parts.password is not None:
        return "a page's origin carries no user name"
    try:
        _host(parts.hostname.lower())
    except UnicodeError:
        return "its host is not a valid name"
    if parts.path not in ("", "/") or parts.query or parts.fragment or origin.endswith(("?", "#")):
        return "an origin has no path, query or fragment"
    return ""


class SiteRegistry:
    def __init__(self, engine: AsyncEngine, *, clock: Clock = now_ms, cache_ttl: float = 5.0):
        self.engine = engine
        self.clock = clock
        self.cache_ttl = cache_ttl
        # A revoked key stops working on every worker within cache_ttl seconds.
        self._cache: dict[str, tuple[float, Site | None]] = {}
        self._loading: dict[str, asyncio.Future[Site | None]] = {}
        # Bumped by each change here: a load begun before a change (a key revoked while a
        # request was loading the site) is answered to its callers but never kept.
        self._generation = 0

    async def create(
        self,
        site_id: str,
        *,
        name: str = "",
        origins: tuple[str, ...] = (),
        api_key: str | None = None,
    ) -> tuple[Site, str]:
        check_site_id(site_id, "site id")
        allowed = tuple(normalise_origin(origin) for origin in origins)
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    insert(sites).values(
                        id=site_id,
                        name=name,
                        allowed_origins=list(allowed),
                        created_at=self.clock(),
                    )
                )
        except IntegrityError:
            raise InvalidInput("site id", f"site '{site_id}' already exists") from None
        key = await self.add_key(site_id, api_key)
        return Site(id=site_id, name=name, allowed_origins=allowed), key

    async def add_key(self, site_id: str, api_key: str | None = None) -> str:
        return (await self.add_numbered_key(site_id, api_key))[1]

    async def add_numbered_key(self, site_id: str, api_key: str | None = None) -> tuple[int, str]:
        """A new key for the site, with its number there (1 for the site's first)."""
        key = api_key or new_api_key()
        if (await self._load(site_id)) is None:
            raise NotFound(f"no site '{site_id}'")
        for attempt in range(NUMBERING_TRIES):
            try:
                async with self.engine.begin() as connection:
                    number = (
                        await connection.execute(self._numbered_insert(site_id, key))
                    ).scalar_one()
                break
            except IntegrityError:
                if attempt == NUMBERING_TRIES - 1:
                    raise
        self._forget(site_id)
        return int(number), key

    def _numbered_insert(self, site_id: str, key: str) -> Insert:
        """The key, numbered one past the site's highest (revoked keys keep theirs)."""
        next_number = select(
            literal(site_id),
            func.coalesce(func.max(site_keys.c.number), 0) + 1,
            literal(hash_key(key)),
            literal(key[:6]),
            literal(self.clock()),
        ).where(site_keys.c.site_id == site_id)
        columns = ("site_id", "number", "key_hash", "key_hint", "created_at")
        return insert(site_keys).from_select(columns, next_number).returning(site_keys.c.number)

    async def revoke_key(self, site_id: str, number: int) -> bool:
        if not 0 < number <= MAX_KEY_NUMBER:
            return False  # no such key, and PostgreSQL would refuse to compare with it
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(site_keys)
                .where(
                    site_keys.c.number == number,
                    site_keys.c.site_id == site_id,
                    site_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=self.clock())
            )
        self._forget(site_id)
        return result.rowcount == 1

    async def set_origins(self, site_id: str, origins: tuple[str, ...]) -> tuple[str, ...]:
        """Replace the site's allowed origins; returns them as stored."""
        allowed = _unique(normalise_origin(origin) for origin in origins)
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(sites).where(sites.c.id == site_id).values(allowed_origins=list(allowed))
            )
        if result.rowcount != 1:
            raise NotFound(f"no site '{site_id}'")
        self._forget(site_id)
        return allowed

    async def change_origins(
        self, site_id: str, *, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        """Add and remove origins, keeping the others; returns the list as stored. Read and
        written in one transaction (the row locked on PostgreSQL), so two changes at once
        both count."""
        added = [normalise_origin(origin) for origin in add]
        removed = {normalise_origin(origin) for origin in remove}
        async with self.engine.begin() as connection:
            current = (
                await connection.execute(
                    select(sites.c.allowed_origins).where(sites.c.id == site_id).with_for_update()
                )
            ).scalar()
            if current is None:
                raise NotFound(f"no site '{site_id}'")
            allowed = _unique(o for o in [*current, *added] if o not in removed)
            await connection.execute(
                update(sites).where(sites.c.id == site_id).values(allowed_origins=list(allowed))
            )
        self._forget(site_id)
        return allowed

    async def list_sites(self) -> list[Site]:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(select(sites).order_by(sites.c.id))).all()
        return [Site(r.id, r.name, tuple(r.allowed_origins)) for r in rows]

    async def list_keys(self, site_id: str) -> list[KeyInfo]:
        statement = (
            select(site_keys).where(site_keys.c.site_id == site_id).order_by(site_keys.c.number)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [KeyInfo(r.number, r.site_id, r.key_hint, r.created_at, r.revoked_at) for r in rows]

    async def get(self, site_id: str) -> Site | None:
        cached = self._cache.get(site_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # Requests that miss together share one load, rather than queueing a load each.
        generation = self._generation
        loading = self._loading.get(site_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(site_id))
            self._loading[site_id] = loading
            loading.add_done_callback(partial(self._loaded, site_id))
        site = await asyncio.shield(loading)
        if generation == self._generation:  # nothing changed here while it loaded
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[site_id] = (time.monotonic() + self.cache_ttl, site)
        return site

    def _loaded(self, site_id: str, loading: asyncio.Future[Site | None]) -> None:
        if self._loading.get(site_id) is loading:
            del self._loading[site_id]

    def _forget(self, site_id: str) -> None:
        """A change here: the next request loads the site afresh, not from a load under way."""
        self._generation += 1
        self._cache.pop(site_id, None)
        self._loading.pop(site_id, None)

    async def authenticate(self, site_id: str | None, api_key: str | None) -> Site:
        if not site_id or not api_key:
            raise Unauthorized(
                "X-API-Key and X-Site-ID headers are required", code="missing_credentials"
            )
        site = await self.get(site_id)
        presented = hash_key(api_key)
        # Compare against every key (and a dummy for unknown sites) so timing says nothing.
        candidates = site.key_hashes if site is not None else ("0" * 64,)
        matched = False
        for stored in candidates:
            matched |= hmac.compare_digest(presented, stored)
        if site is None or not matched:
            raise Unauthorized("unknown site or API key", code="invalid_credentials")
        return site

    async def ensure(self, site_id: str, api_key: str, origins: tuple[str, ...] = ()) -> bool:
        """Create the site and key if missing (the dev-mode demo). True if anything was added.
        Several workers may start at once: whoever loses the race finds it done."""
        try:
            if await self._load(site_id) is None:
                await self.create(site_id, name=site_id, origins=origins, api_key=api_key)
                return True
            if hash_key(api_key) in (await self._load_required(site_id)).key_hashes:
                return False
            await self.add_key(site_id, api_key)
            return True
        except (InvalidInput, IntegrityError):
            return False

    async def _load_required(self, site_id: str) -> Site:
        site = await self._load(site_id)
        if site is None:
            raise NotFound(f"no site '{site_id}'")
        return site

    async def _load(self, site_id: str) -> Site | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(sites).where(sites.c.id == site_id))).first()
            if row is None:
                return None
            hashes = (
                (
                    await connection.execute(
                        select(site_keys.c.key_hash).where(
                            site_keys.c.site_id == site_id, site_keys.c.revoked_at.is_(None)
                        )
                    )
                )
                .scalars()
                .all()
            )
        return Site(row.id, row.name, tuple(row.allowed_origins), tuple(hashes))


def _unique(origins: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(origins))
