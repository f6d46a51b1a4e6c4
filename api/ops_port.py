"""With TEASER_OPS_PORT set, metrics and probes live on that port only, off the public one,
so an orchestrator and Prometheus reach them and visitors don't."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.responses import error_body

OPS_PATHS = frozenset({"/metrics", "/livez", "/readyz", "/healthz"})
# What the public port no longer answers once the ops port serves it: /healthz stays, for
# load balancers that were set up with it.
OFF_THE_PUBLIC_PORT = frozenset({"/metrics", "/livez", "/readyz"})


class OpsPort:
    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app, self.port = app, port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            server = scope.get("server")
            on_ops_port = server is not None and server[1] == self.port
            path = scope["path"]
            if (path not in OPS_PATHS) if on_ops_port else (path in OFF_THE_PUBLIC_PORT):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4404})
                    return
                where = "the public port" if on_ops_port else f"port {self.port} (TEASER_OPS_PORT)"
                answer = JSONResponse(
                    error_body("not_found", f"{path} is served on {where} only"),
                    status_code=404,
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
