"""GET /api/dashboard/sessions/{id}/wordings against a real server: every template's every
wording, filled in with what the session told (else its fallbacks, else null), for the
caller's own site only; signed-out callers and malformed ids are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest
import pytest_asyncio

from realtime.contract import WordingChoices
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    InProcessServer,
    event_time,
    fresh_database,
    json_of,
    make_settings,
    new_session_id,
    rules_dir,
    serving,
)

OTHER = "other_wordings_shop"
RULES = """
[[score]]
id = "chairs"
kind = "path_prefix"
prefixes = ["/chairs"]
points = 30
label = "Chairs"

[[template]]
id = "welcome"
situation = "known_customer"
text = "Welcome back, customer {customer_id}!"
fallback = "Welcome back!"

[[template.variant]]
name = "source"
text = "Hello, {utm_source} friend"
fallback = "Hello, friend"

[[template.variant]]
name = "mail"
text = "Mail for {customer_email}"

[[template]]
id = "browsing"
situation = "browsing"
text = "Still looking at {page_category}?"
"""
FALLBACKS = [
    {"template": "welcome", "variant": "original", "text": "Welcome back!"},
    {"template": "welcome", "variant": "source", "text": "Hello, friend"},
    {"template": "welcome", "variant": "mail", "text": "Welcome back!"},
    {"template": "browsing", "variant": None, "text": None},
]


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessServer]:
    folder = Path(tmp_path_factory.mktemp("wordings"))
    rules = rules_dir(folder, DEMO_SITE, RULES)
    async with (
        fresh_database(request.param, folder) as url,
        serving(make_settings(database_url=url, rules_dir=str(rules))) as live,
    ):
        yield live


@pytest_asyncio.fixture(loop_scope="module")
async def client(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        yield http


async def report(
    client: httpx.AsyncClient, session: str, site: str = DEMO_SITE, **fields: Any
) -> None:
    body = {"sessionId": session, "siteId": site, "type": "page_view", "path": "/", **fields}
    body["ts"] = event_time(hash((session, str(fields))))
    answer = await client.post("/api/events", content=orjson.dumps(body))
    assert answer.status_code == 202, answer.text


async def wordings(
    client: httpx.AsyncClient, session: str, headers: dict[str, str] = DEMO_HEADERS
) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/dashboard/sessions/{session}/wordings", headers=headers)
    assert answer.status_code == 200, answer.text
    body = json_of(answer)
    # Exactly the declared answer: no field more or less than WordingChoices has.
    assert msgspec.to_builtins(msgspec.convert(body, WordingChoices)) == body
    found: list[dict[str, Any]] = body["wordings"]
    return found


def texts(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: w[k] for k in ("template", "variant", "text")} for w in found]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_session_s_wordings_are_filled_in_with_what_it_told(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    await report(client, session, customerId="42", utm={"utm_source": "facebook"})
    await report(client, session, path="/chairs/oak")

    found = await wordings(client, session)

    assert texts(found) == [
        {"template": "welcome", "variant": "original", "text": "Welcome back, customer 42!"},
        {"template": "welcome", "variant": "source", "text": "Hello, Facebook friend"},
        {"template": "welcome", "variant": "mail", "text": "Welcome back!"},  # no e-mail told
        {"template": "browsing", "variant": None, "text": "Still looking at chairs?"},
    ]
    assert [w["source"] for w in found] == [
        "Welcome back, customer {customer_id}!",
        "Hello, {utm_source} friend",
        "Mail for {customer_email}",
        "Still looking at {page_category}?",
    ]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_session_that_told_nothing_gets_the_fallbacks_or_null(
    client: httpx.AsyncClient,
) -> None:
    quiet = new_session_id()
    await report(client, quiet, path="/about")

    assert texts(await wordings(client, quiet)) == FALLBACKS


@pytest.mark.asyncio(loop_scope="module")
async def test_a_session_not_stored_yet_gets_the_fallbacks_not_a_404(
    client: httpx.AsyncClient,
) -> None:
    assert texts(await wordings(client, new_session_id())) == FALLBACKS


@pytest.mark.asyncio(loop_scope="module")
async def test_another_site_s_session_is_not_read(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    assert server.runtime is not None
    _, key = await server.runtime.sites.create(OTHER)
    session = new_session_id()
    await report(client, session, site=OTHER, customerId="42", path="/chairs")

    mine = await wordings(client, session)  # the same id, asked by the demo site
    theirs = await wordings(client, session, {"X-API-Key": key, "X-Site-ID": OTHER})

    assert texts(mine) == FALLBACKS
    assert theirs and {w["template"] for w in theirs} != {"welcome", "browsing"}  # defaults


@pytest.mark.asyncio(loop_scope="module")
async def test_a_caller_signed_out_is_refused_with_401(client: httpx.AsyncClient) -> None:
    answer = await client.get(f"/api/dashboard/sessions/{new_session_id()}/wordings")

    assert answer.status_code == 401
    assert json_of(answer)["error"]["code"] == "not_signed_in"


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("bad", ["not%20a%20session", "x" * 129, "sess%3Cscript%3E"])
async def test_a_malformed_session_id_is_refused_with_422_naming_it(
    client: httpx.AsyncClient, bad: str
) -> None:
    answer = await client.get(f"/api/dashboard/sessions/{bad}/wordings", headers=DEMO_HEADERS)

    assert answer.status_code == 422, answer.text
    assert "session_id" in json_of(answer)["error"]["message"]
