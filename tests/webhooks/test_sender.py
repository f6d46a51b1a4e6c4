"""One attempt, against a real receiver: a name that resolves to a private address is
refused before any connection, only https in production, no redirect followed, a long
answer read only in part, a silent receiver given up at the timeout."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from realtime.platform import create_engine, now_ms
from realtime.platform.outbox import Subscriptions
from realtime.webhooks import Dispatcher, RetryPolicy, Sender, UnsafeAddress, check_url
from realtime.webhooks.addresses import resolve
from realtime.webhooks.queue import DeliveryQueue
from tests.webhooks.receiver import Behaviour, Receiver

pytestmark = pytest.mark.asyncio(loop_scope="module")
BODY = b'{"type":"teaser.test","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
HEADERS = {"webhook-id": "evt_x", "webhook-timestamp": "1", "webhook-signature": "v1,x"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    live = Receiver()
    live.behaviours |= {
        "moved": Behaviour(307, location="/elsewhere"),
        "long": Behaviour(200, body_bytes=1_000_000),
        "silent": Behaviour(200, delay=5),
    }
    await live.start()
    yield live
    await live.stop()


def sender(*, production: bool = False, allow_private: bool = True) -> Sender:
    return Sender(timeout=1.0, production=production, allow_private=allow_private)


def own_name() -> str:
    """This machine's name, which its hosts file resolves to a loopback or private address."""
    name = socket.gethostname()
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(name, 80)}
    except OSError:
        pytest.skip(f"{name} does not resolve here")
    if not resolved or any(
        not a.startswith(("127.", "10.", "172.", "192.168.", "::1")) for a in resolved
    ):
        pytest.skip(f"{name} resolves to {resolved}, not only to private addresses")
    return name


async def test_a_name_resolving_to_a_private_address_is_never_connected_to(
    receiver: Receiver,
) -> None:
    url = f"http://{own_name()}:{receiver.port}/rebound"

    refused = await sender(allow_private=False).send(url, HEADERS, BODY)
    allowed = await sender(allow_private=True).send(url, HEADERS, BODY)

    assert refused.status_code is None and not refused.delivered
    assert "a loopback or private address" in (refused.error or "")
    assert allowed.delivered
    assert len(receiver.at("rebound")) == 1  # only the allowed one arrived


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    target = await resolve("http://localhost:8443/hook?a=1", production=False, allow_private=True)
    secure = await resolve("https://127.0.0.1/x", production=False, allow_private=True)

    assert target.url in ("http://127.0.0.1:8443/hook?a=1", "http://[::1]:8443/hook?a=1")
    assert (target.host, target.server_name) == ("localhost:8443", None)
    assert (secure.url, secure.server_name) == ("https://127.0.0.1/x", "127.0.0.1")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://224.0.0.1/x",
        "http://100.64.0.1/x",
        "http://localhost/x",
        "http://api.localhost/x",
    ],
)
async def test_private_loopback_link_local_and_multicast_addresses_are_refused(url: str) -> None:
    with pytest.raises(Exception, match="loopback or private address"):
        check_url(url, production=False, allow_private=False)
    with pytest.raises(UnsafeAddress):
        await resolve(url, production=False, allow_private=False)


async def test_production_takes_only_https(receiver: Receiver) -> None:
    attempt = await sender(production=True).send(receiver.url("plain"), HEADERS, BODY)

    with pytest.raises(Exception, match="must start with https://"):
        check_url("http://shop.example/hook", production=True, allow_private=False)
    assert check_url("https://shop.example/hook", production=True, allow_private=False)
    assert "https://" in (attempt.error or "") and receiver.at("plain") == []


async def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    attempt = await sender().send(receiver.url("moved"), HEADERS, BODY)

    assert (attempt.status_code, attempt.delivered) == (307, False)
    assert attempt.error == "redirect to /elsewhere not followed"
    assert receiver.at("elsewhere") == []


async def test_a_long_answer_is_read_only_in_part(receiver: Receiver) -> None:
    attempt = await sender().send(receiver.url("long"), HEADERS, BODY)

    assert attempt.delivered and attempt.response == "x" * 500


async def test_a_silent_receiver_is_given_up_at_the_timeout(receiver: Receiver) -> None:
    started = time.monotonic()
    attempt = await sender().send(receiver.url("silent"), HEADERS, BODY)

    assert attempt.status_code is None and attempt.error == "no answer within 1 s"
    assert time.monotonic() - started < 3


async def test_rounds_pause_while_the_database_is_away(caplog: pytest.LogCaptureFixture) -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere")
    queue = DeliveryQueue(engine, clock=now_ms, holder="h", lease_ms=1000)
    policy = RetryPolicy(base=1, cap=1, retry_for_ms=1000, disable_after_ms=1000)
    dispatcher = Dispatcher(
        queue, Subscriptions(engine), sender(), policy, clock=now_ms, expiry_grace_ms=0
    )
    try:
        with caplog.at_level(logging.WARNING, logger="teaser.webhooks"):
            for _ in range(20):  # 20 rounds within half a second: one meets the database
                await dispatcher.tick()
    finally:
        await dispatcher.stop()
        await engine.dispose()

    waits = [r for r in caplog.records if "wait" in r.getMessage()]
    assert len(waits) == 1, caplog.text
    assert "webhooks wait 1 s for the database" in waits[0].getMessage()
