"""The embeddable widget script, its demo page, and the hosted system's page addresses."""

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse
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


# The pages of the hosted system a shop may move from, as its guide names them (with and
# without .html, as that host served both): its bookmarks and links land on their
# counterparts here. 301, not 308: both are permanent and cached, but these were only ever
# pages fetched with GET, where they mean the same, and 301 is the one every crawler, link
# checker and old client follows alike.
MOVED_PAGES = {
    "/webhook-dashboard.html": "/dashboard",
    "/webhook-dashboard": "/dashboard",
    "/test-woodstock-session.html": "/demo",
    "/test-woodstock-session": "/demo",
}


def moved_to(target: str) -> Callable[[Request], Awaitable[RedirectResponse]]:
    """A page now at `target`, with its query kept: the test page's ?utm_source=… and
    ?customer_id=… are what the demo reads."""

    async def moved(request: Request) -> RedirectResponse:
        query = request.url.query
        return RedirectResponse(target + (f"?{query}" if query else ""), status_code=301)

    return moved


routes: list[BaseRoute] = [
    Route("/widget.js", widget_js),
    Route("/demo", demo),
    *(Route(path, moved_to(target)) for path, target in MOVED_PAGES.items()),
]
