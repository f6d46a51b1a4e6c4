"""The embeddable widget script, its demo page, a dev server's one-time sign-in link, and
the hosted system's page addresses."""

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse
from starlette.routing import BaseRoute, Route

from api.auth import client_address, runtime_of
from api.operator_auth import set_session_cookies, signer_of
from api.resources import on_disk
from realtime.accounts import SIGN_IN_LINK_PATH
from realtime.contract import SignInLinkQuery, from_strings
from realtime.platform import NotFound, Unauthorized
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


async def sign_in_link(request: Request) -> RedirectResponse:
    """A dev server's one-time link (realtime/accounts/sign_in_links.py): its operator is
    signed in as by the sign-in form, and lands on the dashboard."""
    runtime = runtime_of(request)
    if runtime.settings.production:
        raise NotFound("no such page")  # production issues no links: nothing to answer
    token = from_strings(request.query_params.multi_items(), SignInLinkQuery).token
    operator_id = await runtime.sign_in_links.redeem(token)
    operator = None if operator_id is None else await runtime.operators.get(operator_id)
    if operator is None:
        raise Unauthorized(
            "this sign-in link was used already or has expired: restart the server for a new "
            "one, or set a password with `teaser operator reset SITE EMAIL`",
            code="sign_in_link_expired",
        )
    cookie, session = signer_of(request).issue(operator.id, runtime.store.clock())
    await runtime.operator_sessions.open(
        operator.id,
        session.nonce,
        address=client_address(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    response = RedirectResponse(
        "/dashboard", status_code=303, headers={"Cache-Control": "no-store"}
    )
    set_session_cookies(request, response, cookie, signer_of(request).csrf_token(session))
    return response


routes: list[BaseRoute] = [
    Route("/widget.js", widget_js),
    Route("/demo", demo),
    Route(SIGN_IN_LINK_PATH, sign_in_link),
    *(Route(path, moved_to(target)) for path, target in MOVED_PAGES.items()),
]
