"""Each thing Teaser records reaches a real receiver as one signed Standard Webhooks event:
a socket's ack and a poll (teaser.delivered, with its transport), what the widget reports
(shown, clicked, converted), an automatic teaser with why, and an expiry (once); each
payload has the contract's shape, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from websockets.asyncio.client import connect

from realtime.contract import WEBHOOK_EVENTS
from realtime.platform.tables import webhook_deliveries, webhook_outbox
from realtime.runtime import Runtime
from tests.support import (
    InProcessServer,
    ShiftedClock,
    fresh_database,
    json_of,
    make_settings,
    new_session_id,
)
from tests.webhooks.receiver import Received, Receiver

pytestmark = pytest.mark.asyncio(loop_scope="module")
sites = itertools.count(1)


@dataclass(frozen=True)
class Live:
    server: InProcessServer
    clock: ShiftedClock
    http: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        assert self.server.runtime is not None
        return self.server.runtime


@dataclass(frozen=True)
class Site:
    id: str
    headers: dict[str, str]
    secret: str
    path: str  # where its endpoint is on the receiver


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgresql"])
async def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    async with fresh_database(request.param, tmp_path_factory.mktemp("events")) as url:
        settings = make_settings(
            database_url=url, webhook_allow_private=True, webhook_interval=0.05, claim_lease_ms=1000
        )
        clock = ShiftedClock()
        server = InProcessServer(settings, runtime=Runtime(settings, clock=clock))
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                yield Live(server, clock, http)
        finally:
            await server.stop()


async def new_site(live: Live, receiver: Receiver, events: tuple[str, ...] = ()) -> Site:
    """A site of its own with one endpoint on the receiver, so tests hear only themselves."""
    site_id = f"hooks-{next(sites)}"
    _, key = await live.runtime.sites.create(site_id)
    path = f"{site_id}-{id(live)}"
    _, secret = await live.runtime.webhooks.add(site_id, receiver.url(path), events)
    return Site(site_id, {"X-API-Key": key, "X-Site-ID": site_id}, secret, path)


async def send(live: Live, site: Site, session: str, **extra: object) -> dict[str, Any]:
    body = {"sessionId": session, "message": "Still there?", **extra}
    answer = await live.http.put("/api/teaser-messages", json=body, headers=site.headers)
    assert answer.status_code == 201, answer.text
    sent: dict[str, Any] = json_of(answer)
    return sent


async def report(live: Live, site: Site, session: str, kind: str, **extra: object) -> None:
    body = {"siteId": site.id, "sessionId": session, "type": kind, **extra}
    answer = await live.http.post("/api/events", json=body)
    assert answer.status_code == 202, answer.text


def verified(received: Received, site: Site) -> dict[str, Any]:
    """The payload, verified with the standardwebhooks library and decoded by its contract
    type, whose fields it has exactly."""
    payload = received.verified(site.secret)
    kind = WEBHOOK_EVENTS[payload["type"]]
    msgspec.convert(payload, kind)
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    [data] = [field.type for field in info.fields if field.name == "data"]
    assert isinstance(data, msgspec.inspect.StructType)
    assert set(payload["data"]) == {field.encode_name for field in data.fields}
    return payload


async def test_a_socket_ack_makes_one_delivered_event_via_websocket(
    live: Live, receiver: Receiver
) -> None:
    site, session = await new_site(live, receiver), new_session_id()
    url = f"{live.server.ws_url}/api/teaser-ws?sessionId={session}&siteId={site.id}"
    async with connect(url) as socket:
        sent = await send(live, site, session)
        while (frame := json.loads(await socket.recv()))["type"] != "teaser":
            pass
        await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
        [event] = await receiver.wait_for(site.path, 1)

    payload = verified(event, site)
    assert payload["type"] == "teaser.delivered"
    assert payload["data"]["teaserId"] == sent["id"]
    assert payload["data"]["via"] == "websocket"
    assert payload["data"]["latencyMs"] >= 0
    assert event.id == f"evt_delivered_{sent['id']}"


async def test_a_poll_makes_one_delivered_event_via_poll(live: Live, receiver: Receiver) -> None:
    site, session = await new_site(live, receiver), new_session_id()
    sent = await send(live, site, session)
    polled = await live.http.post(
        "/api/teaser-messages", json={"siteId": site.id, "sessionId": session}
    )
    assert [m["id"] for m in json_of(polled)["messages"]] == [sent["id"]]

    [event] = await receiver.wait_for(site.path, 1)
    payload = verified(event, site)
    assert (payload["type"], payload["data"]["via"]) == ("teaser.delivered", "poll")
    assert payload["data"]["sessionSeq"] == 1


async def test_shown_clicked_and_converted_follow_the_widgets_events(
    live: Live, receiver: Receiver
) -> None:
    site = await new_site(live, receiver, ("teaser.shown", "teaser.clicked", "teaser.converted"))
    session = new_session_id()
    teaser = await send(live, site, session)
    for kind in ("teaser_shown", "teaser_click", "conversion"):
        await report(live, site, session, kind, path="/chairs", teaserId=teaser["id"], value=12.5)

    events = [verified(each, site) for each in await receiver.wait_for(site.path, 3)]
    assert [e["type"] for e in events] == ["teaser.shown", "teaser.clicked", "teaser.converted"]
    assert {e["data"]["teaserId"] for e in events} == {teaser["id"]}
    assert events[2]["data"]["value"] == 12.5


async def test_a_replayed_event_is_reported_once(live: Live, receiver: Receiver) -> None:
    site, session = await new_site(live, receiver, ("teaser.clicked",)), new_session_id()
    for _ in range(2):
        await report(live, site, session, "teaser_click", path="/", ts="2026-01-01T00:00:00Z")
    await report(live, site, session, "teaser_click", path="/", ts="2026-01-01T00:00:01Z")

    assert len(await receiver.wait_for(site.path, 2)) == 2
    await asyncio.sleep(0.5)
    assert len(receiver.at(site.path)) == 2


async def test_an_automatic_teaser_is_reported_with_why(live: Live, receiver: Receiver) -> None:
    site, session = await new_site(live, receiver, ("auto_teaser.sent",)), new_session_id()
    await report(live, site, session, "page_view", path="/checkout")

    [event] = await receiver.wait_for(site.path, 1)
    data = verified(event, site)["data"]
    assert data["sessionId"] == session
    assert data["template"] and data["message"]
    assert data["variant"] is None  # the shipped rules' templates have no variants
    assert any("/checkout" in reason for reason in data["reasons"])
    assert all({"rule", "label", "points", "detail"} == set(rule) for rule in data["rules"])


async def test_an_expired_teaser_is_reported_once(live: Live, receiver: Receiver) -> None:
    site, session = await new_site(live, receiver, ("teaser.expired",)), new_session_id()
    sent = await send(live, site, session, expiresIn=1000)
    live.clock.offset += 60_000  # long past its expiry, and the sockets' lease on it

    [event] = await receiver.wait_for(site.path, 1)
    payload = verified(event, site)
    assert payload["data"]["teaserId"] == sent["id"]
    assert event.id == f"evt_expired_{sent['id']}"
    await asyncio.sleep(0.7)  # more sweeps, from the same watermark and a fresh one
    live.runtime.dispatcher._expired_until -= 120_000
    await asyncio.sleep(0.7)
    assert len(receiver.at(site.path)) == 1


async def test_an_endpoint_gets_only_the_events_it_takes(live: Live, receiver: Receiver) -> None:
    site, session = await new_site(live, receiver, ("teaser.clicked",)), new_session_id()
    await send(live, site, session)
    await live.http.post("/api/teaser-messages", json={"siteId": site.id, "sessionId": session})
    await report(live, site, session, "teaser_shown", path="/")
    await report(live, site, session, "teaser_click", path="/")

    [event] = await receiver.wait_for(site.path, 1)
    assert event.event["type"] == "teaser.clicked"
    await asyncio.sleep(0.3)
    assert len(receiver.at(site.path)) == 1


async def test_a_site_without_endpoints_writes_no_outbox_rows(live: Live) -> None:
    site_id = f"quiet-{next(sites)}"
    _, key = await live.runtime.sites.create(site_id)
    site = Site(site_id, {"X-API-Key": key, "X-Site-ID": site_id}, "", "")
    session = new_session_id()
    await send(live, site, session)
    await live.http.post("/api/teaser-messages", json={"siteId": site_id, "sessionId": session})
    await report(live, site, session, "teaser_click", path="/")

    async with live.runtime.engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(webhook_outbox.c.site_id == site_id)
        )
    assert count == 0


async def test_a_test_event_and_a_replay_come_with_the_same_signature_scheme(
    live: Live, receiver: Receiver
) -> None:
    site = await new_site(live, receiver)
    webhook_id = await live.runtime.webhooks.queue_test(site.id, 1)
    [first] = await receiver.wait_for(site.path, 1)
    assert (first.id, verified(first, site)["type"]) == (webhook_id, "teaser.test")

    # The receiver has answered; the sender writes the outcome just after.
    for _ in range(100):
        [delivery] = await live.runtime.webhooks.deliveries(site.id, 1)
        if delivery.status != "pending":
            break
        await asyncio.sleep(0.05)
    assert (delivery.status, delivery.status_code, delivery.attempts) == ("delivered", 200, 1)
    await live.runtime.webhooks.replay(site.id, 1, delivery.id)
    for _ in range(100):
        if len(receiver.at(site.path)) == 2:
            break
        await asyncio.sleep(0.05)
    again = receiver.at(site.path)[1]
    assert again.id == webhook_id and again.body == first.body
    assert verified(again, site)["data"]["endpoint"] == 1


async def test_erasing_a_person_erases_their_webhook_events_and_deliveries_only(
    live: Live, receiver: Receiver
) -> None:
    site = await new_site(live, receiver, ("teaser.converted",))
    erased, kept = new_session_id(), new_session_id()
    for session, customer in ((erased, "erase-me"), (kept, "keep-me")):
        await report(live, site, session, "page_view", path="/", customerId=customer)
        await report(live, site, session, "conversion", path="/thanks", value=5)
    await receiver.wait_for(site.path, 2)

    erasure = await live.runtime.privacy.erase(customer_id="erase-me", site_id=site.id)

    assert erasure.rows["webhook_outbox"] == 1
    assert erasure.rows["webhook_deliveries"] == 1
    outbox, deliveries = webhook_outbox.c, webhook_deliveries.c
    async with live.runtime.engine.connect() as connection:
        for session, expected in ((erased, 0), (kept, 1)):
            count = select(func.count()).where(
                outbox.site_id == site.id, outbox.session_id == session
            )
            assert (await connection.execute(count)).scalar_one() == expected
            count = select(func.count()).where(deliveries.session_id == session)
            assert (await connection.execute(count)).scalar_one() == expected
