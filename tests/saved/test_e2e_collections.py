"""Saved requests in the browser (headless Chromium, Playwright): call a method, save the
call into a collection, edit it (a {{variable}} endpoint and an assertion), add two
environments, switch between them in the always-visible switcher, and run: the
assertion results show a pass with one environment and a failure with the other. And a
request saved as edited, never sent (a client stream's two messages, Connect, TLS,
metadata), edited in the collection (every message) and reopened: the form holds it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PageErrors,
    _missing,
    new_page,
    run_catalog,
    screenshot,
)
from tests.e2e.conftest import upstream as upstream  # the example server, as the e2e tests use it

if _missing():
    pytest.skip(str(_missing()), allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.test_ui import AXE, axe_violations, load_weather, open_method, send, set_target


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    errors = PageErrors()
    args = (
        "--database",
        f"sqlite:///{tmp_path / 'saved.db'}",
        "--secret-key",
        "e2e test passphrase",
    )
    with run_catalog(*args) as url:
        p = new_page(browser, errors)
        p.goto(url)
        try:
            yield p
        finally:
            p.context.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def _environment(page: Page, name: str, host: str) -> None:
    page.get_by_test_id("new-env").click()
    editor = page.get_by_test_id("env-editor")
    editor.get_by_label("Environment name").fill(name)
    editor.get_by_test_id("add-variable").click()
    row = editor.get_by_test_id("variable-row").last
    row.get_by_label("Variable name").fill("host")
    row.get_by_label("Variable value").fill(host)
    editor.get_by_test_id("add-variable").click()
    secret = editor.get_by_test_id("variable-row").last
    secret.get_by_label("Variable name").fill("token")
    secret.get_by_label("Variable value").fill("e2e-secret-value")
    secret.get_by_role("checkbox").check()
    editor.get_by_test_id("save-env").click()
    expect(page.get_by_text(f"Saved {name}")).to_be_visible()


def test_save_edit_switch_environment_run(page: Page, upstream: str) -> None:
    load_weather(page)
    open_method(page, "weather.v1.WeatherService", "GetCurrentConditions")
    set_target(page, upstream)
    page.locator(".request-editor").locator('[data-path="location.city"]').fill("Lisbon")
    send(page)
    expect(page.get_by_test_id("status")).to_have_text("0 OK")

    # Save the call into a new collection shared with everyone (no sign-in here).
    page.get_by_test_id("collections-toggle").click()
    page.get_by_label("New collection name").fill("Team weather")
    page.get_by_label("Shared with").select_option("*")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_test_id("collection-view")).to_contain_text("shared with everyone")
    page.get_by_label("Saved request name").fill("Lisbon now")
    page.get_by_test_id("save-current").click()
    saved = page.get_by_test_id("saved-request")
    expect(saved).to_have_count(1)
    expect(saved).to_contain_text("Lisbon now")

    # Edit it: the endpoint from the environment, a check on the response.
    saved.get_by_role("button", name="Edit").click()
    editor = page.get_by_test_id("request-editor")
    editor.get_by_label("Endpoint").fill("{{host}}")
    editor.get_by_role("button", name="Add assertion").click()
    row = editor.get_by_test_id("assertion-row").last
    row.get_by_label("Path or header").fill("$.placeName")
    row.get_by_label("Expected value").fill('"Lisbon"')
    editor.get_by_test_id("save-request").click()
    expect(page.get_by_test_id("request-editor")).to_have_count(0)

    _environment(page, "local", upstream)
    _environment(page, "broken", "127.0.0.1:1")

    switcher = page.get_by_test_id("env-switcher")
    switcher.select_option("local")
    page.get_by_test_id("run-all").click()
    result = page.get_by_test_id("run-result")
    expect(result).to_contain_text("PASS")
    expect(result.get_by_test_id("assertion-result")).to_have_count(2)
    expect(result.get_by_test_id("assertion-result").last).to_contain_text(
        '✓ field $.placeName eq "Lisbon"'
    )
    assert "e2e-secret-value" not in page.content()
    screenshot(page, "saved-requests-pass")
    if AXE.exists():  # the open panel too: no serious or critical violation
        assert axe_violations(page) == []

    switcher.select_option("broken")
    expect(page.get_by_test_id("run-all")).to_have_text("Run all (broken)")
    page.get_by_test_id("run-all").click()
    expect(page.get_by_test_id("run-result")).to_contain_text("FAIL")
    expect(
        page.get_by_test_id("run-result").get_by_test_id("assertion-result").first
    ).to_contain_text("✗ status")
    screenshot(page, "saved-requests-fail")

    # The switcher stays visible away from the panel, on every page.
    page.get_by_test_id("collections-toggle").click()
    expect(page.get_by_test_id("env-switcher")).to_have_value("broken")

    # A collection's link opens it, in a browser that never saw it.
    chosen = page.evaluate("JSON.parse(localStorage.getItem('catalog.collections.v1')).collection")
    other = new_page(page.context.browser, PageErrors())  # type: ignore[arg-type]
    other.goto(page.url.split("#")[0] + f"#/?collection={chosen}")
    expect(other.get_by_test_id("collection-view")).to_contain_text("Team weather")
    expect(other.get_by_test_id("saved-request")).to_contain_text("Lisbon now")
    other.context.close()

    # Edit in the method's own editor: call it for Tokyo, then update the saved request
    # from the form; its assertion on "Lisbon" now fails (with the local environment).
    page.locator(".request-editor").locator('[data-path="location.city"]').fill("Tokyo")
    send(page)
    expect(page.get_by_test_id("response-json")).to_contain_text('"placeName": "Tokyo"')
    switcher.select_option("local")
    page.get_by_test_id("collections-toggle").click()
    page.get_by_test_id("update-from-form").click()
    page.get_by_test_id("run-all").click()
    failed = page.get_by_test_id("run-result").get_by_test_id("assertion-result").last
    expect(failed).to_contain_text('✗ field $.placeName eq "Lisbon" — "Tokyo"')


def _create(page: Page, name: str) -> None:
    page.get_by_test_id("collections-toggle").click()
    page.get_by_label("New collection name").fill(name)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_test_id("collection-view")).to_contain_text(name)


def _message(page: Page, index: int) -> dict:
    page.get_by_role("group", name="Request messages").get_by_role(
        "button", name=f"#{index}", exact=True
    ).click()
    return json.loads(page.get_by_test_id("request-json").input_value())


def test_save_an_unsent_draft_edit_every_message_and_reopen(page: Page, upstream: str) -> None:
    load_weather(page)
    open_method(page, "weather.v1.WeatherService", "ReportObservations")  # a client stream
    set_target(page, upstream, "Connect")
    page.get_by_role("checkbox", name="TLS", exact=True).check()
    page.get_by_label("Server name").fill("weather.internal")
    page.get_by_role("button", name=re.compile(r"^Metadata")).click()
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header 1 name").fill("x-team")
    page.get_by_label("Header 1 value").fill("blue")
    page.get_by_role("tab", name="JSON").click()
    editor = page.get_by_test_id("request-json")
    editor.fill('{"stationId": "LIS-001", "temperature": 18}')
    page.get_by_role("button", name="Add a request message").click()
    editor.fill('{"stationId": "BER-001", "temperature": 12}')
    expect(page.get_by_test_id("send")).to_contain_text("Send 2 messages")

    # Saved without calling it first: the request as edited.
    _create(page, "Drafts")
    expect(page.get_by_test_id("save-current")).to_have_text("Save ReportObservations request")
    page.get_by_label("Saved request name").fill("Two stations")
    page.get_by_test_id("save-current").click()
    saved = page.get_by_test_id("saved-request")
    expect(saved).to_have_count(1)

    # Its editor holds both messages; change the second one.
    saved.get_by_role("button", name="Edit").click()
    edit = page.get_by_test_id("request-editor")
    rows = edit.get_by_test_id("message-row")
    expect(rows).to_have_count(2)
    assert (
        json.loads(edit.get_by_label("Message 1", exact=True).input_value())["stationId"]
        == "LIS-001"
    )
    edit.get_by_label("Message 2", exact=True).fill('{"stationId": "OSL-001", "temperature": 3}')
    edit.get_by_test_id("add-message").click()
    edit.get_by_label("Message 3", exact=True).fill('{"stationId": "ROM-001", "temperature": 21}')
    edit.get_by_test_id("save-request").click()
    expect(page.get_by_test_id("request-editor")).to_have_count(0)

    # Change the form, then reopen the saved request: the form is the saved request again.
    page.get_by_test_id("collections-toggle").click()
    set_target(page, "127.0.0.1:1", "gRPC")
    page.get_by_role("checkbox", name="TLS", exact=True).uncheck()
    page.get_by_role("button", name="Remove header x-team").click()
    page.get_by_test_id("collections-toggle").click()
    page.get_by_test_id("saved-request").get_by_role("button", name="Open").click()
    page.get_by_test_id("collections-toggle").click()
    expect(page.get_by_test_id("endpoint")).to_have_value(upstream)
    expect(page.get_by_role("radio", name="Connect")).to_be_checked()
    expect(page.get_by_role("checkbox", name="TLS", exact=True)).to_be_checked()
    expect(page.get_by_label("Server name")).to_have_value("weather.internal")
    expect(page.get_by_label("Header 1 name")).to_have_value("x-team")
    expect(page.get_by_label("Header 1 value")).to_have_value("blue")
    expect(page.get_by_test_id("send")).to_contain_text("Send 3 messages")
    page.get_by_role("tab", name="JSON").click()
    assert _message(page, 1) == {"stationId": "LIS-001", "temperature": 18}
    assert _message(page, 2) == {"stationId": "OSL-001", "temperature": 3}
    assert _message(page, 3) == {"stationId": "ROM-001", "temperature": 21}

    # Opened again after another change: applied again.
    page.get_by_test_id("endpoint").fill("127.0.0.1:2")
    page.get_by_test_id("collections-toggle").click()
    page.get_by_test_id("saved-request").get_by_role("button", name="Open").click()
    page.get_by_test_id("collections-toggle").click()
    expect(page.get_by_test_id("endpoint")).to_have_value(upstream)


def _fill_database(url: str) -> None:
    """250 collections (one with 250 requests in folders), written through the store in
    a thread of its own (Playwright's sync API holds this thread's event loop)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from connectrpc_catalog.gen.catalog.v1 import catalog_pb
    from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
    from connectrpc_catalog.identity import ANONYMOUS
    from connectrpc_catalog.saved.files import Imported
    from connectrpc_catalog.saved.secrets import Sealer
    from connectrpc_catalog.saved.store import Store

    folders = ["", "users", "users/admin"]

    async def fill() -> None:
        store = await Store.open(url, Sealer("e2e test passphrase"))
        try:
            await store.import_collection(
                ANONYMOUS,
                "",
                Imported(
                    name="Big collection",
                    requests=[
                        pb.SavedRequest(
                            name=f"req {i:03d}",
                            folder=folders[i % 3],
                            service="weather.v1.WeatherService",
                            method="GetCurrentConditions",
                            endpoint="127.0.0.1:1",
                            transport=catalog_pb.Transport.GRPC,
                        )
                        for i in range(250)
                    ],
                ),
            )
            for i in range(249):
                await store.save_collection(
                    ANONYMOUS, pb.SaveCollectionRequest(name=f"Coll {i:03d}")
                )
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, fill()).result(timeout=120)


