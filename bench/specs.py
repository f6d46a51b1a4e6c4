"""The configurations measured: Teaser and its two peers, with their databases and brokers."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from api.serving import UVICORN_OPTIONS
from bench.servers import TEASER_SERVE, ServerSpec
from bench.services import REDIS_URL

TEASER_APP = "api.app:create_app"
SOCKETIO_APP = "bench.peers.socketio_peer:app"
SOCKETIO_EMIT_APP = "bench.peers.socketio_emit_peer:app"
STARLETTE_APP = "bench.peers.starlette_peer:app"
MIGRATE = (sys.executable, "-m", "api.cli", "db", "upgrade")


@dataclass(frozen=True)
class Setup:
    """A row label: who serves, on what storage, how sends and sockets reach the workers."""

    spec: ServerSpec
    storage: str = "-"  # sqlite | postgres+redis | memory | redis
    topology: str = "1 worker"  # 1 worker | 2 workers | A→B (sender on A, sockets on B)

    @property
    def label(self) -> str:
        return f"{self.spec.peer} {self.spec.variant} [{self.storage}, {self.topology}]"

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "peer": spec.peer,
            "variant": spec.variant,
            "launch": "teaser serve" if spec.launch == TEASER_SERVE else "uvicorn",
            "storage": self.storage,
            "topology": self.topology,
            "ws": spec.ws,
            "loop": spec.loop,
            "http": spec.http,
            "workers": spec.workers,
        }


# All load comes from 127.0.0.1, so Teaser's per-IP and per-session limits would measure
# themselves (429s), not the server: 0 switches each of them off.
NO_LIMITS = {
    f"TEASER_LIMIT_{name}": "0"
    for name in (
        "SENDS_PER_SECOND",
        "POLLS_PER_SESSION_PER_MINUTE",
        "POLLS_PER_IP_PER_SECOND",
        "EVENTS_PER_IP_PER_SECOND",
        "SOCKETS_PER_IP",
    )
}


def teaser_env(database_url: str, redis: bool) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL if redis else "",
        "TEASER_ENV": "development",
        # A SIGTERM would otherwise keep each server up 5 s more, answering /readyz with 503
        # for a load balancer there is none of here: it only delays the next setup.
        "TEASER_DRAIN_SECONDS": "0",
        **NO_LIMITS,
    }


def sqlite_url(tmp: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp / f'teaser-{uuid.uuid4().hex[:8]}.db'}"


def teaser(database_url: str, *, redis: bool = False, workers: int = 1) -> ServerSpec:
    """Teaser as shipped: started by `teaser serve`, with its own uvicorn options and its
    default logging, whatever they are at the commit measured (api/serving.py)."""
    return replace(
        teaser_tuned(database_url, redis=redis, workers=workers),
        variant="shipped",
        launch=TEASER_SERVE,
        # What `teaser serve` passes uvicorn (api/serving.py); the loop is uvicorn's "auto".
        ws=str(UVICORN_OPTIONS.get("ws", "auto")),
        http=str(UVICORN_OPTIONS.get("http", "auto")),
        loop=str(UVICORN_OPTIONS.get("loop", "auto")),
    )


def teaser_tuned(database_url: str, *, redis: bool = False, **options: Any) -> ServerSpec:
    """Teaser started by uvicorn directly, without the access log: the bench's own start
    before issue 21, kept beside the shipped one, and the one the option variants and the
    profilers use (`teaser serve` has no --ws/--loop/--http, nor another app)."""
    # Workers of one uvicorn all migrate at start; on a fresh SQLite file they race
    # ("table sites already exists"), so the schema is created once beforehand.
    prepare = MIGRATE if options.get("workers", 1) > 1 else ()
    env = teaser_env(database_url, redis)
    return ServerSpec(
        "teaser", TEASER_APP, variant="tuned", factory=True, env=env, prepare=prepare, **options
    )


def _socketio_env(redis: bool) -> dict[str, str]:
    env = {"BENCH_REDIS_URL": REDIS_URL if redis else ""}
    if redis:
        env["BENCH_SOCKETIO_CHANNEL"] = f"bench-socketio-{uuid.uuid4().hex[:8]}"
    return env


def socketio(*, redis: bool = False, **options: Any) -> ServerSpec:
    """python-socketio carrying what Teaser's frame carries (the whole stored message),
    and receiving the clients' acks."""
    return ServerSpec(
        "socketio", SOCKETIO_APP, variant="same-wire", env=_socketio_env(redis), **options
    )


def socketio_emit(*, redis: bool = False, **options: Any) -> ServerSpec:
    """python-socketio as the least a team would build: emit, no acks, nothing kept."""
    env = _socketio_env(redis)
    return ServerSpec(
        "socketio-emit", SOCKETIO_EMIT_APP, variant="emit-and-forget", env=env, **options
    )


def starlette(**options: Any) -> ServerSpec:
    return ServerSpec("starlette", STARLETTE_APP, variant="bare", **options)


def variant(spec: ServerSpec, **options: Any) -> ServerSpec:
    return replace(spec, **options)
