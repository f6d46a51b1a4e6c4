"""Sites and API keys: hashed at rest, constant-time checked, revocable, origin lists."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.accounts.sites import SiteRegistry, normalise_origin
from realtime.platform.errors import InvalidInput, Unauthorized
from realtime.platform.tables import site_keys
from tests.support import HeldRead


async def test_a_new_site_gets_a_key_that_is_stored_only_as_a_hash(engine: AsyncEngine) -> None:
    sites = SiteRegistry(engine)
    site, key = await sites.create("acme", origins=("https://Shop.Example/",))

    async with engine.connect() as connection:
        stored = (await connection.execute(select(site_keys))).one()

    assert site.allowed_origins == ("https://shop.example",)
    assert key.startswith("tk_") and len(key) > 40
    assert key not in (stored.key_hash, stored.key_hint)
    assert len(stored.key_hash) == 64
    assert (await sites.authenticate("acme", key)).id == "acme"


@pytest.mark.parametrize(
    "site_id,key",
    [
        ("acme", "tk_wrong"),
        ("nobody", "tk_wrong"),
        ("acme", ""),
        (None, "tk_x"),
    ],
)
async def test_a_wrong_key_or_site_is_unauthorized(
    engine: AsyncEngine, site_id: str | None, key: str
) -> None:
    sites = SiteRegistry(engine)
    await sites.create("acme")
    with pytest.raises(Unauthorized):
        await sites.authenticate(site_id, key)


async def test_a_key_of_one_site_does_not_open_another(engine: AsyncEngine) -> None:
    sites = SiteRegistry(engine)
    _, key_a = await sites.create("site-a")
    await sites.create("site-b")
    with pytest.raises(Unauthorized):
        await sites.authenticate("site-b", key_a)


async def test_two_keys_work_during_rotation_and_a_revoked_one_stops(engine: AsyncEngine) -> None:
    sites = SiteRegistry(engine, cache_ttl=0)
    _, old = await sites.create("acme")
    new = await sites.add_key("acme")

    assert (await sites.authenticate("acme", old)).id == "acme"
    assert (await sites.authenticate("acme", new)).id == "acme"

    first = (await sites.list_keys("acme"))[0].number
    assert await sites.revoke_key("acme", first) is True
    with pytest.raises(Unauthorized):
        await sites.authenticate("acme", old)
    assert (await sites.authenticate("acme", new)).id == "acme"


async def test_a_key_revoked_while_a_request_loads_the_site_stops_at_once(
    engine: AsyncEngine,
) -> None:
    """The load began before the revoke was committed: it answers the request that asked,
    but is not kept, so the next request on this worker is refused (not for cache_ttl)."""
    sites = SiteRegistry(engine, cache_ttl=60)
    _, key = await sites.create("acme")
    held = HeldRead(engine)
    sites.engine = cast(AsyncEngine, held)
    loading = asyncio.create_task(sites.authenticate("acme", key))
    await asyncio.wait_for(held.answered.wait(), 5)  # read with the key still live

    assert await sites.revoke_key("acme", 1)
    held.released.set()
    assert (await loading).id == "acme"  # asked before the revoke
    with pytest.raises(Unauthorized):
        await sites.authenticate("acme", key)


async def test_origins_must_be_real_origins(engine: AsyncEngine) -> None:
    sites = SiteRegistry(engine)
    with pytest.raises(InvalidInput):
        await sites.create("acme", origins=("shop.example",))
    with pytest.raises(InvalidInput):
        await sites.create("acme", origins=("https://shop.example/path",))


@pytest.mark.parametrize(
    "given,stored",
    [
        ("https://Shop.Example/", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://bücher.de", "https://xn--bcher-kva.de"),
        ("*", "*"),
    ],
)
def test_an_origin_is_stored_as_the_browser_names_it(given: str, stored: str) -> None:
    assert normalise_origin(given) == stored


@pytest.mark.parametrize(
    "given,problem",
    [
        ("shop.example", "needs http:// or https://"),
        ("ftp://shop.example", "needs http:// or https://"),
        ("https://shop.example/cart", "no path, query or fragment"),
        ("https://shop.example?utm_source=x", "no path, query or fragment"),
        ("https://shop.example#top", "no path, query or fragment"),
        ("https://shop.example:99999", "port"),
        ("https://shop.example:80a", "port"),
        ("https://ann@shop.example", "no user name"),
        ("https://", "no host"),
        ("https://shop example", "space"),
    ],
)
def test_a_malformed_origin_is_refused_saying_what_is_wrong(given: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_origin(given)

    assert problem in refused.value.message and "scheme://host[:port]" in refused.value.message


async def test_a_site_id_is_created_once(engine: AsyncEngine) -> None:
    sites = SiteRegistry(engine)
    await sites.create("acme")
    with pytest.raises(InvalidInput):
        await sites.create("acme")


async def test_ensuring_the_demo_site_twice_adds_nothing_the_second_time(
    engine: AsyncEngine,
) -> None:
    sites = SiteRegistry(engine)
    assert await sites.ensure("woodstock_outlet", "woodstock_rt_key_2024") is True
    assert await sites.ensure("woodstock_outlet", "woodstock_rt_key_2024") is False
    assert len(await sites.list_keys("woodstock_outlet")) == 1
