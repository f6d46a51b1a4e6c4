"""The load client: a process of its own, so its CPU is measured apart from the server's.

It reads one JSON command per line on stdin and answers one JSON line on stdout:
open (hold N session sockets), hold (N long-polls), latency (one send at a time), load
(senders for a fixed time), polls (only when wrk is missing), poll_stats, close. Every loop
is bounded by a count or a deadline, except the long-polls, which run until close.
Run: python -m bench.client [--source 127.0.0.2] (bench.run drives it). With --source, the
sockets are bound to that loopback address: one address can connect to one port only as
many times as the ephemeral port range has ports.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import uvloop

from bench.longpoll import LongPolls
from bench.stats import percentile
from bench.wire import WIRES, Wire

SEND_HEADERS = {
    "Content-Type": "application/json",
    "X-API-Key": "woodstock_rt_key_2024",
    "X-Site-ID": "woodstock_outlet",
}
OPEN_CONCURRENCY = 100
NO_ANSWER_S = 5.0  # a send not received by then counts as lost...
STILL_ARRIVING_S = 1.0  # ...unless messages are still arriving: a backlog drains...
DRAIN_LIMIT_S = 30.0  # ...up to this long after the load's end
LATE_S = 1.0  # a message that arrives this long after the load's end is backlog
CLOSE_TIMEOUT = aiohttp.ClientWSTimeout(ws_close=2)


class LoadClient:
    def __init__(self, source: str | None = None) -> None:
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []
        self.sessions: list[str] = []
        self.next_token = 0
        self.sent_at: dict[int, float] = {}  # token -> when its send began
        self.received_at: list[tuple[float, float]] = []  # (when, latency s)
        self.waiters: dict[int, asyncio.Future[float]] = {}
        self.unexpected = 0
        bound = (source, 0) if source else None
        self.ws_http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, local_addr=bound)
        )
        self.long_polls = LongPolls(self._arrived)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    # -- sockets ---------------------------------------------------------------------------

    async def open(self, wire: str, base: str, count: int, prefix: str) -> dict[str, Any]:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        start, first = time.perf_counter(), len(self.sessions)
        results = await asyncio.gather(
            *(
                self._open_one(gate, WIRES[wire], base, f"{prefix}-{first + i}")
                for i in range(count)
            )
        )
        failures = [r for r in results if r is not None]
        return {
            "open": len(self.sockets),
            "failed": len(failures),
            "first_failure": failures[0] if failures else None,
            "seconds": round(time.perf_counter() - start, 3),
        }

    async def _open_one(
        self, gate: asyncio.Semaphore, wire: Wire, base: str, session: str
    ) -> str | None:
        async with gate:
            try:
                ws = await self.ws_http.ws_connect(
                    wire.url(base, session), autoping=True, timeout=CLOSE_TIMEOUT
                )
                await wire.handshake(ws, session)
            except Exception as exc:  # counted and reported; one refused socket must not stop a run
                return repr(exc)
        self.sockets.append(ws)
        self.sessions.append(session)
        self.readers.append(asyncio.create_task(self._read(ws, wire)))
        return None

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, wire: Wire) -> None:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            reaction = wire.react(frame.data)
            if reaction.message is not None:
                self._arrived(reaction.message)
            for reply in reaction.replies:
                await ws.send_str(reply)

    def _arrived(self, message: str) -> None:
        now = time.perf_counter()
        token = int(message.rsplit(" ", 1)[1]) if message.startswith("bench ") else -1
        began = self.sent_at.pop(token, None)
        if began is None:
            self.unexpected += 1  # a redelivery, or a message from an earlier phase
            return
        self.received_at.append((now, now - began))
        waiter = self.waiters.pop(token, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now - began)

    # -- long-polls ------------------------------------------------------------------------

    async def hold(self, url: str, count: int, prefix: str, wait_ms: int) -> dict[str, Any]:
        """Start `count` long-poll loops, one session each; sends then pick among them."""
        first = len(self.sessions)
        sessions = [f"{prefix}-{first + i}" for i in range(count)]
        self.sessions += sessions
        self.long_polls.hold(url, sessions, wait_ms)
        return {"polls": len(self.long_polls.tasks)}

    async def poll_stats(self) -> dict[str, Any]:
        return {"polls": len(self.long_polls.tasks), **self.long_polls.stats}

    async def close(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def close_one(ws: aiohttp.ClientWebSocketResponse) -> None:
            async with gate:
                try:
                    await asyncio.wait_for(ws.close(), 3)
                except Exception:
                    pass

        closed = len(self.sockets)
        await asyncio.gather(*(close_one(ws) for ws in self.sockets))
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.sockets, self.readers, self.sessions = [], [], []
        return {"closed": closed, "polls_closed": await self.long_polls.close()}

    # -- sends -----------------------------------------------------------------------------

    def _body(self, batch: int, began: float) -> tuple[bytes, list[int]]:
        tokens = list(range(self.next_token, self.next_token + batch))
        self.next_token += batch
        items = []
        for token in tokens:
            self.sent_at[token] = began
            items.append({"sessionId": random.choice(self.sessions), "message": f"bench {token}"})
        return orjson.dumps(items if batch > 1 else items[0]), tokens

    async def _send(self, url: str, batch: int) -> tuple[bool, float]:
        began = time.perf_counter()
        body, tokens = self._body(batch, began)
        try:
            async with self.http.put(url, data=body, headers=SEND_HEADERS) as response:
                await response.read()
                ok = response.status == 201
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if not ok:
            for token in tokens:
                self.sent_at.pop(token, None)
        return ok, time.perf_counter() - began

    async def latency(self, url: str, count: int, samples: bool = False) -> dict[str, Any]:
        """Send one message at a time and wait for its socket (or poll) before the next.
        With `samples`, the answer also lists every latency (ms), for figures over several
        client processes."""
        took: list[float] = []
        lost, errors = 0, 0
        loop = asyncio.get_running_loop()
        for _ in range(count):
            waiter: asyncio.Future[float] = loop.create_future()
            self.waiters[self.next_token] = waiter
            ok, _ = await self._send(url, 1)
            if not ok:
                errors += 1
                continue
            try:
                took.append(await asyncio.wait_for(waiter, NO_ANSWER_S))
            except TimeoutError:
                lost += 1
        self.waiters.clear()
        self.received_at.clear()
        listed = {"samples_ms": [round(s * 1000, 3) for s in took]} if samples else {}
        return {"n": len(took), "lost": lost, "errors": errors, **_ms(took), **listed}

    async def load(self, url: str, senders: int, seconds: float, batch: int) -> dict[str, Any]:
        """`senders` loops, each sending again as soon as its last send was answered."""
        self.received_at.clear()
        start = time.perf_counter()
        deadline = start + seconds
        accepted, errors, http_times = 0, 0, []

        async def sender() -> None:
            nonlocal accepted, errors
            while time.perf_counter() < deadline:
                ok, took = await self._send(url, batch)
                http_times.append(took)
                if ok:
                    accepted += batch
                else:
                    errors += 1

        await asyncio.gather(*(sender() for _ in range(senders)))
        end = time.perf_counter()
        await self._drain(end)
        in_window = sum(1 for when, _ in self.received_at if when <= end)
        latencies = [latency for _, latency in self.received_at]
        last = max((when for when, _ in self.received_at), default=end)
        lost = len(self.sent_at)
        self.sent_at.clear()
        return {
            "accepted": accepted,
            "received": len(latencies),
            "lost": lost,
            "errors": errors,
            "seconds": round(end - start, 3),
            "msgs_per_s": round(in_window / (end - start), 1),
            "accepted_per_s": round(accepted / (end - start), 1),
            "http_p99_ms": round(percentile(http_times, 99) * 1000, 3) if http_times else None,
            # The backlog a load left: what arrived over a second after the senders stopped
            # (their last sends answered), and how long the last message took to arrive.
            "late": sum(1 for when, _ in self.received_at if when > end + LATE_S),
            "last_after_end_s": round(max(0.0, last - end), 3),
            **_ms(latencies),
        }

    async def _drain(self, end: float) -> None:
        """Wait for the messages sent but not yet received: NO_ANSWER_S after the load's
        end, and on while they still arrive (a backlog draining), up to DRAIN_LIMIT_S."""
        while self.sent_at:
            now = time.perf_counter()
            last = self.received_at[-1][0] if self.received_at else end
            if now >= end + DRAIN_LIMIT_S:
                return
            if now >= end + NO_ANSWER_S and now - last >= STILL_ARRIVING_S:
                return
            await asyncio.sleep(0.05)

    async def polls(self, url: str, concurrency: int, seconds: float) -> dict[str, Any]:
        """Idle polls from Python; used only when wrk is not installed."""
        deadline = time.perf_counter() + seconds
        times: list[float] = []
        errors = 0

        async def poller(index: int) -> None:
            nonlocal errors
            body = orjson.dumps({"sessionId": f"poll-{index}", "siteId": "woodstock_outlet"})
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                async with self.http.post(url, data=body, headers=SEND_HEADERS) as response:
                    await response.read()
                    errors += response.status != 200
                times.append(time.perf_counter() - began)

        await asyncio.gather(*(poller(i) for i in range(concurrency)))
        return {"requests_per_s": round(len(times) / seconds, 1), "errors": errors, **_ms(times)}

    async def shutdown(self) -> None:
        await self.close()
        await self.ws_http.close()
        await self.http.close()


def _ms(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(percentile(samples, 50) * 1000, 3),
        "p99_ms": round(percentile(samples, 99) * 1000, 3),
        "max_ms": round(max(samples) * 1000, 3),
    }


async def serve_commands(source: str | None) -> None:
    client = LoadClient(source)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    commands: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
        "open": client.open,
        "hold": client.hold,
        "poll_stats": client.poll_stats,
        "latency": client.latency,
        "load": client.load,
        "polls": client.polls,
        "close": client.close,
    }
    try:
        while line := await reader.readline():
            request = orjson.loads(line)
            name = request.pop("cmd")
            if name == "exit":
                break
            try:
                answer = await commands[name](**request)
            except Exception as exc:
                answer = {"error": repr(exc)}
            sys.stdout.write(orjson.dumps(answer).decode() + "\n")
            sys.stdout.flush()
    finally:
        await client.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("--source", help="the loopback address to bind the sockets to")
    uvloop.run(serve_commands(parser.parse_args().source))
