"""A receiver in Node verifies Teaser's webhooks with the `standardwebhooks` npm library, as
docs/webhooks.md's Express route does: a real delivery verifies, a tampered one doesn't."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from realtime.runtime import Runtime
from tests.support import DEMO_HEADERS, DEMO_SITE, InProcessServer, make_settings, new_session_id
from tests.webhooks.receiver import Received, Receiver

NODE_DIR = Path(__file__).parent / "node"
pytestmark = pytest.mark.asyncio(loop_scope="module")


def node_or_skip() -> str:
    """Node and the pinned library; .ci/run installs it, so only a local run may skip."""
    node = shutil.which("node")
    if node and (NODE_DIR / "node_modules" / "standardwebhooks").is_dir():
        return node
    message = "standardwebhooks for Node is not installed (run `npm ci` in tests/webhooks/node)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " and CI=true requires it", pytrace=False)
    pytest.skip(message)


def node_verifies(
    secret: str, headers: dict[str, str], body: bytes
) -> subprocess.CompletedProcess[str]:
    request = {"secret": secret, "headers": headers, "body": body.decode()}
    return subprocess.run(
        [node_or_skip(), str(NODE_DIR / "verify.mjs")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def delivered(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[str, Received]]:
    """One real `teaser.delivered`, as the receiver got it, and the endpoint's secret."""
    receiver = Receiver()
    await receiver.start()
    database = tmp_path_factory.mktemp("node") / "teaser.db"
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        webhook_allow_private=True,
        webhook_interval=0.05,
    )
    server = InProcessServer(settings, runtime=Runtime(settings))
    await server.start()
    try:
        assert server.runtime is not None
        _, secret = await server.runtime.webhooks.add(DEMO_SITE, receiver.url("node"), ())
        session = new_session_id()
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            sent = await http.put(
                "/api/teaser-messages",
                headers=DEMO_HEADERS,
                json={"sessionId": session, "message": "Verified in Node"},
            )
            assert sent.status_code == 201, sent.text
            polled = await http.post(
                "/api/teaser-messages", json={"siteId": DEMO_SITE, "sessionId": session}
            )
            assert polled.status_code == 200, polled.text
        [event] = await receiver.wait_for("node", 1, timeout=30)
        yield secret, event
    finally:
        await server.stop()
        await receiver.stop()


async def test_node_verifies_a_real_delivery_with_the_endpoints_secret(
    delivered: tuple[str, Received],
) -> None:
    secret, event = delivered
    result = node_verifies(secret, event.headers, event.body)

    assert result.returncode == 0, result.stderr
    verified = json.loads(result.stdout)
    assert verified["type"] == "teaser.delivered"
    assert verified["data"]["via"] == "poll"


async def test_node_refuses_a_changed_body_or_another_secret(
    delivered: tuple[str, Received],
) -> None:
    secret, event = delivered
    changed = event.body.replace(b"poll", b"websocket")
    assert node_verifies(secret, event.headers, changed).returncode == 1
    other = "whsec_" + "A" * 32
    assert node_verifies(other, event.headers, event.body).returncode == 1
