"""The web page signs people in: it asks for the team token (kept in session storage,
sent as a bearer token), shows who you are, and signs out; with OpenID Connect through
the real provider (npm oidc-provider). Headless Chromium via Playwright; screenshots go
to a temp folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.settings import AuthSettings
from tests.catalog_server import RunningCatalog, run_catalog
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, _missing
from tests.team.test_oidc import Clock, oidc, provider_dir  # noqa: F401 - fixtures

TOKEN = "team-token-for-the-browser-test-0123456789"
SHOTS = Path(tempfile.gettempdir()) / "connectrpc-catalog-screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_the_page_asks_for_the_token_keeps_it_and_forgets_it(browser: Any) -> None:
    config = AppConfig(auth=AuthSettings(mode="token", token=TOKEN))
    with run_catalog(config) as c:
        context = browser.new_context()
        page = context.new_page()
        sent: list[str | None] = []
        page.on(
            "request",
            lambda r: sent.append(r.headers.get("authorization"))
            if "/catalog.v1.CatalogService/" in r.url
            else None,
        )
        page.goto(c.url + "/")
        prompt = page.get_by_test_id("token-prompt")
        prompt.wait_for()
        _shot(page, "token-prompt")
        assert page.get_by_test_id("whoami").count() == 0
        page.fill("input[name=token]", "not-the-token")
        page.click("text=Sign in")
        page.get_by_text("That token was not accepted").wait_for()
        page.fill("input[name=token]", TOKEN)
        page.click("text=Sign in")
        who = page.get_by_test_id("whoami")
        who.wait_for()
        assert "team token" in who.inner_text()
        assert page.get_by_test_id("token-prompt").count() == 0
        assert page.evaluate("sessionStorage.getItem('catalog.auth-token')") == TOKEN
        assert TOKEN not in "".join(c["value"] for c in context.cookies())
        calls_with_token = [h for h in sent if h == f"Bearer {TOKEN}"]
        assert calls_with_token and sent[-1] == f"Bearer {TOKEN}"
        _shot(page, "sign-in-token")
        page.click("text=Forget token")
        page.get_by_test_id("token-prompt").wait_for()
        assert page.evaluate("sessionStorage.getItem('catalog.auth-token')") is None
        context.close()


def test_behind_a_proxy_the_page_shows_who_you_are_without_sign_out(browser: Any) -> None:
    auth = AuthSettings(mode="proxy", trusted_proxies=("127.0.0.1/32",))
    with run_catalog(AppConfig(auth=auth)) as c:
        context = browser.new_context(extra_http_headers={"X-Forwarded-Email": "pat@example.test"})
        page = context.new_page()
        page.goto(c.url + "/")
        who = page.get_by_test_id("whoami")
        who.wait_for()
        assert "pat@example.test" in who.inner_text()
        assert who.get_by_role("button").count() == 0 and who.get_by_role("link").count() == 0
        context.close()


def test_openid_sign_in_shows_the_person_and_signs_out(
    browser: Any,
    oidc: tuple[RunningCatalog, str, Clock, Path],  # noqa: F811
) -> None:
    catalog, issuer, clock, _audit = oidc
    context = browser.new_context()
    page = context.new_page()
    page.goto(catalog.url + "/")
    assert page.url.startswith(issuer)  # sent to the provider
    page.fill("input[name=login]", "erin")
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    who = page.get_by_test_id("whoami")
    who.wait_for()
    assert page.url.startswith(catalog.url)
    assert "erin@example.com" in who.inner_text()
    assert "team-erin" in (who.locator("span").first.get_attribute("title") or "")
    _shot(page, "sign-in-oidc")
    clock.offset = 2 * 3600.0  # the ID token (1 h) has expired: the next call is refused
    try:
        page.fill("input[name=proto_path]", "/srv/protos")
        page.click("text=Load folder")
        prompt = page.get_by_test_id("sign-in-prompt")
        prompt.wait_for()
        assert "expired" in prompt.inner_text()
        link = prompt.get_by_role("link", name="Sign in")
        assert link.get_attribute("href") == "auth/login"  # relative: right under --base-path
        assert link.evaluate("a => a.href") == f"{catalog.url}/auth/login"
    finally:
        clock.offset = 0.0
    page.click("text=Sign out")
    page.wait_for_url(f"{issuer}/**")
    if page.locator("button[autofocus], button[type=submit]").count():  # the provider asks
        page.locator("button[autofocus], button[type=submit]").first.click()
    page.wait_for_selector("input[name=login]")  # signed out of both: the provider asks again
    assert not [c for c in context.cookies() if c["name"] == "catalog_auth" and c["value"]]
    context.close()
