"""How Teaser is served: the uvicorn options `teaser serve` passes, and the Procfile spells
out as flags (tests/platform/test_http_limits.py keeps the two the same)."""

from __future__ import annotations

from typing import Any

from api.httpprotocol import HEAD_LIMITED_HTTP
from api.wsprotocol import LEAN_WEBSOCKETS

APP = "api.app:create_app"

# Seconds an idle keep-alive connection stays open after its last response: uvicorn's
# own default, stated here so it can't change under us with an upgrade.
KEEP_ALIVE_TIMEOUT = 5

UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    "http": HEAD_LIMITED_HTTP,
    "ws": LEAN_WEBSOCKETS,
    "ws_max_size": 64 * 1024,
    "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
    "proxy_headers": True,
}
