"""The database under a real worker fails: its connections terminated every 200 ms, its
cluster stopped and started, the worker killed (kill -9) mid-transaction or holding a lease.
Each PostgreSQL fault is done to a database or a cluster of the test's own."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime.platform.database import create_engine
from realtime.platform.tables import idempotency_keys
from realtime.platform.tables import teaser_messages as messages
from tests.faults.postgres import SHARED, OwnCluster, OwnDatabase, own_database
from tests.faults.visitors import Sender, Visitor
from tests.support import DEMO_HEADERS, ServerProcess, new_session_id

# Leases short enough that an ack lost to the fault is offered again within the test, and
# no poll limit in the way of pollers polling fast.
WORKER_ENV = {
    "TEASER_CLAIM_LEASE_MS": "2000",
    "TEASER_LIMIT_POLLS_PER_SESSION_PER_MINUTE": "1000000",
    "TEASER_LIMIT_POLLS_PER_IP_PER_SECOND": "1000000",
}
SOCKETS = 6
POLLERS = 3
SENDERS = 4
# The server's own words for the faults this file proves gone: a connection reused while
# broken, a request or a socket that failed unhandled. (A housekeeping job that failed
# while the database was away logs its traceback and runs again later.)
BROKEN = (
    "another operation is in progress",
    "unhandled error on",
    "Exception in ASGI application",
    '" 500 ',
)


@asynccontextmanager
async def worker(env: dict[str, str], logs: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess({**WORKER_ENV, **env}, logs)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


# --- A load of visitors on sockets and polls, and senders, while a fault goes on --------------


@dataclass
class Load:
    server: ServerProcess
    sockets: list[Visitor] = field(default_factory=list)
    pollers: list[Visitor] = field(default_factory=list)
    sender: Sender = field(default_factory=Sender)

    @property
    def visitors(self) -> list[Visitor]:
        return self.sockets + self.pollers


async def load_during(
    server: ServerProcess, fault: Callable[[], Coroutine[Any, Any, object]]
) -> Load:
    """Visitors and senders from before `fault` begins until after it ends, then until
    every accepted send has arrived (bounded)."""
    load = Load(
        server,
        [Visitor(new_session_id()) for _ in range(SOCKETS)],
        [Visitor(new_session_id()) for _ in range(POLLERS)],
    )
    opened = [asyncio.Event() for _ in load.sockets]
    tasks = [
        *(
            asyncio.create_task(v.listen(server, o))
            for v, o in zip(load.sockets, opened, strict=True)
        ),
        *(asyncio.create_task(v.poll(server, every=0.1)) for v in load.pollers),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 10)
        await asyncio.sleep(0.3)  # each socket subscribes right after its handshake
        faulting: asyncio.Task[object] = asyncio.create_task(fault())
        await asyncio.gather(*(send_until(load, faulting) for _ in range(SENDERS)))
        await faulting
        for visitor in load.visitors:
            await visitor.wait_for(set(load.sender.sent.get(visitor.session, [])), within=20)
        await asyncio.sleep(0.3)  # nothing more, and nothing unsent, may come
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return load


async def send_until(load: Load, fault: asyncio.Task[object], after: float = 1.0) -> None:
    """Send to the visitors in turn until the fault is over, and `after` seconds more."""
    sessions = [visitor.session for visitor in load.visitors]
    async with httpx.AsyncClient(base_url=load.server.base_url, timeout=30) as client:
        while not fault.done():
            await load.sender.send(client, random.choice(sessions), "during")
        deadline = time.monotonic() + after
        while time.monotonic() < deadline:
            await load.sender.send(client, random.choice(sessions), "after")


def assert_every_accepted_send_delivered_once(load: Load) -> None:
    sender, log = load.sender, load.server.log()
    assert set(sender.statuses) <= {201, 503}, (sender.statuses, log[-4000:])
    assert sender.without_retry_after == 0
    assert sender.lost == 0
    for broken in BROKEN:
        assert broken not in log, log[log.index(broken) - 3000 :][:4000]
    for visitor in load.sockets:
        assert visitor.closed == []  # open throughout: never 1011
    for visitor in load.pollers:
        assert set(visitor.statuses) <= {200, 503}, visitor.statuses
    for visitor in load.visitors:
        # Every message a client saw accepted arrives, and nothing else: shown once by id,
        # the first time each came in seq order (a lost ack may bring one again).
        assert visitor.ids == set(sender.sent.get(visitor.session, []))
        assert visitor.first_arrivals == sorted(visitor.first_arrivals)
    for visitor in load.pollers:
        assert len(visitor.teasers) == len(visitor.ids)  # a poll hands each out once


# --- Backends terminated every 200 ms --------------------------------------------------------


@pytest.fixture
async def database() -> AsyncIterator[OwnDatabase]:
    async with own_database() as own:
        yield own


@pytest.mark.timeout(120)
async def test_backends_terminated_every_200_ms_cost_no_500_no_closed_socket_and_no_message(
    database: OwnDatabase, tmp_path: Path
) -> None:
    async def terminate_for(seconds: float) -> int:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        return await database.terminate_every(0.2, stop)

    async with worker({"DATABASE_URL": database.url}, tmp_path) as server:
        load = await load_during(server, lambda: terminate_for(6.0))

    assert load.sender.accepted > 0
    assert_every_accepted_send_delivered_once(load)


# --- A cluster of the test's own stopped and started -----------------------------------------


@pytest.fixture
def cluster() -> Iterator[OwnCluster]:
    own = OwnCluster.create()
    try:
        own.start()
        yield own
    finally:
        own.destroy()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_restarted_cluster_answers_503_while_down_and_recovers_by_itself(
    cluster: OwnCluster, mode: str, tmp_path: Path
) -> None:
    async def restart() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.stop, mode)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(cluster.start)

    async with worker({"DATABASE_URL": cluster.url}, tmp_path) as server:
        load = await load_during(server, restart)

    assert load.sender.statuses[503] > 0  # the sends while it was down were refused, so
    assert_every_accepted_send_delivered_once(load)  # and the rest is as if nothing was


@pytest.mark.timeout(120)
async def test_an_open_dashboard_waits_out_a_stopped_database_and_new_sockets_get_503(
    cluster: OwnCluster, tmp_path: Path
) -> None:
    """The dashboard's cards and feed read the database every few seconds: while it is
    away they skip their rounds (the socket stays open), and an upgrade is a 503."""
    async with worker({"DATABASE_URL": cluster.url}, tmp_path) as server:
        dashboard_url = f"{server.ws_url}/api/dashboard/ws"
        async with connect(dashboard_url, additional_headers=DEMO_HEADERS) as dashboard:
            kinds = [orjson.loads(await dashboard.recv())["type"] for _ in range(2)]
            await asyncio.to_thread(cluster.stop, "fast")
            # Two rounds of the cards (every 5 s), and the 5-s cache of the site gone.
            await asyncio.sleep(11)
            refused = []
            for path in (
                "/api/teaser-ws?siteId=woodstock_outlet&sessionId=s1",
                "/api/dashboard/ws",
            ):
                with pytest.raises(InvalidStatus) as refusal:
                    async with connect(f"{server.ws_url}{path}", additional_headers=DEMO_HEADERS):
                        pass
                refused.append(refusal.value.response.status_code)
            await asyncio.to_thread(cluster.start)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
                for _ in range(40):  # the pool finds the database back by itself
                    sent = await client.put(
                        "/api/teaser-messages",
                        json={"sessionId": new_session_id(), "message": "back"},
                        headers=DEMO_HEADERS,
                    )
                    if sent.status_code == 201:
                        break
                    await asyncio.sleep(0.25)
            later = [orjson.loads(await asyncio.wait_for(dashboard.recv(), 10))["type"]]

        assert kinds == ["hello", "stats"]
        assert refused == [503, 503]
        assert sent.status_code == 201
        assert later[0] in ("stats", "feed", "teasers", "resync")
        log = server.log_path.read_text(errors="replace")
        assert not [line for line in log.splitlines() if any(b in line for b in BROKEN)]


# --- kill -9 of a worker in the middle of a bulk send -----------------------------------------

BULK = 1000
KILLS = 5


async def stored(url: str, sessions: list[str], key: str) -> tuple[int, int]:
    """How many of these sessions' messages, and of this idempotency key, are stored."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            count = select(func.count()).where(messages.c.session_id.in_(sessions))
            keys = select(func.count()).where(idempotency_keys.c.key == key)
            return int(await connection.scalar(count) or 0), int(await connection.scalar(keys) or 0)
    finally:
        await engine.dispose()


