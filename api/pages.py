"""The embeddable widget script and its demo page."""

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Route

from api.resources import on_disk
from widget import FILES

WIDGET_JS = on_disk(FILES / "widget.js")
DEMO_PAGE = on_disk(FILES / "demo.html")

# Shops embed a fixed URL with no version in it, so a fix must reach visitors within minutes;
# the ETag lets browsers revalidate cheaply after that.
WIDGET_CACHE = "public, max-age=300"


async def widget_js(request: Request) -> FileResponse:
    return FileResponse(
        WIDGET_JS,
        media_type="application/javascript; charset=utf-8",
        headers={"Cache-Control": WIDGET_CACHE},
    )


async def demo(request: Request) -> FileResponse:
    return FileResponse(
        DEMO_PAGE,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


routes: list[BaseRoute] = [
    Route("/widget.js", widget_js),
    Route("/demo", demo),
]
