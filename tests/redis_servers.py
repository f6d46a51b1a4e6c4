"""Redis servers of a test's own, on free ports, never the shared one: a lone redis-server
to kill, pause and restart, and a Redis Cluster (three masters, a replica each) whose
masters a test can kill."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import redis.asyncio as aioredis

from tests.support import free_port


class RedisServer:
    """A redis-server on a free port, with no persistence, so that a restart comes back
    empty."""

    def __init__(self, directory: Path, *options: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.options = list(options)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        with (self.directory / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*command, *self.options], stdout=log, stderr=subprocess.STDOUT
            )
        client = aioredis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            for _ in range(100):
                try:
                    if await client.ping():
                        return
                except (aioredis.RedisError, OSError):
                    await asyncio.sleep(0.05)
            raise RuntimeError(f"redis-server on port {self.port} did not start")
        finally:
            await client.aclose()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait()


class RedisClusterNodes:
    """Three masters and a replica of each, joined by `redis-cli --cluster create`. A
    master that stops answering for NODE_TIMEOUT_MS is failed over to its replica."""

    NODE_TIMEOUT_MS = 1000

    def __init__(self, directory: Path, masters: int = 3) -> None:
        options = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS)]
        # A replica syncs at once (not after the default 5 s), and may always take over,
        # however long it was cut off from its master.
        options += ["--repl-diskless-sync-delay", "0", "--cluster-replica-validity-factor", "0"]
        self.nodes = [RedisServer(directory, *options) for _ in range(masters * 2)]
        for node in self.nodes:
            # The bus port would be port + 10000 (past 65535 for a high free port).
            node.options += ["--cluster-config-file", f"nodes-{node.port}.conf"]
            node.options += ["--cluster-port", str(free_port())]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.name for node in self.nodes)

    async def start(self) -> None:
        await asyncio.gather(*(node.start() for node in self.nodes))
        create = ["redis-cli", "--cluster", "create", *(node.name for node in self.nodes)]
        create += ["--cluster-replicas", "1", "--cluster-yes"]
        made = await asyncio.to_thread(subprocess.run, create, capture_output=True, timeout=60)
        if made.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {made.stdout!r}")
        await self.wait_until_whole()
        await self._replicas_in_sync()

    async def _replicas_in_sync(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            async with self._client(node) as client:
                while time.monotonic() < deadline:
                    info = await client.info("replication")
                    if info["role"] == "master" or info.get("master_link_status") == "up":
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise RuntimeError(f"replica {node.name} did not sync")

    async def wait_until_whole(self, timeout: float = 30.0) -> None:
        """Until every live node says the cluster is ok and names a live master for every
        slot (after a kill: the replica has been promoted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self._whole():
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not become whole")

    async def master_of(self, channel: str) -> RedisServer:
        async with self._client(self._live()[0]) as client:
            slot = int(await client.execute_command("CLUSTER", "KEYSLOT", channel))
            for start, end, master, *_ in await client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    port = int(master[1])
                    return next(node for node in self.nodes if node.port == port)
        raise RuntimeError(f"no master for slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def _live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    async def _whole(self) -> bool:
        live = {node.port for node in self._live()}
        for node in self._live():
            try:
                async with self._client(node) as client:
                    info = await client.execute_command("CLUSTER", "INFO")
                    slots = await client.execute_command("CLUSTER", "SLOTS")
                    replication = await client.info("replication")
            except (aioredis.RedisError, OSError):
                return False
            text = info.decode() if isinstance(info, bytes) else str(info)
            covered = sum(end - start + 1 for start, end, *_ in slots)
            masters_live = all(int(master[1]) in live for _, _, master, *_ in slots)
            # A replica not yet synced with its master could not take over from it.
            synced = replication["role"] == "master" or replication["master_link_status"] == "up"
            if "cluster_state:ok" not in text or covered != 16384 or not masters_live:
                return False
            if not synced:
                return False
        return True

    @staticmethod
    def _client(node: RedisServer) -> aioredis.Redis:
        return aioredis.from_url(node.url, socket_timeout=1.0, socket_connect_timeout=1.0)
