"""Variants and the holdout, live: a qualifying session is sent the wording its hash gives
it, or nothing if it is held out — on whichever worker takes its events and whichever
holds its socket — and the decision is stored, explained and exported as such."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from realtime.platform.tables import teaser_messages, webhook_events_internal
from realtime.targeting.experiments import held_out, variant_for
from realtime.targeting.rules import parse_rules
from tests.conftest import ServerFactory
from tests.insight.test_dashboard_api import post_event, sign_in
from tests.support import (
    InProcessServer,
    new_session_id,
    require_redis,
    rules_dir,
    running_workers,
)

SITE = "woodstock_outlet"
HOLDOUT = 0.3
RULES = f"""
[trigger]
critical_pages = ["/cart"]
holdout = {HOLDOUT}

[[template]]
id = "cart"
situation = "cart"
text = "Need a hand with your cart?"

[[template.variant]]
name = "free-shipping"
text = "Free shipping on your cart today"
"""
CART = parse_rules(RULES, "test").templates[0]
WORDING = {"original": CART.text, "free-shipping": CART.variants[0].text}


def wording_of(session: str) -> str:
    variant = variant_for(SITE, session, CART)
    assert variant is not None
    return variant.name


@pytest.fixture
async def live(start_server: ServerFactory, database_url: str, tmp_path: Path) -> InProcessServer:
    return await start_server(
        database_url=database_url, rules_dir=str(rules_dir(tmp_path, SITE, RULES))
    )


async def test_a_held_out_session_is_sent_nothing_and_the_others_their_own_wording(
    live: InProcessServer,
) -> None:
    sessions = [new_session_id() for _ in range(40)]
    async with httpx.AsyncClient(base_url=live.base_url, timeout=10) as client:
        outcomes = {s: await post_event(client, s, path="/cart") for s in sessions}
        metrics = (await client.get("/metrics")).text
    assert live.runtime is not None
    async with live.runtime.engine.connect() as connection:
        sent = {
            row.session_id: row.message
            for row in await connection.execute(
                select(teaser_messages.c.session_id, teaser_messages.c.message)
            )
        }
        stored = {
            row.session_id: row for row in await connection.execute(select(webhook_events_internal))
        }

    out = {s for s in sessions if held_out(SITE, s, HOLDOUT)}
    assert 0 < len(out) < len(sessions)  # 40 sessions at 0.3: both kinds, whatever the ids
    assert f"teaser_auto_held_out_total {len(out)}" in metrics
    assert f"teaser_auto_triggers_total {len(sessions) - len(out)}" in metrics
    assert sent.keys() == set(sessions) - out
    for session in sessions:
        trigger = stored[session].explanation["trigger"]
        assert trigger["variant"] == wording_of(session)
        assert trigger["heldOut"] is (session in out)
        assert stored[session].held_out is (session in out)
        assert stored[session].ai_triggered is (session not in out)
        assert outcomes[session]["triggered"] is (session not in out)
        if session in out:
            assert trigger["send"] is False and trigger["blockedBy"] == "held_out"
            assert "teaserId" not in trigger
        else:
            assert sent[session] == WORDING[wording_of(session)]
            assert trigger["message"] == sent[session]


async def test_the_export_carries_each_automatic_decision_s_variant_or_held_out(
    live: InProcessServer,
) -> None:
    sessions = [new_session_id() for _ in range(30)]
    operator = await sign_in(live)
    try:
        for session in sessions:
            await post_event(operator, session, path="/cart")
        await post_event(operator, new_session_id(), path="/about")  # no decision at all
        as_json = (await operator.get("/api/events/export", params={"filter": "ai"})).json()
        as_csv = await operator.get("/api/events/export", params={"format": "csv"})
    finally:
        await operator.aclose()

    decisions = [row for row in as_json if row["kind"] == "event"]
    rows = [row for row in csv.DictReader(io.StringIO(as_csv.text)) if row["kind"] == "event"]
    assert {row["sessionId"] for row in decisions} == set(sessions)  # auto filter: both kinds
    for row in decisions:
        assert row["variant"] == wording_of(row["sessionId"])
        assert row["heldOut"] is held_out(SITE, row["sessionId"], HOLDOUT)
        assert row["aiTriggered"] is not row["heldOut"]
    by_session = {row["sessionId"]: row for row in rows}
    assert len(by_session) == len(sessions) + 1
    for session in sessions:
        assert by_session[session]["variant"] == wording_of(session)
        assert by_session[session]["heldOut"] == str(held_out(SITE, session, HOLDOUT)).lower()
    assert [r["variant"] for r in rows if r["sessionId"] not in sessions] == [""]


async def _frames(socket: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every teaser frame the socket is sent within `seconds`, each acked."""
    frames: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            frame = json.loads(await asyncio.wait_for(socket.recv(), left))
        except TimeoutError:
            break
        if frame.get("type") == "teaser":
            frames.append(frame)
            await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
    return frames


async def test_a_held_out_session_receives_no_auto_teaser_on_any_worker(
    postgres_url: str, tmp_path: Path
) -> None:
    """Events for each session go to both workers in turn, its socket is on the other one
    first and then on the first: a held-out session is sent nothing anywhere; every other
    session exactly one teaser, in its own wording."""
    env = {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": await require_redis(),
        "TEASER_RULES_DIR": str(rules_dir(tmp_path, SITE, RULES)),
    }
    sessions = [new_session_id() for _ in range(24)]
    async with (
        running_workers(env, tmp_path) as (a, b),
        httpx.AsyncClient(base_url=a.base_url, timeout=10) as to_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=10) as to_b,
    ):

        async def visit(number: int, session: str) -> list[dict[str, Any]]:
            # Its first event to one worker, its socket and its next event on the other.
            first, socket_on, then = (to_a, b, to_b) if number % 2 else (to_b, a, to_a)
            url = f"{socket_on.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}&path=/cart"
            async with connect(url) as socket:
                await post_event(first, session, path="/cart")
                # A second qualifying page on the other worker: the cooldown keeps a sent
                # session to one teaser; a held-out one is decided again, and held out again.
                await post_event(then, session, path="/cart/items")
                return await _frames(socket, 1.0)

        received = dict(
            zip(sessions, await asyncio.gather(*map(visit, range(24), sessions)), strict=True)
        )

    for session in sessions:
        messages = [frame["message"] for frame in received[session]]
        if held_out(SITE, session, HOLDOUT):
            assert messages == [], session
        else:
            assert messages == [WORDING[wording_of(session)]], session
    assert any(held_out(SITE, s, HOLDOUT) for s in sessions)
