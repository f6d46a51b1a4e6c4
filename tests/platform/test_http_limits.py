"""Limits on a connection, however Teaser is served: a request head past
TEASER_MAX_HEADER_BYTES gets 431 and the connection closes, a connection that has not sent
its head whole within TEASER_HEADER_TIMEOUT is closed (408 if it had begun one), an idle
keep-alive connection is closed; WebSockets and request bodies are left alone.

Every test talks to a real `teaser serve` (and one to the Procfile's command) in its own
process, with raw sockets for the hostile clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from api.serving import KEEP_ALIVE_TIMEOUT
from realtime.platform import Settings
from tests.support import DEMO_HEADERS, ROOT, ServerProcess, free_port, json_of

LIMIT = Settings().max_header_bytes
# The test server gets 2 s instead of the shipped 10 s, so the file runs in seconds.
HEAD_TIMEOUT = 2.0
# After a refusal the server may go on reading (and dropping) for up to 2 s, so that the
# client sees the answer rather than a reset; then it closes. 3 s covers that.
SETTLE = 3.0
HOSTILE_SOCKETS = 300
SITE = "woodstock_outlet"


class Teaser(ServerProcess):
    """The server in its own process: `teaser serve`, or the Procfile's command."""

    def __init__(self, served: list[str], folder: Path) -> None:
        port = free_port()
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PORT": str(port),
            "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'teaser.db'}",
            "TEASER_HEADER_TIMEOUT": str(HEAD_TIMEOUT),
        }
        super().__init__(env, folder, port)
        self.served = served

    def command(self) -> list[str]:
        return self.served

    def memory_kib(self, field: str) -> int:
        """VmRSS (resident now) or VmHWM (the most it has ever been) of the worker."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def open_sockets(self) -> int:
        """Sockets the worker holds open: its listener and every connection not yet closed."""
        return sum(link.startswith("socket:") for link in self._fd_links())

    def _fd_links(self) -> Iterator[str]:
        assert self.process is not None
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):  # closed while we look
                yield os.readlink(fd)


@pytest.fixture(scope="module")
def teaser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Teaser]:
    """`teaser serve` as script/server runs it; it takes its port from PORT."""
    server = Teaser(["teaser", "serve"], tmp_path_factory.mktemp("serve"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Raw HTTP: what a hostile client writes, and what comes back.


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_code(self) -> str:
        assert self.headers["content-type"].startswith("application/json"), self
        return str(json.loads(self.body)["error"]["code"])


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(": ", 1) for line in lines)
    headers = {name.lower(): value for name, value in pairs}
    return Answer(int(status_line.split()[1]), headers, body)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One answer on a connection that stays open: read by its Content-Length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    answer = parse(head)
    answer.body = await reader.readexactly(int(answer.headers["content-length"]))
    return answer


async def read_to_close(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server writes until it closes; raises TimeoutError if it never does."""
    received = b""
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                received += chunk
    return received


async def write_all(writer: asyncio.StreamWriter, chunks: list[bytes], pause: float) -> None:
    """Write chunk after chunk; a server that has closed makes the rest fail, which is fine."""
    with contextlib.suppress(ConnectionError):
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause)


