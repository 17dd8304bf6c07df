"""Schemas in the UI: buf.validate rules shown and checked before sending (with a switch
to send anyway), reflection's services hidden by default, and "no comments" told apart
from "this source carries none"."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

pytest.importorskip("playwright.sync_api", reason="end-to-end tests need: pip install playwright")

from playwright.sync_api import Browser, Page, expect

from .conftest import WEATHER_PROTOS, PageErrors, new_page, run_catalog

VALIDATED = """syntax = "proto3";
package val.v1;
import "buf/validate/validate.proto";

option java_package = "com.example.val.v1";

// Says hello.
service Greeter {
  // Echoes the greeting.
  rpc Echo(Greeting) returns (Greeting);
}
message Greeting {
  string name = 1 [(buf.validate.field).string.min_len = 3];
  string code = 2 [(buf.validate.field).cel = {
    id: "code.upper", message: "code must be upper case", expression: "this == this.upperAscii()"}];
}
"""


@contextlib.contextmanager
def echo_server() -> Iterator[str]:
    """A grpcio server answering /val.v1.Greeter/Echo with the request's bytes."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "val.v1.Greeter",
        {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)},
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def test_rules_are_shown_refused_and_sent_anyway(
    browser: Browser, page_errors: PageErrors, tmp_path: Path
) -> None:
    (tmp_path / "val" / "v1").mkdir(parents=True)
    (tmp_path / "val" / "v1" / "greeter.proto").write_text(VALIDATED)
    with echo_server() as endpoint, run_catalog("--proto", str(tmp_path)) as url:
        page = new_page(browser, page_errors)
        try:
            page.goto(url)
            page.get_by_role("treeitem", name=re.compile(r"^Echo\b")).click()
            expect(page.get_by_role("heading", level=1, name="Echo")).to_be_visible()
            page.locator(".svc-doc summary").click()  # the service's and its file's options
            expect(page.get_by_test_id("file-options")).to_contain_text("java_package")
            expect(page.get_by_test_id("file-options")).to_contain_text("com.example.val.v1")
            expect(page.get_by_test_id("field-rules").first).to_contain_text("string.min_len = 3")
            page.get_by_test_id("endpoint").fill(endpoint)
            form = page.locator(".request-editor")
            expect(form.get_by_test_id("form-rules").first).to_contain_text("string.min_len = 3")
            form.locator('[data-path="name"]').fill("ab")
            validation = page.get_by_test_id("validation")
            expect(validation).to_contain_text("at least 3 characters")
            expect(validation).to_contain_text("buf.validate")
            page.get_by_test_id("send").click()
            expect(page.locator(".toast").first).to_contain_text("Not sent")
            expect(page.get_by_test_id("status")).to_have_count(0)
            # a CEL rule: checked by the catalog (protovalidate) when sending
            form.locator('[data-path="name"]').fill("abc")
            form.locator('[data-path="code"]').fill("low")
            expect(validation).to_contain_text("Valid")
            page.get_by_test_id("send").click()
            expect(page.get_by_text("code must be upper case").first).to_be_visible()
            expect(page.get_by_test_id("status")).to_have_count(0)
            form.locator('[data-path="name"]').fill("ab")
            page.get_by_test_id("send-anyway").check()
            page.get_by_test_id("send").click()
            expect(page.get_by_test_id("status")).to_contain_text("OK")
            expect(page.get_by_test_id("response-json")).to_contain_text('"name": "ab"')
        finally:
            page.context.close()
    assert not page_errors, "\n".join(page_errors)


def test_reflection_services_hidden_and_missing_comments_explained(
    browser: Browser, page_errors: PageErrors, upstream: str
) -> None:
    with run_catalog("--reflect", upstream) as url:
        page = new_page(browser, page_errors)
        try:
            page.goto(url)
            tree = page.get_by_role("tree", name="Services")
            expect(tree).to_contain_text("WeatherService")
            expect(tree).not_to_contain_text("ServerReflection")
            page.get_by_test_id("toggle-infra").click()
            expect(tree).to_contain_text("ServerReflection")
            page.get_by_test_id("toggle-infra").click()
            expect(tree).not_to_contain_text("ServerReflection")
            page.get_by_role("treeitem", name=re.compile(r"^GetCurrentConditions\b")).first.click()
            expect(page.get_by_test_id("no-source-info")).to_contain_text(
                "This source carries no comments"
            )
        finally:
            page.context.close()
    assert not page_errors, "\n".join(page_errors)


def test_a_folder_too_deep_loads_and_the_root_is_shown(page: Page) -> None:
    deep = WEATHER_PROTOS / "weather" / "v1"
    page.get_by_role("button", name="Load schemas").first.click()
    page.get_by_role("tab", name="Folder or file").click()
    page.get_by_label("Path on the catalog server").fill(str(deep))
    page.get_by_role("button", name="Load folder").click()
    expect(page.get_by_text("Loaded 2 services from").first).to_be_visible()
    expect(page.get_by_test_id("import-root")).to_contain_text(str(WEATHER_PROTOS))
