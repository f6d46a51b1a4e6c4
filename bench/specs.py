"""The configurations measured: Teaser and its two peers, with their databases and brokers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.servers import ServerSpec
from bench.services import REDIS_URL

TEASER_APP = "api.app:create_app"
SOCKETIO_APP = "bench.peers.socketio_peer:app"
STARLETTE_APP = "bench.peers.starlette_peer:app"
DEFAULT_OPTIONS = {"ws": "websockets-sansio", "loop": "uvloop", "http": "httptools"}


@dataclass(frozen=True)
class Setup:
    """A row label: who serves, on what storage, how sends and sockets reach the workers."""

    spec: ServerSpec
    storage: str = "-"  # sqlite | postgres+redis | memory | redis
    topology: str = "1 worker"  # 1 worker | 2 workers | A→B (sender on A, sockets on B)

    @property
    def label(self) -> str:
        return f"{self.spec.peer} [{self.storage}, {self.topology}]"

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "peer": spec.peer,
            "storage": self.storage,
            "topology": self.topology,
            "ws": spec.ws,
            "loop": spec.loop,
            "http": spec.http,
            "workers": spec.workers,
        }


def teaser_env(database_url: str, redis: bool) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL if redis else "",
        "TEASER_ENV": "development",
    }


def sqlite_url(tmp: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp / f'teaser-{uuid.uuid4().hex[:8]}.db'}"


def teaser(database_url: str, *, redis: bool = False, **options: Any) -> ServerSpec:
    return ServerSpec(
        "teaser", TEASER_APP, factory=True, env=teaser_env(database_url, redis), **options
    )


def socketio(*, redis: bool = False, **options: Any) -> ServerSpec:
    env = {"BENCH_REDIS_URL": REDIS_URL if redis else ""}
    if redis:
        env["BENCH_SOCKETIO_CHANNEL"] = f"bench-socketio-{uuid.uuid4().hex[:8]}"
    return ServerSpec("socketio", SOCKETIO_APP, env=env, **options)


def starlette(**options: Any) -> ServerSpec:
    return ServerSpec("starlette", STARLETTE_APP, **options)


def variant(spec: ServerSpec, **options: Any) -> ServerSpec:
    return replace(spec, **options)
