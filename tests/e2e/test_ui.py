"""The web UI end to end: headless Chromium → catalog server → grpcio upstream."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="end-to-end tests need: pip install playwright")

from playwright.sync_api import Browser, Page, expect

from .conftest import WEATHER_PROTOS, PageErrors, new_page, run_catalog, screenshot

WEATHER = "weather.v1.WeatherService"
ALERTS = "weather.v1.AlertService"


def load_weather(page: Page) -> None:
    """Load examples/weather through the Sources panel, as a new user would."""
    page.get_by_role("button", name="Load schemas").first.click()
    page.get_by_role("tab", name="Folder or file").click()
    page.get_by_label("Path on the catalog server").fill(str(WEATHER_PROTOS))
    page.get_by_role("button", name="Load folder").click()
    expect(page.get_by_text("Loaded 2 services from").first).to_be_visible()


def open_method(page: Page, service: str, method: str) -> None:
    page.get_by_role("treeitem", name=re.compile(rf"^{method}\b")).click()
    expect(page.get_by_role("heading", level=1, name=method)).to_be_visible()
    expect(page).to_have_url(re.compile(rf"#/m/{re.escape(service)}/{method}$"))


def set_target(page: Page, endpoint: str, transport: str = "gRPC") -> None:
    page.get_by_test_id("endpoint").fill(endpoint)
    page.locator(".segmented").get_by_text(transport, exact=True).click()


def request_json(page: Page) -> dict:
    """Switch to the JSON editor, read the request, switch back to the form."""
    page.get_by_role("tab", name="JSON").click()
    text = page.get_by_test_id("request-json").input_value()
    page.get_by_role("tab", name="Form").click()
    return json.loads(text)


def send(page: Page) -> None:
    page.get_by_test_id("send").click()


def session_id(page: Page) -> str:
    return str(page.evaluate("sessionStorage.getItem('catalog.session-id')"))


def test_empty_state_then_load_folder_filter_and_open_method(page: Page) -> None:
    expect(page.get_by_role("heading", name="Explore and call any Protobuf API")).to_be_visible()
    expect(page.get_by_text("No services yet.")).to_be_visible()
    screenshot(page, "01-empty-state")

    page.get_by_label("Path on the catalog server").fill(str(WEATHER_PROTOS))
    page.get_by_role("button", name="Load folder").click()
    expect(page.get_by_text("Loaded 2 services from").first).to_be_visible()
    tree = page.get_by_role("tree", name="Services")
    expect(tree.get_by_role("treeitem")).to_have_count(1 + 2 + 6)  # package, services, methods
    expect(page.get_by_text("2 services · 6 methods")).to_be_visible()
    screenshot(page, "02-services")

    # Filter, then open the only match with the keyboard.
    flt = page.get_by_label("Filter services and methods")
    flt.fill("forecast")
    methods = tree.locator(".tree-method")
    expect(methods).to_have_count(1)
    expect(methods.first).to_contain_text("GetForecast")
    expect(page.get_by_text("1 of 6 methods")).to_be_visible()
    flt.press("ArrowDown")
    expect(methods.first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="GetForecast")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"#/m/{WEATHER}/GetForecast$"))

    # Documentation as paragraphs, and the request schema as a tree.
    expect(page.get_by_text("Returns a day-by-day forecast for up to 14 days")).to_be_visible()
    req_schema = page.locator("#request-schema")
    expect(req_schema.get_by_text("repeated weather.v1.ForecastDetail")).to_be_visible()
    req_schema.get_by_role("button", name="Expand location").click()
    expect(req_schema.get_by_text("oneof", exact=True)).to_be_visible()
    expect(req_schema.get_by_text("A city name, e.g.")).to_be_visible()
    resp_schema = page.locator("#response-schema")
    expect(resp_schema.get_by_text("map<string, string>")).to_be_visible()

    # "/" focuses the filter; clearing it shows everything again.
    page.locator("main").click(position={"x": 5, "y": 5})
    page.keyboard.press("/")
    expect(flt).to_be_focused()
    flt.fill("")
    expect(methods).to_have_count(6)


def test_unary_call_from_the_form(page: Page, upstream: str) -> None:
    load_weather(page)
    open_method(page, WEATHER, "GetCurrentConditions")
    set_target(page, upstream)

    # The form starts from a valid example; fill the oneof member and an enum.
    expect(page.get_by_test_id("validation")).to_contain_text(
        "Valid weather.v1.GetCurrentConditionsRequest"
    )
    form = page.locator(".request-editor")
    expect(form.get_by_label("place")).to_have_value("city")
    form.locator('[data-path="location.city"]').fill("Lisbon")
    form.locator('[data-path="units"]').select_option("UNITS_IMPERIAL")
    assert request_json(page) == {"location": {"city": "Lisbon"}, "units": "UNITS_IMPERIAL"}

    send(page)
    status = page.get_by_test_id("status")
    expect(status).to_have_text("0 OK")
    body = page.get_by_test_id("response-json")
    expect(body).to_contain_text('"placeName": "Lisbon"')
    expect(body).to_contain_text('"units": "UNITS_IMPERIAL"')
    expect(page.get_by_test_id("duration")).to_contain_text("ms")
    screenshot(page, "03-unary-response", height=1250)

    # Headers in their own tab; the call is in the history.
    page.get_by_role("tab", name=re.compile(r"^Headers")).click()
    expect(page.locator(".kv-table")).to_contain_text("x-skylark-station")
    expect(page.locator(".kv-table")).to_contain_text("LIS-001")
    page.get_by_role("tab", name=re.compile(r"^Trailers")).click()
    expect(page.locator(".kv-table")).to_contain_text("x-skylark-cache")
    history = page.locator("details.history-panel")
    expect(history).to_have_attribute("open", "")
    expect(history.locator("summary")).to_contain_text("History (1)")
    expect(page.locator(".history-item")).to_have_count(1)

    # Ctrl+Enter sends again; the history gets a second entry.
    page.locator('[data-path="location.city"]').fill("Tokyo")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("response-json")).to_contain_text('"placeName": "Tokyo"')
    expect(page.locator(".history-item")).to_have_count(2)

    # One click re-runs the Lisbon call from the history.
    page.locator(".history-item").nth(1).get_by_role("button", name=re.compile("Run again")).click()
    expect(page.get_by_test_id("response-json")).to_contain_text('"placeName": "Lisbon"')

    # Copy as command.
    page.get_by_text("Copy as command").click()
    cmd = page.get_by_test_id("command")
    # A gRPC target: buf curl and grpcurl, not curl (which speaks Connect).
    expect(page.get_by_role("tab", name="curl (Connect)")).to_have_count(0)
    expect(cmd).to_contain_text(f"http://{upstream}/{WEATHER}/GetCurrentConditions")
    expect(cmd).to_contain_text(f"--schema {WEATHER}.binpb")
    page.get_by_role("tab", name="grpcurl").click()
    expect(cmd).to_contain_text("grpcurl -plaintext")
    page.get_by_role("tab", name="buf curl").click()
    expect(cmd).to_contain_text("--protocol grpc --http2-prior-knowledge")


def test_json_mode_validates_with_the_error_path(page: Page) -> None:
    load_weather(page)
    open_method(page, WEATHER, "GetCurrentConditions")
    page.get_by_role("tab", name="JSON").click()
    editor = page.get_by_test_id("request-json")
    validation = page.get_by_test_id("validation")

    editor.fill('{"location": {"coordinates": {"latitude": "north"}}}')
    expect(validation).to_contain_text("$.location.coordinates.latitude")
    expect(validation).to_contain_text("expected a number")

    editor.fill('{"location": {"city": "Lisbon", "stationId": "LIS-001"}}')
    expect(validation).to_contain_text("only one of city, coordinates, stationId may be set")

    editor.fill('{"units": "UNITS_KELVIN"}')
    expect(validation).to_contain_text("$.units")
    expect(validation).to_contain_text('"UNITS_KELVIN" is not one of')

    editor.fill('{"locaton": {}}')
    expect(validation).to_contain_text('unknown field "locaton" — did you mean "location"?')

    editor.fill('{"location": {"city": ')
    expect(validation).to_contain_text("JSON syntax error")
    expect(page.get_by_role("tab", name="Form")).to_be_disabled()

    # A valid edit in JSON shows up in the form.
    editor.fill('{"location": {"coordinates": {"latitude": 38.7, "longitude": -9.1}}}')
    expect(validation).to_contain_text("Valid")
    page.get_by_role("tab", name="Form").click()
    expect(page.locator('[data-path="location.coordinates.latitude"]')).to_have_value("38.7")
    expect(page.locator(".request-editor").get_by_label("place")).to_have_value("coordinates")


def test_server_streaming_shows_messages_as_they_arrive(page: Page, upstream: str) -> None:
    load_weather(page)
    open_method(page, WEATHER, "WatchObservations")
    set_target(page, upstream)
    form = page.locator(".request-editor")
    form.locator('[data-path="stationId"]').fill("LIS-001")
    form.locator('[data-path="count"]').fill("4")
    form.locator('[data-path="interval"]').fill("300")
    form.get_by_label("Duration unit").select_option("ms")
    assert request_json(page)["interval"] == "0.3s"
    send(page)
    messages = page.get_by_test_id("stream-message")
    # Messages arrive one by one while the call is still running.
    expect(messages.first).to_be_visible()
    expect(page.get_by_role("button", name="Cancel").first).to_be_visible()
    expect(messages).to_have_count(4)
    expect(page.get_by_test_id("status")).to_have_text("0 OK")
    expect(messages.nth(3)).to_contain_text('"sequence": "1000003"')
    expect(messages.first).to_contain_text('"@type": "type.googleapis.com/weather.v1.AirQuality"')
    screenshot(page, "04-server-streaming", height=1400)


def test_cancel_a_stream(page: Page, upstream: str) -> None:
    load_weather(page)
    open_method(page, WEATHER, "WatchObservations")
    set_target(page, upstream)
    page.get_by_role("tab", name="JSON").click()
    page.get_by_test_id("request-json").fill(
        '{"stationId": "BER-001", "count": 50, "interval": "0.5s"}'
    )
    send(page)
    expect(page.get_by_test_id("stream-message").first).to_be_visible()
    page.get_by_role("button", name="Cancel").first.click()
    expect(page.get_by_test_id("status")).to_have_text("1 CANCELLED")
    assert page.get_by_test_id("stream-message").count() < 50


def test_client_and_bidi_streaming(page: Page, upstream: str) -> None:
    load_weather(page)
    open_method(page, WEATHER, "ReportObservations")
    set_target(page, upstream)
    page.get_by_role("tab", name="JSON").click()
    editor = page.get_by_test_id("request-json")
    editor.fill('{"stationId": "LIS-001", "temperature": 18}')
    page.get_by_role("button", name="Add a request message").click()
    editor.fill('{"stationId": "BER-001", "temperature": 12}')
    page.get_by_role("button", name="Add a request message").click()
    editor.fill('{"stationId": "NOPE", "temperature": 5}')
    send_button = page.get_by_test_id("send")
    expect(send_button).to_contain_text("Send 3 messages")
    send_button.click()
    expect(page.get_by_test_id("status")).to_have_text("0 OK")
    body = page.get_by_test_id("stream-message")
    expect(body.first).to_contain_text('"accepted": 2')
    expect(body.first).to_contain_text('"meanTemperature": 15')

    open_method(page, ALERTS, "Subscribe")
    set_target(page, upstream)
    page.get_by_role("tab", name="JSON").click()
    page.get_by_test_id("request-json").fill('{"addRegion": "lisbon"}')
    page.get_by_role("button", name="Add a request message").click()
    page.get_by_test_id("request-json").fill('{"addRegion": "tokyo"}')
    send(page)
    expect(page.get_by_test_id("status")).to_have_text("0 OK")
    messages = page.get_by_test_id("stream-message")
    expect(messages.first).to_contain_text('"regions"')
    assert messages.count() >= 4  # an ack and at least one alert per region
    screenshot(page, "05-bidi-streaming", height=1400)


def test_error_shows_code_and_details(page: Page, upstream: str) -> None:
    load_weather(page)
    open_method(page, WEATHER, "GetCurrentConditions")
    set_target(page, upstream)
    page.locator('[data-path="location.city"]').fill("Atlantis")
    send(page)
    expect(page.get_by_test_id("status")).to_have_text("5 NOT_FOUND")
    expect(page.get_by_role("alert").filter(has_text='unknown city "Atlantis"')).to_be_visible()
    page.get_by_role("tab", name=re.compile(r"^Error details")).click()
    details = page.get_by_test_id("error-details")
    expect(details).to_contain_text("google.rpc.ErrorInfo")
    expect(details).to_contain_text("UNKNOWN_LOCATION")
    expect(details).to_contain_text("google.rpc.Help")
    screenshot(page, "06-error-details", height=1250)

    # Coordinates out of range: INVALID_ARGUMENT with a BadRequest naming the field.
    page.get_by_role("tab", name="JSON").click()
    page.get_by_test_id("request-json").fill(
        '{"location": {"coordinates": {"latitude": 123, "longitude": 0}}}'
    )
    send(page)
    expect(page.get_by_test_id("status")).to_have_text("3 INVALID_ARGUMENT")
    page.get_by_role("tab", name=re.compile(r"^Error details")).click()
    expect(page.get_by_test_id("error-details")).to_contain_text("location.coordinates.latitude")


def test_unreachable_endpoint_is_reported(page: Page) -> None:
    load_weather(page)
    open_method(page, WEATHER, "GetForecast")
    set_target(page, "127.0.0.1:1")
    send(page)
    expect(page.get_by_test_id("status")).to_have_text("14 UNAVAILABLE")
    expect(page.get_by_text("could not be reached")).to_be_visible()


def test_reload_keeps_the_session(page: Page) -> None:
    load_weather(page)
    open_method(page, WEATHER, "GetForecast")
    sid = session_id(page)
    assert re.fullmatch(r"[0-9a-f]{32}", sid)
    page.reload()
    expect(page.get_by_role("heading", level=1, name="GetForecast")).to_be_visible()
    expect(page.get_by_role("tree", name="Services").locator(".tree-method")).to_have_count(6)
    assert session_id(page) == sid
    expect(page.get_by_text(re.compile(r"Session · expires in"))).to_be_visible()
    page.get_by_role("button", name=re.compile("Session · expires")).click()
    expect(page.get_by_role("dialog", name="Session")).to_contain_text(sid)
    expect(page.get_by_role("dialog", name="Session")).to_contain_text("2 services from 2 files")


def test_expired_session_is_recovered_with_a_clear_message(page: Page) -> None:
    load_weather(page)
    old = session_id(page)
    # Pretend the server forgot us: an id it does not know gets a fresh session.
    page.evaluate(
        "sessionStorage.setItem('catalog.session-id', '0123456789abcdef0123456789abcdef')"
    )
    page.reload()
    banner = page.get_by_test_id("session-expired")
    expect(banner).to_contain_text("The catalog no longer knows your session")  # a made-up id
    expect(page.get_by_text("No services yet.")).to_be_visible()
    new = session_id(page)
    assert new not in (old, "0123456789abcdef0123456789abcdef")
    screenshot(page, "07-session-expired")
    banner.get_by_role("button", name="Load them again").click()
    expect(banner).to_be_hidden()
    expect(page.get_by_role("tree", name="Services").locator(".tree-method")).to_have_count(6)
    assert session_id(page) == new


def test_shared_url_reopens_the_method_with_the_request(
    page: Page, browser: Browser, catalog_url: str, page_errors: PageErrors
) -> None:
    load_weather(page)
    open_method(page, WEATHER, "GetForecast")
    page.get_by_role("tab", name="JSON").click()
    request = {"location": {"city": "Nairobi"}, "days": 5, "details": ["FORECAST_DETAIL_HOURLY"]}
    page.get_by_test_id("request-json").fill(json.dumps(request))
    page.get_by_test_id("endpoint").fill("127.0.0.1:50051")
    page.get_by_role("button", name="Share link").click()
    expect(page.get_by_text("Link copied")).to_be_visible()
    url = page.url
    assert "#/m/weather.v1.WeatherService/GetForecast?" in url
    assert page.evaluate("navigator.clipboard.readText()") == url

    # Same session, fresh page load: the method opens with that request.
    page.goto("about:blank")
    page.goto(url)
    expect(page.get_by_role("heading", level=1, name="GetForecast")).to_be_visible()
    page.get_by_role("tab", name="JSON").click()
    assert json.loads(page.get_by_test_id("request-json").input_value()) == request
    expect(page.get_by_test_id("endpoint")).to_have_value("127.0.0.1:50051")

    # Someone else (a new browser, so a new session): one click loads the schemas.
    other = new_page(browser, page_errors)
    try:
        other.goto(url)
        expect(other.get_by_role("heading", name="GetForecast is not loaded")).to_be_visible()
        other.get_by_role("button", name=f"Load {WEATHER_PROTOS}").click()
        expect(other.get_by_role("heading", level=1, name="GetForecast")).to_be_visible()
        other.get_by_role("tab", name="JSON").click()
        assert json.loads(other.get_by_test_id("request-json").input_value()) == request
        assert session_id(other) != session_id(page)
    finally:
        other.context.close()


def test_upload_a_folder(page: Page) -> None:
    page.get_by_role("tab", name="Upload").click()
    folder = WEATHER_PROTOS.resolve()  # examples/weather links to the package's demo protos
    page.get_by_test_id("pick-folder").set_input_files(folder)
    expect(page.get_by_text("Loaded 2 services from uploaded 2 files").first).to_be_visible()
    expect(page.get_by_role("tree", name="Services").locator(".tree-method")).to_have_count(6)
    page.get_by_role("button", name="Load schemas").first.click()
    page.get_by_role("tab", name="Upload").click()
    result = page.locator(".result-ok")
    expect(result).to_contain_text("The session now holds 2 services from 2 files.")
    expect(result.get_by_role("link", name=re.compile("weather.v1.WeatherService"))).to_be_visible()
    expect(page.locator(".loaded-list")).to_contain_text(f"uploaded 2 files ({folder.name})")
    screenshot(page, "11-sources-upload")


def test_compile_errors_show_file_and_line(page: Page, tmp_path: Path) -> None:
    bad = tmp_path / "broken"
    (bad / "acme").mkdir(parents=True)
    (bad / "acme" / "api.proto").write_text(
        'syntax = "proto3";\npackage acme;\n\nmessage Thing {\n  string name = 1\n}\n'
    )
    page.get_by_label("Path on the catalog server").fill(str(bad))
    page.get_by_role("button", name="Load folder").click()
    alert = page.get_by_role("alert").filter(has_text="Could not load")
    expect(alert).to_be_visible()
    expect(alert.locator(".loc").first).to_contain_text("acme/api.proto:6")
    screenshot(page, "08-compile-error")


def test_dark_theme_and_half_screen(page: Page, upstream: str) -> None:
    load_weather(page)
    open_method(page, WEATHER, "GetForecast")
    # The switch is instant: no control fades its background while its text is already
    # in the new colour (a dark label on a still-light button failed contrast checks).
    fading = page.evaluate(
        """() => {
            document.querySelector('[aria-label="Switch to the dark theme"]').click();
            getComputedStyle(document.querySelector(".btn-primary")).backgroundColor;
            return document.getAnimations().filter((a) => a instanceof CSSTransition).length;
        }"""
    )
    assert fading == 0
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    set_target(page, upstream)
    page.locator('[data-path="location.city"]').fill("Reykjavik")
    send(page)
    expect(page.get_by_test_id("status")).to_have_text("0 OK")
    screenshot(page, "09-dark-theme", height=1100, top=True)

    # Half a laptop screen: the sidebar folds into a drawer, everything stays usable.
    page.set_viewport_size({"width": 720, "height": 900})
    expect(page.get_by_role("button", name="Show services")).to_be_visible()
    expect(page.get_by_test_id("send")).to_be_visible()
    screenshot(page, "10-half-screen-dark", top=True)
    page.get_by_role("button", name="Show services").click()
    page.get_by_role("treeitem", name=re.compile(r"^GetCurrentConditions")).click()
    expect(page.get_by_role("heading", level=1, name="GetCurrentConditions")).to_be_visible()
    # The theme choice is remembered.
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")


def test_drop_proto_files_on_the_page(page: Page) -> None:
    source = (WEATHER_PROTOS / "weather" / "v1" / "weather.proto").read_text()
    # A synthetic drop (the browser gives no directory entries for it): the page's
    # drop handler reads the files and uploads them as proto_files.
    page.evaluate(
        """(text) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], "weather.proto", { type: "text/plain" }));
            for (const type of ["dragenter", "dragover", "drop"]) {
                const init = { dataTransfer: dt, bubbles: true, cancelable: true };
                window.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        source,
    )
    expect(page.get_by_text("Loaded 1 service from uploaded 1 file").first).to_be_visible()
    tree = page.get_by_role("tree", name="Services")
    expect(tree.locator(".tree-method")).to_have_count(4)


AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            // Colours are judged at rest: wait out any CSS transition still running.
            const moving = document.getAnimations().filter((a) => a instanceof CSSTransition);
            await Promise.allSettled(moving.map((a) => a.finished));
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => {
                    const where = v.nodes.map((n) => n.target.join(" ")).join(", ");
                    return `${v.id}: ${v.help} (${where})`;
                });
        }"""
    )
    return list(found)


def test_accessibility_of_the_main_screens(page: Page) -> None:
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `npm ci` in web/")
    assert axe_violations(page) == []
    load_weather(page)
    assert axe_violations(page) == []
    open_method(page, WEATHER, "ReportObservations")
    page.locator("#request-schema").get_by_role("button", name="Expand wind").click()
    assert axe_violations(page) == []
    page.get_by_role("tab", name="JSON").click()
    page.get_by_text("Copy as command").click()
    page.get_by_role("button", name="Switch to the dark theme").click()
    assert axe_violations(page) == []
    # Every control of the generated form has an accessible name.
    page.get_by_role("tab", name="Form").click()
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll(
                ".request-editor input, .request-editor select, .request-editor textarea")]
            .filter((el) => el.type !== "file" && !el.labels?.length
                && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
            .map((el) => el.outerHTML.slice(0, 120))"""
    )
    assert unnamed == []


