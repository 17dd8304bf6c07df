"""End-to-end fixtures: a real catalog server, a real grpcio upstream, headless Chromium.

The browser is Debian's Chromium (``/usr/bin/chromium``) driven by Python Playwright
(``pip install playwright``; Playwright's own browser download is not used). Without
either, every test here is skipped with the reason.

The upstream is the example server of the project (``examples/server.py``): the
Skylark Weather API over gRPC, with reflection. Screenshots of the main screens go to
``docs/screenshots/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WEATHER_PROTOS = EXAMPLES / "weather"
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("CATALOG_UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "connectrpc-catalog-screenshots"
)
"""Where screenshots go: a temp folder, or the README's docs/screenshots when
CATALOG_UPDATE_SCREENSHOTS=1 is set (so a test run never dirties the checkout)."""
STATIC_INDEX = ROOT / "src" / "connectrpc_catalog" / "static" / "index.html"

CHROMIUM = os.environ.get("CATALOG_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright

    # Assertions wait as long as actions do (Playwright's own default is 5 s): on a shared,
    # loaded 2-core machine a streamed reply can take longer to show, and a wait is not a
    # measurement (times live in bench/).
    expect.set_options(timeout=15_000)
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None  # type: ignore[assignment]


def _missing() -> str | None:
    """Why the end-to-end tests cannot run here, or None."""
    if sync_playwright is None:
        return "end-to-end tests need Python Playwright: pip install playwright"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"end-to-end tests need Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{out}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def upstream() -> Iterator[str]:
    """The example weather server (grpcio + reflection) on a free port: "127.0.0.1:PORT"."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "server.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    try:
        _wait(listening, proc, "examples/server.py")
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextlib.contextmanager
def run_catalog(*args: str) -> Iterator[str]:
    """A catalog started like a user would: python -m connectrpc_catalog --port N [ARGS]."""
    if not STATIC_INDEX.exists():
        pytest.fail(f"{STATIC_INDEX} is missing: run scripts/build_web.sh")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectrpc_catalog", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)

    try:
        _wait(answers, proc, "connectrpc_catalog")
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def catalog_url() -> Iterator[str]:
    """The catalog most tests share (each test has its own browser context, so session)."""
    with run_catalog() as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this
    # thread while it is open, which would break the asyncio tests that run afterwards.
    assert sync_playwright is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class PageErrors(list[str]):
    """Uncaught exceptions and console errors of a page (failed fetches excluded)."""


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


def new_page(browser: Browser, errors: PageErrors, **context: Any) -> Page:
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, **context)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: (
            errors.append(f"console: {m.text}")
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    return page


@pytest.fixture
def page(browser: Browser, catalog_url: str, page_errors: PageErrors) -> Iterator[Page]:
    """A fresh browser context (so a fresh catalog session) on the catalog's UI."""
    p = new_page(browser, page_errors)
    p.goto(catalog_url)
    try:
        yield p
    finally:
        p.context.close()
    assert not page_errors, "the page logged errors:\n" + "\n".join(page_errors)


def screenshot(page: Page, name: str, *, height: int | None = None, top: bool = False) -> Path:
    """Save a screenshot of the main screens into SCREENSHOTS/NAME.png.

    ``top`` scrolls the main area back to its top first.
    """
    if top:
        page.locator("main").evaluate("m => m.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size
    if height and size:
        page.set_viewport_size({"width": size["width"], "height": height})
    # Let toasts fade and transitions settle, so screenshots show the screen itself.
    page.locator(".toast").first.wait_for(state="detached", timeout=10_000)
    page.wait_for_timeout(250)
    page.screenshot(path=str(path))
    if height and size:
        page.set_viewport_size(size)
    return path
