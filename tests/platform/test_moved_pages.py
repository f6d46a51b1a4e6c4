"""The hosted system's page addresses, as a shop's guide names them, lead to their
counterparts here, with the query kept (/work/shared/seed's guide, step 1 and the
dashboard link)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.support import InProcessServer, make_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUIDE_TEST_PAGE = (
    "/test-woodstock-session.html?utm_source=facebook&utm_medium=cpc&utm_campaign=chairs_sale"
    "&customer_id=12345&customer_email=test@woodstock.com"
)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    database = tmp_path_factory.mktemp("moved") / "teaser.db"
    server = InProcessServer(make_settings(database_url=f"sqlite+aiosqlite:///{database}"))
    await server.start()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client
    await server.stop()


@pytest.mark.parametrize(
    "old,new",
    [
        ("/webhook-dashboard.html", "/dashboard"),
        ("/webhook-dashboard", "/dashboard"),
        (GUIDE_TEST_PAGE, "/demo" + GUIDE_TEST_PAGE.partition(".html")[2]),
        ("/test-woodstock-session?utm_source=facebook", "/demo?utm_source=facebook"),
        ("/test-woodstock-session.html", "/demo"),
    ],
)
async def test_the_hosted_systems_pages_move_permanently_with_their_query(
    http: httpx.AsyncClient, old: str, new: str
) -> None:
    moved = await http.get(old)

    assert moved.status_code == 301
    assert moved.headers["location"] == new


async def test_the_guides_test_page_ends_on_the_demo_with_its_campaign(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get(GUIDE_TEST_PAGE, follow_redirects=True)

    assert page.status_code == 200 and page.url.path == "/demo"
    assert page.url.params["utm_source"] == "facebook"
    assert page.url.params["customer_email"] == "test@woodstock.com"
    assert "text/html" in page.headers["content-type"]