async def bulk_send(server: ServerProcess, sessions: list[str], key: str) -> int:
    body = [{"sessionId": sessions[i % len(sessions)], "message": f"b{i}"} for i in range(BULK)]
    headers = {**DEMO_HEADERS, "Idempotency-Key": key}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        try:
            response = await client.put("/api/teaser-messages", headers=headers, json=body)
        except httpx.TransportError:
            return 0  # killed before it answered
        return response.status_code


async def writing(url: str) -> bool:
    """Whether a write transaction is open on the database right now."""
    if url.startswith("sqlite"):
        probe = sqlite3.connect(url.split("///", 1)[1], timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")  # refused at once while a writer holds the lock
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(SHARED, timeout=3)
    try:
        # backend_xid: the backend's transaction has written, and has not ended.
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_xid IS NOT NULL"
        )
        return int(await connection.fetchval(query, name)) > 0
    finally:
        await connection.close()


async def kill_mid_transaction(server: ServerProcess, url: str, chance: random.Random) -> bool:
    """kill -9 the worker a random moment after its write transaction opened (or, if none
    was seen within 10 s, then); whether one was seen open."""
    deadline = time.monotonic() + 10
    while not (seen := await writing(url)) and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    await asyncio.sleep(chance.uniform(0, 0.03))
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    await asyncio.to_thread(server.process.wait)
    return seen