async def exchange(
    server: Teaser, chunks: list[bytes], pause: float = 0.0, timeout: float = 10.0
) -> tuple[bytes, bool]:
    """Write the chunks while reading; return what came back and whether the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writing = asyncio.create_task(write_all(writer, chunks, pause))
    try:
        return await read_to_close(reader, timeout), True
    except TimeoutError:
        return b"", False
    finally:
        writing.cancel()
        writer.close()


def request(target: str = "/healthz", *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def request_of_size(
    size: int, target: str = "/healthz", *headers: str, method: str = "GET"
) -> bytes:
    """A request head of exactly `size` bytes, padded with one header."""
    bare = request(target, *headers, "X-Pad: ", method=method)
    head = request(target, *headers, "X-Pad: " + "p" * (size - len(bare)), method=method)
    assert len(head) == size
    return head


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# The head's size.

TOO_LARGE: dict[str, list[bytes]] = {
    "one huge header": [request("/healthz", "X-Big: " + "b" * 64 * 1024)],
    "many small headers": [request("/healthz", *(f"X-H{i}: {'h' * 40}" for i in range(1000)))],
    "a huge request line": [request("/healthz?q=" + "q" * 64 * 1024)],
    "a huge header in 1 KiB chunks": split(request("/healthz", "X-Big: " + "b" * 64 * 1024), 1024),
    "one byte past the limit": [request_of_size(LIMIT + 1)],
    "a megabyte header": [request("/healthz", "X-Big: " + "b" * 1024 * 1024)],
}


@pytest.mark.parametrize("chunks", TOO_LARGE.values(), ids=TOO_LARGE.keys())
async def test_a_head_past_the_limit_gets_431_in_json_and_the_connection_closes(
    teaser: Teaser, chunks: list[bytes]
) -> None:
    received, closed = await exchange(teaser, chunks, pause=0.001)

    answer = parse(received)
    assert answer.status == 431
    assert answer.error_code() == "headers_too_large"
    assert str(LIMIT) in json.loads(answer.body)["error"]["message"]
    assert answer.headers["connection"] == "close"
    assert closed


AT_THE_LIMIT: dict[str, tuple[list[bytes], list[int]]] = {
    "a head of exactly the limit": ([request_of_size(LIMIT)], [200]),
    "a head of exactly the limit with its body in the same write": (
        [
            request_of_size(
                LIMIT,
                "/api/sessions",
                "Content-Type: application/json",
                f"Content-Length: {len(json.dumps({'siteId': SITE}))}",
                method="POST",
            )
            + json.dumps({"siteId": SITE}).encode()
        ],
        [201],
    ),
    "two heads of the limit pipelined in one write": ([request_of_size(LIMIT) * 2], [200, 200]),
    "two heads of the limit, one after the other": (
        [request_of_size(LIMIT), request_of_size(LIMIT)],
        [200, 200],
    ),
}


@pytest.mark.parametrize(("chunks", "statuses"), AT_THE_LIMIT.values(), ids=AT_THE_LIMIT.keys())
async def test_a_head_within_the_limit_is_answered(
    teaser: Teaser, chunks: list[bytes], statuses: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", teaser.port)
    try:
        answers = []
        for chunk in chunks:
            writer.write(chunk)
            answers += [await read_answer(reader) for _ in range(chunk.count(b"HTTP/1.1\r\n"))]
    finally:
        writer.close()
    assert [a.status for a in answers] == statuses


async def test_a_malformed_head_gets_400_in_json(teaser: Teaser) -> None:
    received, closed = await exchange(teaser, [b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n"])

    answer = parse(received)
    assert (answer.status, answer.error_code()) == (400, "bad_request")
    assert closed


async def test_a_64_mb_header_is_refused_without_the_worker_holding_it(teaser: Teaser) -> None:
    rss, peak = teaser.memory_kib("VmRSS"), teaser.memory_kib("VmHWM")
    flood = [request("/healthz", "X-Flood: ")[:-4], *[b"f" * (1 << 20)] * 64, b"\r\n\r\n"]

    received, closed = await exchange(teaser, flood, timeout=30)

    assert parse(received).status == 431 and closed
    margin = 8 * 1024  # KiB: allocator noise, far below the 64 MiB sent
    assert teaser.memory_kib("VmHWM") - peak < margin
    assert teaser.memory_kib("VmRSS") - rss < margin


# The head's time.

NEVER_ENDING_HEAD = request("/healthz", "X-Slow: " + "s" * 200)[:-4]


@dataclass
class Slowloris:
    """A hostile client that never finishes its head, and keeps writing after an answer
    (as an attacker would), so the server must close on its own."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    started: float  # before it connected, or before its first byte after an answer
    received: bytes = b""
    closed_after: float | None = None
    writing: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, server: Teaser, mode: str) -> Slowloris:
        opening, trickles = SLOWLORIS[mode]
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        if opening is not None:
            await opening(reader, writer)
            started = time.monotonic()
        client = cls(reader, writer, started)
        if trickles:
            trickle = split(NEVER_ENDING_HEAD, 1)
            client.writing = asyncio.create_task(write_all(writer, trickle, pause=0.5))
        return client

    async def wait_for_close(self, within: float) -> None:
        with contextlib.suppress(TimeoutError):
            self.received = await read_to_close(self.reader, within)
            self.closed_after = time.monotonic() - self.started

    def stop(self) -> None:
        if self.writing is not None:
            self.writing.cancel()
        self.writer.close()


