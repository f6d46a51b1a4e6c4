"""/api/webhooks with the site's key: add (the secret once), list,
rotate (both secrets sign for a day), test, deliveries, replay and remove; bad input is a
4xx naming what is wrong, on SQLite and PostgreSQL. A signed-in operator gets the same API
for their own site alone, with the CSRF token on every change."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from standardwebhooks import Webhook

from tests.support import (
    InProcessServer,
    fresh_database,
    json_of,
    make_settings,
    serving,
)
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.asyncio(loop_scope="module")
sites = itertools.count(1)


@dataclass(frozen=True)
class Tenant:
    http: httpx.AsyncClient
    headers: dict[str, str]
    server: InProcessServer

    async def call(self, method: str, path: str, **extra: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.headers, **extra)


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessServer]:
    async with (
        fresh_database(request.param, tmp_path_factory.mktemp("api")) as url,
        serving(
            make_settings(database_url=url, webhook_allow_private=True, webhook_interval=0.05)
        ) as live,
    ):
        yield live


@pytest_asyncio.fixture(loop_scope="module")
async def tenant(server: InProcessServer) -> AsyncIterator[Tenant]:
    assert server.runtime is not None
    site_id = f"api-{next(sites)}"
    _, key = await server.runtime.sites.create(site_id)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        yield Tenant(http, {"X-API-Key": key, "X-Site-ID": site_id}, server)


async def add(tenant: Tenant, url: str, **body: Any) -> dict[str, Any]:
    answer = await tenant.call("POST", "/api/webhooks", json={"url": url, **body})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = json_of(answer)
    return created


async def test_an_added_endpoint_is_listed_without_its_secret(
    tenant: Tenant, receiver: Receiver
) -> None:
    created = await add(tenant, receiver.url("listed"), events=["teaser.clicked"])
    listed = json_of(await tenant.call("GET", "/api/webhooks"))

    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", created["secret"])
    assert created["endpoint"]["number"] == 1
    assert listed == {"endpoints": [created["endpoint"]]}
    assert listed["endpoints"][0]["state"] == "enabled"
    assert "secret" not in repr(listed)


async def test_numbers_are_never_reused_after_a_removal(tenant: Tenant, receiver: Receiver) -> None:
    first = await add(tenant, receiver.url("a"))
    removed = await tenant.call("DELETE", "/api/webhooks/1")
    second = await add(tenant, receiver.url("b"))
    gone = await tenant.call("POST", "/api/webhooks/1/test")

    assert removed.status_code == 204
    assert (first["endpoint"]["number"], second["endpoint"]["number"]) == (1, 2)
    assert (gone.status_code, json_of(gone)["error"]["code"]) == (404, "endpoint_not_found")


async def test_after_a_rotation_both_secrets_verify_for_a_day(
    tenant: Tenant, receiver: Receiver
) -> None:
    path = f"rotated-{id(tenant)}"
    old = (await add(tenant, receiver.url(path)))["secret"]
    rotated = json_of(await tenant.call("POST", "/api/webhooks/1/rotate"))
    queued = json_of(await tenant.call("POST", "/api/webhooks/1/test"))

    [event] = await receiver.wait_for(path, 1)
    assert event.id == queued["webhookId"]
    assert len(event.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, rotated["secret"]):
        assert Webhook(secret).verify(event.body, event.headers)["type"] == "teaser.test"
    assert rotated["secret"] != old and rotated["previousValidUntil"] > event.event["timestamp"]


async def test_deliveries_show_each_attempt_and_a_replay_sends_again(
    tenant: Tenant, receiver: Receiver
) -> None:
    path = f"replayed-{id(tenant)}"
    await add(tenant, receiver.url(path))
    await tenant.call("POST", "/api/webhooks/1/test")
    await receiver.wait_for(path, 1)
    # The receiver has answered; the sender writes the outcome just after.
    for _ in range(100):
        [delivery] = json_of(await tenant.call("GET", "/api/webhooks/1/deliveries"))["deliveries"]
        if delivery["status"] != "pending":
            break
        await asyncio.sleep(0.05)
    replayed = await tenant.call("POST", f"/api/webhooks/1/deliveries/{delivery['id']}/replay")

    assert (delivery["status"], delivery["statusCode"], delivery["attempts"]) == (
        "delivered",
        200,
        1,
    )
    assert delivery["latencyMs"] >= 0 and delivery["response"] == "answered 200"
    assert replayed.status_code == 202
    for _ in range(100):
        if len(receiver.at(path)) == 2:
            break
        await asyncio.sleep(0.05)
    assert [each.id for each in receiver.at(path)] == [delivery["webhookId"]] * 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://shop.example/hook"}, "url"),
        ({"url": "https://user:pw@shop.example/hook"}, "url"),
        ({"url": "https://shop.example/hook#part"}, "url"),
        ({"url": "https://shop.example:99999/"}, "url"),
        ({"url": ""}, "url"),
        ({"url": "https://shop.example/", "events": ["teaser.sent"]}, "events"),
        ({"url": "https://shop.example/", "secret": "mine"}, "secret"),
    ],
)
async def test_a_bad_endpoint_is_refused_naming_the_field(
    tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    answer = await tenant.call("POST", "/api/webhooks", json=body)

    assert answer.status_code == 422, answer.text
    assert field in json_of(answer)["error"]["message"]
    assert json_of(await tenant.call("GET", "/api/webhooks")) == {"endpoints": []}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("DELETE", "/api/webhooks/0", 422),
        ("DELETE", "/api/webhooks/abc", 422),
        ("POST", "/api/webhooks/99/rotate", 404),
        ("GET", "/api/webhooks/99999999999/deliveries", 422),
        ("POST", "/api/webhooks/1/deliveries/7/replay", 404),
        ("POST", "/api/webhooks/1/deliveries/-7/replay", 422),
    ],
)
async def test_a_path_naming_nothing_is_a_4xx(
    tenant: Tenant, receiver: Receiver, method: str, path: str, status: int
) -> None:
    await add(tenant, receiver.url("named"))
    answer = await tenant.call(method, path)

    assert answer.status_code == status, answer.text


async def test_every_route_wants_the_sites_key(tenant: Tenant) -> None:
    for method, path in (("GET", "/api/webhooks"), ("POST", "/api/webhooks/1/test")):
        answer = await tenant.http.request(method, path)
        assert answer.status_code == 401


async def test_a_site_sees_only_its_own_endpoints(tenant: Tenant, receiver: Receiver) -> None:
    await add(tenant, receiver.url("mine"))
    assert tenant.server.runtime is not None
    other_id = f"other-{next(sites)}"
    _, key = await tenant.server.runtime.sites.create(other_id)
    other = {"X-API-Key": key, "X-Site-ID": other_id}

    assert json_of(await tenant.http.get("/api/webhooks", headers=other)) == {"endpoints": []}
    assert (await tenant.http.delete("/api/webhooks/1", headers=other)).status_code == 404


@asynccontextmanager
async def sign_in(tenant: Tenant, site_id: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding the session cookie of a new operator of `site_id` (no CSRF token)."""
    assert tenant.server.runtime is not None
    email = f"op-{next(sites)}@shop.example"
    _, password = await tenant.server.runtime.operators.create(site_id, email)
    async with httpx.AsyncClient(base_url=tenant.server.base_url, timeout=10) as client:
        answer = await client.post(
            "/api/operator/login", json={"siteId": site_id, "email": email, "password": password}
        )
        assert answer.status_code == 200, answer.text
        client.headers["X-Test-CSRF"] = answer.json()["csrfToken"]
        yield client