def test_big_lists_load_more_on_scroll(browser: Browser, tmp_path: Path) -> None:
    """250 collections and a collection of 250 requests: the sidebar and the collection
    show 100 at first, the next 100 when scrolled to their end (or on "Load more"),
    each item once and in order; moving the last loaded request down reorders across
    the page boundary."""
    url = f"sqlite:///{tmp_path / 'saved.db'}"
    _fill_database(url)
    errors = PageErrors()
    with run_catalog("--database", url, "--secret-key", "e2e test passphrase") as address:
        page = new_page(browser, errors)
        try:
            page.goto(address)
            page.get_by_test_id("collections-toggle").click()
            items = page.get_by_test_id("collection-list").locator(".coll-item")
            expect(items).to_have_count(100)
            more = page.get_by_test_id("load-more-collections")
            expect(more).to_have_text("Load more collections (100 shown)")
            more.scroll_into_view_if_needed()  # infinite scroll: seen, the next page comes
            expect(items).to_have_count(200)
            more.click()  # and the button itself
            expect(items).to_have_count(250)
            expect(more).to_have_count(0)
            names = [n.split(" ")[0:2] for n in items.all_inner_texts()]
            assert names == [["Big", "collection"]] + [["Coll", f"{i:03d}"] for i in range(249)]

            # The big collection: its requests by pages too, with their folders.
            items.first.click()
            view = page.get_by_test_id("collection-view")
            rows = view.get_by_test_id("saved-request")
            expect(rows).to_have_count(100)
            load = page.get_by_test_id("load-more-requests")
            expect(load).to_have_text("Load more requests (100 of 250)")
            expect(rows.nth(2)).to_contain_text("users/admin/")
            # Move the last loaded one down: its neighbour is on the next page.
            rows.nth(99).get_by_role("button", name="Move down").click()
            expect(rows.nth(99)).to_contain_text("req 100")
            # Scrolled to the end, the next page comes, once per scroll (the click above
            # may have shown the end already: then it came then).
            for expected in (200, 250):
                if rows.count() < expected:
                    page.evaluate("document.querySelector('.coll-panel').scrollTop = 1e9")
                expect(rows).to_have_count(expected)
            expect(load).to_have_count(0)
            expect(rows.nth(100)).to_contain_text("req 099")
            shown = [t.split("\n")[0].strip() for t in rows.all_inner_texts()]
            order = [f"req {i:03d}" for i in range(250)]
            order[99], order[100] = order[100], order[99]
            assert [s[:7] for s in shown] == order
            screenshot(page, "saved-requests-paged")
        finally:
            page.context.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)
