"""create_app(): routes, error mapping and the lifespan that starts this worker's runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route, WebSocketRoute

from api.cors import WidgetCORSMiddleware
from api.dashboard import routes as dashboard_routes
from api.draining import Drain
from api.errors import HANDLERS
from api.events import record_event, record_server_event
from api.health import healthz, livez, readyz
from api.httpprotocol import SERVER_STOPPING
from api.limits import MAX_BODY_BYTES, MAX_SEND_BODY_BYTES, BodyLimitMiddleware
from api.logs import configure_logging, redact_personal_data
from api.metrics import metrics
from api.openapi.routes import asyncapi, openapi
from api.ops_port import OpsPort
from api.pages import routes as page_routes
from api.privacy import erase_person
from api.request_ids import RequestIds
from api.sockets import DirectSocket
from api.teasers import (
    end_session,
    open_session,
    teaser_message,
    teaser_messages,
    teaser_socket,
)
from api.webhooks import routes as webhook_routes
from api.wsprotocol import SESSION_SOCKET_PATH
from realtime.platform import Settings
from realtime.runtime import Runtime

WIDGET_PATHS = frozenset({"/api/teaser-messages", "/api/events", "/api/sessions"})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/teaser-messages", teaser_messages, methods=["PUT", "POST"]),
        Route("/api/teaser-messages/{message_id}", teaser_message, methods=["GET"]),
        WebSocketRoute(SESSION_SOCKET_PATH, teaser_socket),
        Route("/api/events", record_event, methods=["POST"]),
        Route("/api/events/server", record_server_event, methods=["POST"]),
        Route("/api/sessions", open_session, methods=["POST"]),
        Route("/api/sessions/{session_id}", end_session, methods=["DELETE"]),
        Route("/api/privacy/erase", erase_person, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/livez", livez),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route("/asyncapi.json", asyncapi),
        *page_routes,
        *dashboard_routes,
        *webhook_routes,
    ]


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    settings = settings or Settings.from_environ()
    configure_logging()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        # Again, for a server whose logging was set up after the app was made (the handlers
        # a --log-config or a test adds); handlers already redacting are left as they are.
        redact_personal_data()
        app.state.runtime = started = runtime or Runtime(settings)
        await started.start()
        # Installed once the server's own signal handling is (uvicorn installs it before
        # the lifespan starts), so that it runs first.
        drain.install()
        try:
            yield {SERVER_STOPPING: started.held_polls.end_all}
        finally:
            drain.uninstall()
            await app.state.runtime.stop()

    drain = Drain(settings.drain_seconds)
    ops_port = [Middleware(OpsPort, port=settings.ops_port)] if settings.ops_port else []
    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(RequestIds),
            *ops_port,
            Middleware(DirectSocket, path=SESSION_SOCKET_PATH, endpoint=teaser_socket),
            Middleware(WidgetCORSMiddleware, paths=WIDGET_PATHS),
            Middleware(
                BodyLimitMiddleware,
                max_bytes=MAX_BODY_BYTES,
                larger={("PUT", "/api/teaser-messages"): MAX_SEND_BODY_BYTES},
            ),
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.drain = drain
    return app