async def eventually(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return check()


async def answered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(request())
    assert (await read_answer(reader)).status == 200


async def answered_before_its_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A body declared past api/limits.py's bound is refused before it is read; uvicorn
    then parses it to the end, and the bytes of it stop uvicorn's own keep-alive clock."""
    size = 20 * 1024
    declared = ("Content-Type: application/json", f"Content-Length: {size}")
    writer.write(request("/api/sessions", *declared, method="POST"))
    assert (await read_answer(reader)).status == 413
    writer.write(b" " * size)
    await writer.drain()


Opening = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
# What the client does first, and whether it then trickles a head or stays silent.
SLOWLORIS: dict[str, tuple[Opening | None, bool]] = {
    "silent": (None, False),
    "trickling": (None, True),
    "trickling after an answer": (answered, True),
    "silent after an answer given before its body": (answered_before_its_body, False),
}


@pytest.mark.parametrize("mode", SLOWLORIS)
async def test_slowloris_connections_are_all_closed_after_the_head_timeout(
    teaser: Teaser, mode: str
) -> None:
    before = teaser.open_sockets()
    clients = await asyncio.gather(*(Slowloris.start(teaser, mode) for _ in range(HOSTILE_SOCKETS)))
    try:
        # A few connections of the tests before may still be closing as these open.
        held = await eventually(lambda: teaser.open_sockets() >= before + HOSTILE_SOCKETS - 5, 2)
        await asyncio.gather(*(c.wait_for_close(HEAD_TIMEOUT + SETTLE) for c in clients))
        released = await eventually(lambda: teaser.open_sockets() <= before, within=SETTLE)
    finally:
        for client in clients:
            client.stop()

    assert held, "the server should have held every hostile connection at first"
    still_open = sum(c.closed_after is None for c in clients)
    assert still_open == 0, f"{still_open} of {HOSTILE_SOCKETS} connections still open"
    assert released, f"the server still holds {teaser.open_sockets() - before} sockets"
    assert min(c.closed_after or 0 for c in clients) >= HEAD_TIMEOUT - 0.1  # given its time
    if not SLOWLORIS[mode][1]:
        # It began no request, so nothing is answered: it is only closed.
        assert {c.received for c in clients} == {b""}
    else:
        assert {parse(c.received).status for c in clients} == {408}
        assert {parse(c.received).error_code() for c in clients} == {"request_timeout"}


async def test_a_head_sent_slowly_but_whole_within_the_timeout_is_answered(
    teaser: Teaser,
) -> None:
    pieces = split(request(), len(request()) // 3 + 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", teaser.port)
    writing = asyncio.create_task(write_all(writer, pieces, pause=HEAD_TIMEOUT / 4))
    try:
        answer = await read_answer(reader)
    finally:
        await writing
        writer.close()
    assert answer.status == 200


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    teaser: Teaser,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", teaser.port)
    try:
        writer.write(request())
        first = await read_answer(reader)
        await asyncio.sleep(1)
        writer.write(request())
        second = await read_answer(reader)  # still open a second later: keep-alive works
        leftover = await read_to_close(reader, KEEP_ALIVE_TIMEOUT + SETTLE)
    finally:
        writer.close()
    assert (first.status, second.status, leftover) == (200, 200, b"")


# What the limits leave alone.


async def next_teaser(socket: ClientConnection) -> dict[str, object]:
    while True:
        frame: dict[str, object] = json.loads(await asyncio.wait_for(socket.recv(), 5))
        if frame["type"] == "teaser":
            return frame


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def socket_path(minted: dict[str, str]) -> str:
    return f"/api/teaser-ws?sessionId={minted['sessionId']}&siteId={SITE}&token={minted['token']}"


async def upgrade_after_an_answer(server: Teaser, path: str) -> tuple[Stream, bytes]:
    """A session socket opened on a connection that has already had an HTTP answer, so
    the keep-alive and head clocks of that connection have both run before the upgrade."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request())
    assert (await read_answer(reader)).status == 200
    handshake = (
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    )
    writer.write(request(path, *handshake))
    return (reader, writer), await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


PING = bytes([0x89, 0x80]) + b"mask"  # a masked ping with no payload, as a client sends it
PONG = bytes([0x8A, 0x00])


async def test_session_sockets_stay_open_long_past_the_head_timeout(teaser: Teaser) -> None:
    async with httpx.AsyncClient(base_url=teaser.base_url) as client:
        fresh, reused = [
            json_of(await client.post("/api/sessions", json={"siteId": SITE})) for _ in "ab"
        ]
        (reader, writer), switched = await upgrade_after_an_answer(teaser, socket_path(reused))
        try:
            async with connect(f"ws://127.0.0.1:{teaser.port}{socket_path(fresh)}") as socket:
                await asyncio.sleep(HEAD_TIMEOUT + 1.5)
                sent = await client.put(
                    "/api/teaser-messages",
                    headers=DEMO_HEADERS,
                    json={"sessionId": fresh["sessionId"], "message": "still here"},
                )
                assert sent.status_code == 201, sent.text
                teaser_frame = await next_teaser(socket)
                writer.write(PING)
                pong = await asyncio.wait_for(reader.readexactly(2), 5)
        finally:
            writer.close()

    assert teaser_frame["message"] == "still here"
    assert switched.startswith(b"HTTP/1.1 101 ")
    assert pong == PONG


async def test_a_body_sent_slowly_past_the_head_timeout_is_still_read(teaser: Teaser) -> None:
    body = json.dumps({"siteId": SITE}).encode()
    head = request(
        "/api/sessions",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        method="POST",
    )
    pause = (HEAD_TIMEOUT + 1) / len(split(body, 4))
    reader, writer = await asyncio.open_connection("127.0.0.1", teaser.port)
    writing = asyncio.create_task(write_all(writer, [head, *split(body, 4)], pause=pause))
    try:
        answer = await asyncio.wait_for(read_answer(reader), HEAD_TIMEOUT + 5)
    finally:
        await writing
        writer.close()
    assert answer.status == 201


def chunked(body: bytes, size: int) -> list[bytes]:
    pieces = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in split(body, size)]
    return [*pieces, b"0\r\n\r\n"]


POLL_BODY = json.dumps({"sessionId": "sess_pieces", "siteId": SITE}).encode()
IN_PIECES = {
    "with Content-Length": (f"Content-Length: {len(POLL_BODY)}", split(POLL_BODY, 7)),
    "chunked": ("Transfer-Encoding: chunked", chunked(POLL_BODY, 7)),
}


@pytest.mark.parametrize(("framing", "pieces"), IN_PIECES.values(), ids=IN_PIECES.keys())
async def test_a_poll_whose_body_comes_in_pieces_is_read_whole(
    teaser: Teaser, framing: str, pieces: list[bytes]
) -> None:
    head = request("/api/teaser-messages", "Content-Type: application/json", framing, method="POST")
    reader, writer = await asyncio.open_connection("127.0.0.1", teaser.port)
    writing = asyncio.create_task(write_all(writer, [head, *pieces], pause=0.02))
    try:
        answer = await asyncio.wait_for(read_answer(reader), 10)
    finally:
        await writing
        writer.close()
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == {"messages": [], "pollInterval": 8000}


# Every shipped way of serving has the limits.


def procfile_command() -> str:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return next(line for line in lines if line.startswith("web:")).removeprefix("web:").strip()


def test_the_procfile_runs_teaser_serve_with_only_the_platforms_host_and_port() -> None:
    """So it serves with api/serving.py's options, the drain and the ops port, like
    script/server and the container, and can't drift from them."""
    migrate, serve = procfile_command().split(" && ")
    assert shlex.split(migrate) == ["teaser", "db", "upgrade"]
    assert shlex.split(serve) == ["exec", "teaser", "serve", "--host", "0.0.0.0", "--port", "$PORT"]


async def test_the_procfile_command_serves_with_the_same_limits(
    tmp_path: Path,
) -> None:
    server = Teaser(["sh", "-c", procfile_command()], tmp_path)
    await asyncio.to_thread(server.start)
    try:
        refused, closed = await exchange(server, [request_of_size(LIMIT + 1)])
    finally:
        await asyncio.to_thread(server.stop)
    assert (parse(refused).status, closed) == (431, True)
