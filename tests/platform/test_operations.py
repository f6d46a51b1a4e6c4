"""What operators run and scrape: /healthz, /metrics, /openapi.json, the teaser CLI, config."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from realtime.platform.config import Settings
from realtime.platform.errors import ConfigError
from tests.conftest import ServerFactory
from tests.support import (
    DEMO_HEADERS,
    InProcessServer,
    json_of,
    new_session_id,
    run_teaser_cli,
)


async def test_healthz_reports_database_and_broker(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert json_of(response) | {"openSockets": 0} == {
        "status": "ok",
        "database": "ok",
        "broker": "in-process",
        "openSockets": 0,
    }


async def test_healthz_checks_redis_when_configured(
    start_server: ServerFactory, redis_url: str
) -> None:
    server = await start_server(redis_url=redis_url)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        assert json_of(await client.get("/healthz"))["broker"] == "ok"


async def test_healthz_is_degraded_while_redis_is_unreachable(start_server: ServerFactory) -> None:
    server = await start_server(redis_url="redis://127.0.0.1:1/0")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/healthz")
        session = new_session_id()
        sent = await client.put(
            "/api/teaser-messages",
            headers=DEMO_HEADERS,
            json={"sessionId": session, "message": "still stored"},
        )
        polled = await client.post(
            "/api/teaser-messages", json={"sessionId": session, "siteId": "woodstock_outlet"}
        )

    assert (response.status_code, json_of(response)["status"]) == (200, "degraded")
    assert sent.status_code == 201
    assert [m["message"] for m in json_of(polled)["messages"]] == ["still stored"]


async def test_metrics_count_sends_deliveries_polls_and_sockets(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    url = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId=woodstock_outlet"
    async with connect(url) as socket:
        await client.put(
            "/api/teaser-messages",
            headers=DEMO_HEADERS,
            json={"sessionId": session, "message": "via socket"},
        )
        frame = json.loads(await asyncio.wait_for(socket.recv(), 2))
        await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
        await asyncio.sleep(0.2)
        during = (await client.get("/metrics")).text
    await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": "via poll"},
    )
    await client.post(
        "/api/teaser-messages", json={"sessionId": session, "siteId": "woodstock_outlet"}
    )
    after = (await client.get("/metrics")).text

    assert "teaser_open_sockets 1.0" in during
    assert 'teaser_messages_delivered_total{transport="websocket"} 1.0' in during
    assert 'teaser_messages_sent_total{site="woodstock_outlet"} 2.0' in after
    assert 'teaser_messages_delivered_total{transport="poll"} 1.0' in after
    assert 'teaser_polls_total{outcome="delivered"} 1.0' in after
    assert 'teaser_send_to_deliver_seconds_count{transport="websocket"} 1.0' in after
    assert 'teaser_send_to_deliver_seconds_count{transport="poll"} 1.0' in after
    assert "teaser_open_sockets 0.0" in after


async def test_expired_messages_are_counted_and_purged(start_server: ServerFactory) -> None:
    server = await start_server(purge_interval=0.2, message_retention_s=0)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        sent = json_of(
            await client.put(
                "/api/teaser-messages",
                headers=DEMO_HEADERS,
                json={"sessionId": new_session_id(), "message": "nobody came", "expiresIn": 1000},
            )
        )
        await asyncio.sleep(1.6)
        metrics = (await client.get("/metrics")).text
        status = await client.get(f"/api/teaser-messages/{sent['id']}", headers=DEMO_HEADERS)

    assert "teaser_messages_expired_total 1.0" in metrics
    assert status.status_code == 404  # purged


async def test_openapi_describes_the_http_api(client: httpx.AsyncClient) -> None:
    document = json_of(await client.get("/openapi.json"))
    assert document["openapi"].startswith("3.")
    assert {"put", "post"} <= set(document["paths"]["/api/teaser-messages"])
    assert "ErrorAnswer" in document["components"]["schemas"]


def run_cli(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    return run_teaser_cli(database, *args)


def test_the_cli_creates_sites_lists_and_revokes_keys(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    added = run_cli("site", "add", "acme", "--origin", "https://acme.example", database=database)
    listed = run_cli("site", "list", database=database)
    keys = run_cli("key", "list", "acme", database=database)
    revoked = run_cli("key", "revoke", "acme", "1", database=database)
    again = run_cli("key", "revoke", "acme", "1", database=database)
    upgraded = run_cli("db", "upgrade", database=database)

    assert added.returncode == 0, added.stderr
    key = added.stdout.split("store it now): ")[1].strip()
    assert key.startswith("tk_")
    assert "acme" in listed.stdout and "https://acme.example" in listed.stdout
    assert key not in keys.stdout and key[:6] in keys.stdout
    assert (
        revoked.returncode == 0
        and "revoked" in run_cli("key", "list", "acme", database=database).stdout
    )
    assert again.returncode == 1
    assert upgraded.returncode == 0


def test_the_cli_refuses_a_duplicate_site_with_a_clear_error(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    run_cli("site", "add", "acme", database=database)
    duplicate = run_cli("site", "add", "acme", database=database)
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr


@pytest.mark.parametrize(
    "environ,message",
    [
        (
            {"TEASER_MAX_MESSAGE_LENGTH": "lots"},
            "Config 'TEASER_MAX_MESSAGE_LENGTH' has value 'lots'",
        ),
        ({"TEASER_ENV": "staging"}, "Config 'TEASER_ENV' has value 'staging'"),
        ({"TEASER_AUTO_MIGRATE": "maybe"}, "Config 'TEASER_AUTO_MIGRATE' has value 'maybe'"),
        ({"TEASER_REDIS_PREFIX": "a b"}, "Config 'TEASER_REDIS_PREFIX' has value 'a b'"),
        ({"TEASER_REDIS_PREFIX": "x" * 65}, "Config 'TEASER_REDIS_PREFIX' has value 'x"),
        ({"REDIS_URL": "http://cache:6379"}, "Config 'REDIS_URL' has value 'http://cache:6379'"),
        (
            {"REDIS_URL": "redis+cluster://"},
            r"Config 'REDIS_URL' has value 'redis\+cluster://'. .* at least one node: host:port",
        ),
        (
            {"REDIS_URL": "rediss+cluster://cache-a:7000,cache-b/"},
            "Cluster node 'cache-b' is not host:port",
        ),
    ],
)
def test_bad_configuration_is_refused_with_the_variable_named(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_environ(environ)


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache:6379/0",
        "redis+cluster://cache-a:7000,cache-b:7000/",
        "rediss+cluster://teaser:s3cret@cache-a:7000,[2001:db8::1]:7000",
    ],
)
def test_one_redis_or_a_cluster_is_a_redis_url(url: str) -> None:
    assert Settings.from_environ({"REDIS_URL": url}).redis_url == url


def test_a_refused_redis_url_does_not_show_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_environ({"REDIS_URL": "rediss+cluster://teaser:s3cret@/"})
    assert "'rediss+cluster://teaser:***@/'" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_configuration_defaults_to_sqlite_and_the_in_process_broker() -> None:
    settings = Settings.from_environ({})
    assert settings.database_url == "sqlite+aiosqlite:///./teaser.db"
    assert settings.redis_url is None
    assert settings.redis_prefix == ""
    assert settings.poll_interval_ms == 8000
