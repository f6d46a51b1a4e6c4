"""Operator accounts, on every database: slow hashes only, one account per e-mail and site,
sign-in that says nothing about which part was wrong, resets and removals that end every
session, and the `teaser operator` command."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.accounts.operator_sessions import OperatorSessions
from realtime.accounts.operators import OperatorRegistry
from realtime.accounts.sites import SiteRegistry
from realtime.platform.database import create_engine
from realtime.platform.errors import InvalidInput, NotFound, Unauthorized
from realtime.platform.tables import operators
from tests.support import run_teaser_cli

SITE = "acme"
T = TypeVar("T")


@pytest.fixture
async def registry(engine: AsyncEngine) -> OperatorRegistry:
    await SiteRegistry(engine).create(SITE)
    return OperatorRegistry(engine)


async def test_an_operator_signs_in_with_the_generated_password(
    registry: OperatorRegistry,
) -> None:
    created, password = await registry.create(SITE, "Ann@Acme.example ")
    signed_in = await registry.authenticate(SITE, "ann@acme.example", password)

    assert len(password) >= 20
    assert (signed_in.id, signed_in.email, signed_in.site_id) == (
        created.id,
        "ann@acme.example",
        SITE,
    )
    assert (await registry.find(SITE, "ANN@acme.example")) is not None


async def test_only_an_argon2id_hash_of_the_password_is_stored(
    registry: OperatorRegistry, engine: AsyncEngine
) -> None:
    _, password = await registry.create(SITE, "ann@acme.example")
    async with engine.connect() as connection:
        stored = (await connection.execute(select(operators.c.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$") and password not in stored


@pytest.mark.parametrize(
    ("site", "email", "password"),
    [
        (SITE, "ann@acme.example", "not-the-password"),
        (SITE, "bob@acme.example", "whatever"),
        ("elsewhere", "ann@acme.example", None),
        (SITE, "ann@acme.example", ""),
    ],
    ids=["wrong-password", "unknown-email", "other-site", "empty-password"],
)
async def test_every_failed_sign_in_is_the_same_refusal(
    registry: OperatorRegistry, site: str, email: str, password: str | None
) -> None:
    _, real = await registry.create(SITE, "ann@acme.example")
    with pytest.raises(Unauthorized) as refused:
        await registry.authenticate(site, email, real if password is None else password)
    assert refused.value.code == "invalid_login"


async def test_one_account_per_email_and_site_and_only_for_a_site_that_exists(
    registry: OperatorRegistry,
) -> None:
    await registry.create(SITE, "ann@acme.example")
    with pytest.raises(InvalidInput, match="already an operator"):
        await registry.create(SITE, "ANN@acme.example")
    with pytest.raises(NotFound):
        await registry.create("nowhere", "ann@acme.example")
    with pytest.raises(InvalidInput, match="e-mail"):
        await registry.create(SITE, "not an address")


async def test_a_reset_replaces_the_password_and_marks_when(registry: OperatorRegistry) -> None:
    created, old = await registry.create(SITE, "ann@acme.example")
    new = await registry.reset_password(SITE, "ann@acme.example")

    with pytest.raises(Unauthorized):
        await registry.authenticate(SITE, "ann@acme.example", old)
    assert (await registry.authenticate(SITE, "ann@acme.example", new)).id == created.id
    changed = await registry.get(created.id)
    assert changed is not None and changed.password_changed_at >= created.password_changed_at
    with pytest.raises(NotFound):
        await registry.reset_password(SITE, "nobody@acme.example")


async def test_removed_operators_are_gone_and_lists_are_per_site(
    registry: OperatorRegistry,
) -> None:
    ann, _ = await registry.create(SITE, "ann@acme.example")
    await registry.create(SITE, "bob@acme.example")
    assert await registry.remove(SITE, "bob@acme.example")
    assert not await registry.remove(SITE, "bob@acme.example")
    assert [o.email for o in await registry.list_operators(SITE)] == ["ann@acme.example"]
    assert await registry.list_operators("elsewhere") == []
    assert await registry.get(ann.id + 1000) is None


async def test_ensure_creates_the_demo_operator_once(registry: OperatorRegistry) -> None:
    first = await registry.ensure(SITE, "demo@acme.example")
    again = await registry.ensure(SITE, "demo@acme.example")
    assert first is not None and again is None
    await registry.authenticate(SITE, "demo@acme.example", first)


@pytest.mark.parametrize("ending", ["reset", "remove"])
async def test_a_reset_or_a_removal_ends_every_session_of_that_operator_only(
    registry: OperatorRegistry, engine: AsyncEngine, ending: str
) -> None:
    told: list[int] = []

    async def signed_out(operator_id: int) -> None:
        told.append(operator_id)

    registry.on_signed_out = signed_out
    sessions = OperatorSessions(engine)
    ann, _ = await registry.create(SITE, "ann@acme.example")
    bob, _ = await registry.create(SITE, "bob@acme.example")
    for nonce in ("laptop", "phone"):
        await sessions.open(ann.id, nonce, address="10.0.0.1", user_agent="")
    await sessions.open(bob.id, "bobs", address="10.0.0.2", user_agent="")

    if ending == "reset":
        await registry.reset_password(SITE, "ann@acme.example")
    else:
        await registry.remove(SITE, "ann@acme.example")

    assert [await sessions.live(ann.id, nonce) for nonce in ("laptop", "phone")] == [None, None]
    assert await sessions.live(bob.id, "bobs") is not None
    assert told == [ann.id]


def teaser(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_teaser_cli(database, *args)


def test_teaser_operator_add_prints_a_password_that_signs_in(tmp_path: Path) -> None:
    database = tmp_path / "teaser.db"
    assert teaser(database, "site", "add", SITE).returncode == 0
    added = teaser(database, "operator", "add", SITE, "ann@acme.example")
    listed = teaser(database, "operator", "list", SITE)

    assert added.returncode == 0, added.stderr
    password = added.stdout.rsplit(": ", 1)[1].strip()
    assert listed.stdout.startswith("ann@acme.example\t") and "last sign-in never" in listed.stdout

    async def sign_in() -> str:
        engine = create_engine(f"sqlite+aiosqlite:///{database}")
        try:
            return (
                await OperatorRegistry(engine).authenticate(SITE, "ann@acme.example", password)
            ).email
        finally:
            await engine.dispose()

    assert asyncio.run(sign_in()) == "ann@acme.example"


def on_database(database: Path, job: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(f"sqlite+aiosqlite:///{database}")
        try:
            return await job(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_teaser_operator_signout_ends_every_session_and_sessions_lists_the_live_ones(
    tmp_path: Path,
) -> None:
    database = tmp_path / "teaser.db"
    assert teaser(database, "site", "add", SITE).returncode == 0
    assert teaser(database, "operator", "add", SITE, "ann@acme.example").returncode == 0

    async def sign_in_twice(engine: AsyncEngine) -> int:
        operator = await OperatorRegistry(engine).find(SITE, "ann@acme.example")
        assert operator is not None
        for nonce, agent in (("laptop", "Firefox"), ("phone", "Safari")):
            await OperatorSessions(engine).open(
                operator.id, nonce, address="10.0.0.1", user_agent=agent
            )
        return operator.id

    async def live(engine: AsyncEngine) -> int:
        return len(await OperatorSessions(engine).list_live(operator_id))

    operator_id = on_database(database, sign_in_twice)
    listed = teaser(database, "operator", "sessions", SITE, "ann@acme.example")
    signed_out = teaser(database, "operator", "signout", SITE, "ann@acme.example")
    nobody = teaser(database, "operator", "signout", SITE, "nobody@acme.example")

    assert listed.returncode == 0 and "Firefox" in listed.stdout and "Safari" in listed.stdout
    assert signed_out.returncode == 0, signed_out.stderr
    assert "2 sessions" in signed_out.stdout
    assert nobody.returncode == 1 and "no operator" in nobody.stderr
    assert on_database(database, live) == 0
