"""The web UI behind a reverse proxy at /catalog/ (--base-path): the page, its assets, the
API and the demo call all stay under the prefix (headless Chromium)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Request, expect

from .conftest import PageErrors, new_page, run_catalog, screenshot


def test_the_page_works_under_a_path_prefix(browser: Browser, page_errors: PageErrors) -> None:
    with run_catalog("--base-path", "/catalog", "--demo") as url:
        page = new_page(browser, page_errors)
        paths: list[str] = []

        def seen(request: Request) -> None:
            if request.url.startswith(url):
                paths.append(urlsplit(request.url).path)

        page.on("request", seen)
        page.goto(url + "catalog")  # without the slash: redirected to the folder
        expect(page).to_have_url(re.compile(r"/catalog/(#.*)?$"))
        page.get_by_test_id("demo-card").get_by_role("link", name="GetCurrentConditions").click()
        expect(page.get_by_role("heading", level=1, name="GetCurrentConditions")).to_be_visible()
        page.get_by_test_id("send").click()
        expect(page.get_by_test_id("status")).to_have_text("0 OK")
        expect(page).to_have_url(re.compile(r"/catalog/#/m/weather\.v1\.WeatherService/"))
        screenshot(page, "base-path", top=True)
        page.context.close()
    assert paths and any("CatalogService/InvokeGRPC" in p or "Invoke" in p for p in paths)
    outside = [p for p in paths if p != "/catalog" and not p.startswith("/catalog/")]
    assert outside == [], outside
    assert not page_errors, page_errors