@pytest.mark.timeout(180)
async def test_a_bulk_send_killed_mid_transaction_is_stored_whole_or_not_at_all(
    database_url: str, tmp_path: Path
) -> None:
    env = {**WORKER_ENV, "DATABASE_URL": database_url}
    chance = random.Random(17)
    outcomes = []
    for _ in range(KILLS):
        sessions, key = [new_session_id() for _ in range(10)], uuid.uuid4().hex
        server = ServerProcess(env, tmp_path)
        await asyncio.to_thread(server.start)
        try:
            sending = asyncio.create_task(bulk_send(server, sessions, key))
            killed_mid_transaction = await kill_mid_transaction(server, database_url, chance)
            status = await sending
        finally:
            server.stop()  # killed already, unless the test failed first
        outcomes.append(
            (killed_mid_transaction, status, *await stored(database_url, sessions, key))
        )

    assert sum(mid for mid, *_ in outcomes) >= KILLS - 1, outcomes  # the kills did land inside
    assert all((count, keys) in {(0, 0), (BULK, 1)} for *_, count, keys in outcomes), outcomes
    assert all(count == BULK for _, status, count, _ in outcomes if status == 201), outcomes


# --- Expiry racing a lease whose worker died --------------------------------------------------


@pytest.mark.timeout(120)
async def test_a_message_leased_to_a_killed_worker_that_expires_first_is_never_shown(
    database_url: str, tmp_path: Path
) -> None:
    # The lease (6 s) outlives the message (2 s): only expiry may decide its fate.
    env = {"DATABASE_URL": database_url, "TEASER_CLAIM_LEASE_MS": "6000"}
    holder = Visitor(new_session_id())
    first = ServerProcess({**WORKER_ENV, **env}, tmp_path)
    await asyncio.to_thread(first.start)
    try:
        listening = asyncio.create_task(holder.listen(first, asyncio.Event(), acks=False))
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=first.base_url, timeout=10) as client:
            body = {"sessionId": holder.session, "message": "soon gone", "expiresIn": 2000}
            sent = (
                await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=body)
            ).json()
        await holder.wait_for({sent["id"]}, within=5)
        assert first.process is not None
        os.kill(first.process.pid, signal.SIGKILL)  # leased to its socket, never acked
        await asyncio.to_thread(first.process.wait)
        listening.cancel()
        with suppress(asyncio.CancelledError):
            await listening
    finally:
        first.stop()

    later = Visitor(holder.session)
    poller = Visitor(holder.session)
    async with worker(env, tmp_path) as second:
        watching = [
            asyncio.create_task(later.listen(second, asyncio.Event())),
            asyncio.create_task(poller.poll(second, every=0.2)),
        ]
        await asyncio.sleep(8.0)  # past the expiry, and past the lease too
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        async with httpx.AsyncClient(base_url=second.base_url, timeout=10) as client:
            state = await client.get(f"/api/teaser-messages/{sent['id']}", headers=DEMO_HEADERS)

    assert holder.ids == {sent["id"]}  # the dead worker's socket did get it, unacked
    assert later.teasers == [] and poller.teasers == []  # nobody after it
    assert later.closed == []
    # Recorded as expired: never delivered, and past its time.
    assert state.json()["status"] == "expired"
    assert state.json()["deliveredVia"] is None


# --- SQLite on a full disk --------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MB file system of the test's own, to fill up (a mount: root only)."""
    directory = Path(tempfile.mkdtemp(prefix="teaser-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(directory)], capture_output=True
    )
    if mounted.returncode != 0:
        directory.rmdir()
        pytest.skip(f"no small file system to fill here: {mounted.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)
        directory.rmdir()


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    return filler


@pytest.mark.timeout(120)
async def test_sqlite_on_a_full_disk_answers_503_and_recovers_once_there_is_room(
    small_disk: Path, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{small_disk / 'teaser.db'}"}
    session = new_session_id()
    async with worker(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:

            async def send() -> httpx.Response:
                # Big bulks, so that the log outgrows what room it had left.
                body = [{"sessionId": session, "message": "x" * 400} for _ in range(100)]
                return await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=body)

            assert (await send()).status_code == 201
            filler = fill(small_disk)
            answers = [await send() for _ in range(30)]
            filler.unlink()
            after = await send()
        log = server.log()

    refused = [answer for answer in answers if answer.status_code != 201]
    assert refused, "the disk never filled up"
    assert {answer.status_code for answer in refused} == {503}, log[-3000:]
    assert all(answer.headers.get("retry-after") == "1" for answer in refused)
    assert {answer.json()["error"]["code"] for answer in refused} == {"database_unavailable"}
    assert after.status_code == 201
    assert "unhandled error on" not in log


# --- A client that leaves mid-request ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/teaser-messages", "/api/events"])
async def test_a_client_leaving_mid_body_is_no_server_error(
    path: str, sqlite_url: str, tmp_path: Path
) -> None:
    # What the load above does to its pollers at the end, and a closed tab to a poll: the
    # server must not log it as its own failure (which this file's checks look for).
    async with worker({"DATABASE_URL": sqlite_url}, tmp_path) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: 100\r\n\r\n{{".encode())
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        await asyncio.sleep(0.3)
        log = server.log()

    assert all(broken not in log for broken in BROKEN), log[-3000:]