def test_load_by_reflection_prefills_the_endpoint(page: Page, upstream: str) -> None:
    page.get_by_role("tab", name="Reflection").click()
    page.get_by_label("Server address").fill(upstream)
    page.get_by_role("button", name="Load by reflection").click()
    expect(
        page.get_by_text(re.compile(r"Loaded \d services from reflection")).first
    ).to_be_visible()
    open_method(page, WEATHER, "GetForecast")
    # The server the schemas came from is the natural first target.
    expect(page.get_by_test_id("endpoint")).to_have_value(upstream)


def test_idle_session_expiry_is_shown_and_recovered(
    browser: Browser, page_errors: PageErrors
) -> None:
    with run_catalog("--session-ttl", "3s") as url:
        page = new_page(browser, page_errors)
        try:
            page.goto(url)
            load_weather(page)
            expect(page.get_by_text(re.compile(r"Session · expires in \d s"))).to_be_visible()
            # Idle past the TTL: the UI notices by itself, without a click.
            banner = page.get_by_test_id("session-expired")
            expect(banner).to_contain_text(
                "Your session expired; schemas must be loaded again.", timeout=20_000
            )
            expect(page.get_by_text("No services yet.")).to_be_visible()
            banner.get_by_role("button", name="Load them again").click()
            expect(page.get_by_role("tree", name="Services").locator(".tree-method")).to_have_count(
                6
            )
        finally:
            page.context.close()


def test_catalog_started_with_a_target(
    browser: Browser, upstream: str, page_errors: PageErrors
) -> None:
    # `connectrpc-catalog HOST:PORT` reflects the server at start-up: its services are
    # there for everyone (the shared base schema) and calls go to it by default.
    with run_catalog(upstream) as url:
        page = new_page(browser, page_errors)
        try:
            page.goto(url)
            tree = page.get_by_role("tree", name="Services")
            expect(tree.get_by_text("shared").first).to_be_visible()
            open_method(page, WEATHER, "GetCurrentConditions")
            # The endpoint is prefilled from the service's default target.
            expect(page.get_by_test_id("endpoint")).to_have_value(upstream)
            page.locator('[data-path="location.city"]').fill("Nairobi")
            send(page)
            expect(page.get_by_test_id("status")).to_have_text("0 OK")
            expect(page.get_by_test_id("response-json")).to_contain_text('"placeName": "Nairobi"')
        finally:
            page.context.close()
