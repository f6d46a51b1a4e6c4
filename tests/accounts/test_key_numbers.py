"""Keys are numbered 1, 2, 3… within their site, on SQLite and PostgreSQL: what the operator
sees in `teaser key list` and gives to `teaser key revoke`, whatever other sites hold."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.accounts.sites import SiteRegistry
from realtime.migrations.migrate import alembic_config, upgrade
from realtime.platform.database import create_engine
from realtime.platform.errors import Unauthorized
from realtime.platform.tables import site_keys


async def test_each_site_numbers_its_own_keys_from_one(engine: AsyncEngine) -> None:
    sites = SiteRegistry(engine)
    await sites.create("woodstock_outlet")  # the demo site holds the first key of all
    await sites.create("acme")
    second = await sites.add_numbered_key("acme")

    assert [key.number for key in await sites.list_keys("woodstock_outlet")] == [1]
    assert [key.number for key in await sites.list_keys("acme")] == [1, 2]
    assert second[0] == 2


async def test_revoking_key_one_of_a_site_revokes_that_sites_first_key(
    engine: AsyncEngine,
) -> None:
    sites = SiteRegistry(engine, cache_ttl=0)
    _, demo_key = await sites.create("woodstock_outlet")
    _, first = await sites.create("acme")
    second = await sites.add_key("acme")

    assert await sites.revoke_key("acme", 1) is True

    with pytest.raises(Unauthorized):
        await sites.authenticate("acme", first)
    assert (await sites.authenticate("acme", second)).id == "acme"
    assert (await sites.authenticate("woodstock_outlet", demo_key)).id == "woodstock_outlet"
    assert await sites.revoke_key("acme", 1) is False  # already revoked
    assert await sites.revoke_key("acme", 3) is False  # no such key
    assert await sites.revoke_key("acme", 2**40) is False  # past any column's range


async def test_a_revoked_keys_number_is_never_given_again(engine: AsyncEngine) -> None:
    sites = SiteRegistry(engine)
    await sites.create("acme")
    await sites.add_key("acme")
    await sites.revoke_key("acme", 2)

    number, _ = await sites.add_numbered_key("acme")

    assert number == 3
    assert [(k.number, k.revoked_at is None) for k in await sites.list_keys("acme")] == [
        (1, True),
        (2, False),
        (3, True),
    ]


async def test_keys_added_to_one_site_at_once_get_distinct_numbers(engine: AsyncEngine) -> None:
    sites = SiteRegistry(engine)
    await sites.create("acme")

    added = await asyncio.gather(*(sites.add_numbered_key("acme") for _ in range(4)))

    assert sorted(number for number, _ in added) == [2, 3, 4, 5]


async def test_the_database_refuses_two_keys_with_one_number_in_a_site(
    engine: AsyncEngine,
) -> None:
    sites = SiteRegistry(engine)
    await sites.create("acme")
    duplicate = insert(site_keys).values(
        site_id="acme", number=1, key_hash="f" * 64, key_hint="tk_fff", created_at=1
    )
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(duplicate)


def _migrate_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


OLD_KEYS = [  # (global id, site) as revision 0010 numbered them: one count over all sites
    (1, "woodstock_outlet"),
    (2, "acme"),
    (3, "beta"),
    (4, "acme"),
    (5, "acme"),
    (6, "beta"),
]


async def test_the_migration_numbers_existing_keys_within_their_site(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_migrate_to, "0010")
            for site in ("woodstock_outlet", "acme", "beta"):
                await connection.execute(
                    text(
                        "INSERT INTO sites (id, name, allowed_origins, created_at) "
                        "VALUES (:id, :id, '[]', 1)"
                    ),
                    {"id": site},
                )
            for key_id, site in OLD_KEYS:  # in this order, so the ids come out as listed
                await connection.execute(
                    text(
                        "INSERT INTO site_keys (site_id, key_hash, key_hint, created_at) "
                        "VALUES (:site, :hash, 'tk_old', 1)"
                    ),
                    {"site": site, "hash": f"{key_id:064d}"},
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            numbered = (
                await connection.execute(
                    select(site_keys.c.id, site_keys.c.site_id, site_keys.c.number).order_by(
                        site_keys.c.id
                    )
                )
            ).all()
        added, _ = await SiteRegistry(engine).add_numbered_key("acme")
    finally:
        await engine.dispose()

    assert [tuple(row[:2]) for row in numbered] == OLD_KEYS
    assert [tuple(row) for row in numbered] == [
        (1, "woodstock_outlet", 1),
        (2, "acme", 1),
        (3, "beta", 1),
        (4, "acme", 2),
        (5, "acme", 3),
        (6, "beta", 2),
    ]
    assert added == 4