def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.headers["X-Test-CSRF"]}


async def test_an_operator_manages_their_sites_endpoints_with_the_csrf_token(
    tenant: Tenant, receiver: Receiver
) -> None:
    path = f"operated-{id(tenant)}"
    site_id = tenant.headers["X-Site-ID"]
    async with sign_in(tenant, site_id) as operator:
        created = await operator.post(
            "/api/webhooks", json={"url": receiver.url(path)}, headers=csrf(operator)
        )
        queued = await operator.post("/api/webhooks/1/test", headers=csrf(operator))
        [event] = await receiver.wait_for(path, 1)
        listed = json_of(await operator.get("/api/webhooks"))
        by_key = json_of(await tenant.call("GET", "/api/webhooks"))

    assert created.status_code == 201, created.text
    assert event.verified(json_of(created)["secret"])["type"] == "teaser.test"
    assert event.id == json_of(queued)["webhookId"]
    assert listed == by_key
    assert [each["url"] for each in listed["endpoints"]] == [receiver.url(path)]


async def test_an_operators_change_without_the_csrf_token_is_refused(
    tenant: Tenant, receiver: Receiver
) -> None:
    await add(tenant, receiver.url("guarded"))
    async with sign_in(tenant, tenant.headers["X-Site-ID"]) as operator:
        answers = [
            await operator.post("/api/webhooks", json={"url": receiver.url("forged")}),
            await operator.delete("/api/webhooks/1"),
            await operator.post("/api/webhooks/1/rotate", headers={"X-CSRF-Token": "wrong"}),
            await operator.post(
                "/api/webhooks/1/test",
                headers={**csrf(operator), "Origin": "https://evil.example"},
            ),
        ]

    assert [(each.status_code, json_of(each)["error"]["code"]) for each in answers] == [
        (403, "csrf_failed"),
        (403, "csrf_failed"),
        (403, "csrf_failed"),
        (403, "origin_not_allowed"),
    ]
    assert len(json_of(await tenant.call("GET", "/api/webhooks"))["endpoints"]) == 1


async def test_an_operator_sees_only_their_own_sites_endpoints(
    tenant: Tenant, receiver: Receiver
) -> None:
    await add(tenant, receiver.url("theirs"))
    assert tenant.server.runtime is not None
    other_id = f"other-{next(sites)}"
    await tenant.server.runtime.sites.create(other_id)
    async with sign_in(tenant, other_id) as operator:
        listed = json_of(await operator.get("/api/webhooks"))
        deliveries = await operator.get("/api/webhooks/1/deliveries")
        removed = await operator.delete("/api/webhooks/1", headers=csrf(operator))

    assert listed == {"endpoints": []}
    assert (deliveries.status_code, removed.status_code) == (404, 404)
    assert len(json_of(await tenant.call("GET", "/api/webhooks"))["endpoints"]) == 1
