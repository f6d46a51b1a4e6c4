"""How Teaser is served: the uvicorn options, and `teaser serve` itself, which the Procfile,
script/server and the container image all run."""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from api.httpprotocol import HEAD_LIMITED_HTTP
from api.logs import uvicorn_log_config
from api.metrics import prepare_worker_metrics
from api.wsprotocol import LEAN_WEBSOCKETS
from realtime.platform import Settings

APP = "api.app:create_app"

# Seconds an idle keep-alive connection stays open after its last response: uvicorn's
# own default, stated here so it can't change under us with an upgrade.
KEEP_ALIVE_TIMEOUT = 5
# Once the drain is over, seconds uvicorn waits for requests still being answered before it
# cuts them (sockets are closed at once, with 1012).
GRACEFUL_SHUTDOWN_TIMEOUT = 10

UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    "http": HEAD_LIMITED_HTTP,
    "ws": LEAN_WEBSOCKETS,
    "ws_max_size": 64 * 1024,
    "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
    "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_TIMEOUT,
    "proxy_headers": True,
}


def serve(host: str, port: int, workers: int, forwarded_allow_ips: str) -> None:
    """uvicorn.run(), but listening on the ops port too when TEASER_OPS_PORT is set: every
    worker serves both sockets, and the app tells them apart (api/ops_port.py)."""
    settings = Settings.from_environ()
    # Before the workers start: they inherit the directory their metrics add up in.
    prepare_worker_metrics()
    config = uvicorn.Config(
        APP,
        host=host,
        port=port,
        workers=workers,
        log_config=uvicorn_log_config(),
        forwarded_allow_ips=forwarded_allow_ips,
        **UVICORN_OPTIONS,
    )
    sockets = [config.bind_socket()]
    if settings.ops_port is not None:
        sockets.append(_bind(host, settings.ops_port))
    if config.workers > 1:
        Multiprocess(config, sockets=sockets).run()
        return
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(3)  # what uvicorn exits with when a worker can't start


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)  # the workers are spawned processes that inherit it
    return sock
