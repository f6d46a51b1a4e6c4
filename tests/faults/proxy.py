"""A TCP proxy on 127.0.0.1 that injects network faults between a server and what it talks to.

proxy = FaultProxy(upstream_port=6379)
await proxy.start()                # REDIS_URL=redis://127.0.0.1:{proxy.port}/0
proxy.cut()                        # every open connection dies at once (a killed server)
proxy.fault = Fault.REFUSE         # new connections are closed as soon as they arrive
proxy.fault = Fault.STALL          # half-open: sockets stay up, no byte gets through
proxy.delay = 0.3                  # each chunk waits this long before it is passed on
await proxy.restart(down_for=2.0)  # cut, refuse for a while, then accept again
proxy.fault = Fault.NONE           # forward again (stalled bytes are delivered late)
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum


class Fault(Enum):
    NONE = "forward"
    REFUSE = "refuse new connections"
    STALL = "stall: keep sockets open, forward nothing"


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.delay = 0.0
        self.accepted = 0
        self._fault = Fault.NONE
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def fault(self) -> Fault:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        self._fault = fault
        if fault is Fault.STALL:
            self._flowing.clear()
        else:
            self._flowing.set()

    def url(self, scheme: str = "redis", path: str = "/0") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def upstream_addresses(self) -> list[str]:
        """The proxy's own end of each upstream connection, as the upstream sees it."""
        names = [
            w.get_extra_info("sockname")
            for w in self._links
            if w.get_extra_info("peername") == self.upstream
        ]
        return [f"{host}:{port}" for host, port, *_ in names if host]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self) -> None:
        """Reset every open connection, both ways, as a crashed or killed server would."""
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def restart(self, down_for: float) -> None:
        self.cut()
        self.fault = Fault.REFUSE
        await asyncio.sleep(down_for)
        self.fault = Fault.NONE

    async def _accept(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if self._fault is Fault.REFUSE:
            client.transport.abort()
            return
        try:
            upstream_in, upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            client.transport.abort()
            return
        self.accepted += 1
        self._links |= {client, upstream}
        pipes = [
            asyncio.ensure_future(self._pipe(client_in, upstream)),
            asyncio.ensure_future(self._pipe(upstream_in, client)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for writer in (client, upstream):
                self._links.discard(writer)
                writer.transport.abort()

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65_536):
                await self._flowing.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                sink.write(chunk)
                await sink.drain()
        # One side closed: close the other, as a real socket pair would.
        sink.transport.abort()
