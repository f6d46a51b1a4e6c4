"""PostgreSQL that a fault test may break, never the shared one: a database of the test's own
on the shared server, whose backends it terminates, or a whole cluster of its own (initdb,
pg_ctl on a free port) that it stops and starts.

async with own_database() as database:      # a fresh database (teaser_t_…), dropped after
    await database.terminate_backends()     # every connection to it dies at once
cluster = OwnCluster.create()               # initdb into a temporary directory
cluster.start(); cluster.stop(); cluster.destroy()
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from tests.support import (
    POSTGRES_URL,
    drop_postgres_database,
    free_port,
    fresh_postgres_database,
    unavailable,
)

SHARED = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")


@dataclass(frozen=True)
class OwnDatabase:
    url: str  # for DATABASE_URL
    name: str

    async def terminate_backends(self) -> int:
        """Terminate every connection to this database, as an administrator (or a crash of
        one backend after another) would; how many there were."""
        connection = await asyncpg.connect(SHARED, timeout=3)
        try:
            rows = await connection.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.name,
            )
        finally:
            await connection.close()
        return len(rows)

    async def terminate_every(self, seconds: float, stop: asyncio.Event) -> int:
        """Terminate its backends every `seconds` until `stop`; how many in all."""
        terminated = 0
        while not stop.is_set():
            await asyncio.sleep(seconds)
            terminated += await self.terminate_backends()
        return terminated


@asynccontextmanager
async def own_database() -> AsyncIterator[OwnDatabase]:
    url = await fresh_postgres_database()
    try:
        yield OwnDatabase(url, url.rsplit("/", 1)[1])
    finally:
        await drop_postgres_database(url)  # WITH (FORCE): whatever still holds it


class OwnCluster:
    """A PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1. Run as
    the `postgres` user when the tests run as root (PostgreSQL refuses to run as root)."""

    def __init__(self, binaries: Path, directory: Path) -> None:
        self.binaries = binaries
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()

    @classmethod
    def create(cls) -> OwnCluster:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            unavailable("PostgreSQL's initdb", "no /usr/lib/postgresql/*/bin/initdb")
        # Not under pytest's tmp_path: its parents are open to root alone.
        cluster = cls(Path(found[-1]).parent, Path(tempfile.mkdtemp(prefix="teaser-pg-")))
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(cluster.directory, owner.pw_uid, owner.pw_gid)
        cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust")
        return cluster

    @property
    def url(self) -> str:
        """DATABASE_URL for its `postgres` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        log = str(self.directory / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session with an error, `immediate` is a crash (recovery at the
        next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.binaries / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=self.directory)
