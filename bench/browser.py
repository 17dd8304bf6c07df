"""The web UI at scale in Chromium, with CDP tracing of main-thread tasks.

    .venv/bin/python bench/browser.py [--quick]

Scenarios (each in a fresh page): a 10,000-message server-stream burst (every message
kept), 100,000 messages in count-only and keep-last-1,000 modes, a 5 MB unary response
(first paint of the collapsed tree, the raw view, then Body → Headers → Body tab
switches and Tree ⇄ Raw), and a 500-service / 2,000-method
schema (filter keystrokes, arrow keys in the tree). Main-thread tasks come from a
Chromium trace (Playwright's `start_tracing`, i.e. CDP `Tracing`): every `RunTask` of the
page's renderer main thread, longest and the count over 50 / 100 ms.

Upstreams: the test service of tests/upstream (grpcio, in this process), plus a grpcio
server whose Echo answers ~5 MB (100,000 tags). The catalog runs as the CLI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Browser, Page, sync_playwright

from bench.common import catalog, pct
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.upstream.behaviour import Recorder
from tests.upstream.grpc_server import start_grpc_server
from tests.upstream.schema import PROTO_DIR, SERVICE, load_schema

CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "toplevel"]


def main_thread_tasks(trace: bytes) -> list[tuple[float, float]]:
    """(wall, thread) durations (ms) of the renderer main thread's top-level tasks in a
    Chromium trace. Thread time leaves out the time the OS ran other processes: on a busy
    machine a task's wall time can be several times the work it did."""
    events = json.loads(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"
    }
    return [
        (e["dur"] / 1000, e.get("tdur", e["dur"]) / 1000)
        for e in events
        if e.get("name") == "RunTask" and e.get("ph") == "X" and (e["pid"], e["tid"]) in mains
    ]


def summary(tasks: list[tuple[float, float]]) -> dict[str, Any]:
    wall = [w for w, _ in tasks]
    cpu = [c for _, c in tasks]
    return {
        "longest_task_ms": round(max(wall, default=0), 1),
        "longest_task_thread_ms": round(max(cpu, default=0), 1),
        "tasks_over_50ms": sum(t > 50 for t in wall),
        "tasks_over_100ms": sum(t > 100 for t in wall),
        "tasks_over_100ms_thread": sum(t > 100 for t in cpu),
    }


@contextmanager
def traced(browser: Browser, page: Page) -> Iterator[dict[str, Any]]:
    out: dict[str, Any] = {}
    browser.start_tracing(page=page, categories=CATEGORIES)
    try:
        yield out
    finally:
        out.update(summary(main_thread_tasks(browser.stop_tracing())))


def big_upstream(tags: int) -> tuple[grpc.Server, int]:
    schema = load_schema()
    response = schema.cls("EchoResponse")()
    response.tags.extend(f"tag-{i:06d}-" + "x" * 36 for i in range(tags))
    data = response.SerializeToString()
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: data,
                                                     lambda b: b, lambda b: b)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_send_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def open_method(page: Page, url: str, method: str, proto_dir: Path = PROTO_DIR) -> None:
    page.goto(url)
    page.evaluate(
        """async (path) => {
            const r = await fetch("catalog.v1.CatalogService/LoadProtos", {method: "POST",
                headers: {"content-type": "application/json",
                          "x-session-id": sessionStorage.getItem("catalog.session-id") || ""},
                body: JSON.stringify({protoPath: path})});
            const id = r.headers.get("x-session-id");
            if (id) sessionStorage.setItem("catalog.session-id", id);
        }""",
        str(proto_dir),
    )
    page.goto(f"{url}#/m/{SERVICE}/{method}")
    page.reload()
    page.get_by_role("heading", level=1, name=method).wait_for()


def set_request(page: Page, endpoint: str, body: str) -> None:
    page.get_by_test_id("endpoint").fill(endpoint)
    page.locator(".segmented").get_by_text("gRPC", exact=True).click()
    page.get_by_role("tab", name="JSON").click()
    page.get_by_test_id("request-json").fill(body)


def burst(browser: Browser, url: str, upstream: str, count: int, mode: str) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_method(page, url, "ServerStream")
    set_request(page, upstream, json.dumps({"message": "m", "count": count}))
    if mode != "all":
        # Pick the mode on a first tiny stream: the next stream starts in it.
        set_request(page, upstream, json.dumps({"message": "m", "count": 1}))
        page.get_by_test_id("send").click()
        page.get_by_test_id("status").wait_for()
        page.get_by_test_id("stream-mode").select_option(mode)
        set_request(page, upstream, json.dumps({"message": "m", "count": count}))
    page.evaluate("() => Object.assign(window.__catalogStats, {flushes: 0, messages: 0})")
    nodes: list[int] = []
    with traced(browser, page) as result:
        start = time.perf_counter()
        page.get_by_test_id("send").click()
        # The previous (tiny) stream's status may still show: wait for this one's messages.
        done = f"document.querySelector('[data-testid=status]') && " \
               f"window.__catalogStats.messages >= {count}"
        while not page.evaluate(done):
            nodes.append(page.evaluate("document.getElementsByTagName('*').length"))
            page.wait_for_timeout(200)
        result["seconds_to_status"] = round(time.perf_counter() - start, 2)
    stats = page.evaluate("window.__catalogStats")
    result.update(
        scenario=f"{count:,} messages, {mode}",
        status=page.get_by_test_id("status").inner_text(),
        counted=stats["messages"],
        flushes=stats["flushes"],
        max_dom_nodes=max(nodes, default=0),
        rows_in_dom=page.locator(".msg-row").count(),
    )
    page.close()
    return result


FIRST_PAINT = """(selector) => {
    window.__t0 = performance.now();
    window.__paint = new Promise((resolve) => {
        const seen = () => {
            if (!document.querySelector(selector)) return false;
            requestAnimationFrame(() => resolve(performance.now() - window.__t0));
            return true;
        };
        const mo = new MutationObserver(() => { if (seen()) mo.disconnect(); });
        mo.observe(document.body, { subtree: true, childList: true });
    });
}"""


def big_response(browser: Browser, url: str, endpoint: str) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_method(page, url, "Echo")
    set_request(page, endpoint, "{}")
    with traced(browser, page) as result:
        # First paint: the frame after the collapsed tree's first rows entered the DOM (a
        # MutationObserver sees it at once; Playwright's selector polling backs off).
        page.evaluate(FIRST_PAINT, "[data-testid=response-tree] .jt-row")
        page.get_by_test_id("send").click()
        first = page.evaluate("window.__paint")
        # The raw view: pretty-printed in the worker, then rendered in chunks.
        raw_ms = page.evaluate(
            """() => new Promise((resolve) => {
                const t0 = performance.now();
                document.querySelector('[data-testid=body-view-raw]').click();
                const check = () => {
                    const e = document.querySelector('[data-testid=response-json]');
                    if (e && e.dataset.shown === e.dataset.chunks) resolve(performance.now() - t0);
                    else requestAnimationFrame(check);
                };
                check();
            })"""
        )
        switches = []
        for _ in range(3):
            for name in ("Headers", "Body"):
                switches.append(page.evaluate(
                    """(name) => new Promise((resolve) => {
                        const tab = [...document.querySelectorAll('[role=tab]')]
                            .find((t) => t.textContent.startsWith(name));
                        const t0 = performance.now();
                        tab.click();
                        requestAnimationFrame(
                            () => setTimeout(() => resolve(performance.now() - t0)));
                    })""",
                    name,
                ))
            for view in ("tree", "raw"):
                switches.append(page.evaluate(
                    """(view) => new Promise((resolve) => {
                        const t0 = performance.now();
                        document.querySelector(`[data-testid=body-view-${view}]`).click();
                        requestAnimationFrame(
                            () => setTimeout(() => resolve(performance.now() - t0)));
                    })""",
                    view,
                ))
    size = page.evaluate("document.querySelector('[data-testid=response-json]').textContent.length")
    result.update(scenario="5 MB unary response", first_paint_ms=round(first),
                  raw_view_ms=round(raw_ms), response_chars=size,
                  tab_switch_max_ms=round(max(switches), 1),
                  tab_switch_p50_ms=round(statistics.median(switches), 1))
    page.close()
    return result


def big_schema(folder: Path, services: int = 500, methods: int = 4) -> None:
    per_file = 10
    for f in range(services // per_file):
        lines = ['syntax = "proto3";', f"package big.p{f:02d}.v1;",
                 "message Req { string id = 1; }", "message Res { string id = 1; }"]
        for s in range(per_file):
            lines.append(f"// Service number {f * per_file + s}.")
            lines.append(f"service Svc{f * per_file + s:03d} {{")
            for m in range(methods):
                lines.append(f"  rpc Method{m}(Req) returns (Res);")
            lines.append("}")
        (folder / f"f{f:02d}.proto").write_text("\n".join(lines) + "\n")


def sidebar(browser: Browser, url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        big_schema(Path(tmp))
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        open_method(page, url, "Echo", Path(tmp))
    page.get_by_role("tree", name="Services").wait_for()
    tree_items = page.get_by_role("treeitem").count()
    with traced(browser, page) as result:
        keys = []
        for text in ["S", "Sv", "Svc", "Svc1", "Svc12", "Svc1", "Svc", "M", "Me", "Method3", ""]:
            keys.append(page.evaluate(
                """(text) => new Promise((resolve) => {
                    const input = document.querySelector(
                        '[aria-label="Filter services and methods"]');
                    const t0 = performance.now();
                    input.value = text;
                    input.dispatchEvent(new Event('input', {bubbles: true}));
                    requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - t0)));
                })""",
                text,
            ))
        page.locator(".tree-method").first.focus()
        arrows = []
        for _ in range(50):
            arrows.append(page.evaluate(
                """() => new Promise((resolve) => {
                    const t0 = performance.now();
                    document.activeElement.dispatchEvent(
                        new KeyboardEvent('keydown', {key: 'ArrowDown', bubbles: true}));
                    requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - t0)));
                })"""
            ))
    result.update(scenario="500 services / 2,000 methods", tree_items_in_dom=tree_items,
                  filter_p50_ms=round(statistics.median(keys), 1),
                  filter_p90_ms=round(pct(keys, 0.9), 1),
                  arrow_p50_ms=round(statistics.median(arrows), 1),
                  arrow_p90_ms=round(pct(arrows, 0.9), 1),
                  dom_nodes=page.evaluate("document.getElementsByTagName('*').length"))
    page.close()
    return result


def measure_all(quick: bool) -> list[dict[str, Any]]:
    """Every scenario once, in one browser: the burst, the 100k modes, the big body, the sidebar."""
    huge = 10_000 if quick else 100_000
    up = start_grpc_server(Recorder())
    big, big_port = big_upstream(100_000)
    results = []
    try:
        with catalog() as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            results.append(burst(browser, url, up.address, 10_000, "all"))
            results.append(burst(browser, url, up.address, huge, "count"))
            results.append(big_response(browser, url, f"127.0.0.1:{big_port}"))
            results.append(sidebar(browser, url))
            browser.close()
    finally:
        up.stop()
        big.stop(None)
    return results


async def scenario(ctx: Any, quick: bool) -> list[Any]:
    """bench/run.py's entry point (full runs only, measured once)."""
    import asyncio

    from bench.common import Row

    burst_all, burst_count, big_body, side = await asyncio.to_thread(measure_all, quick)
    return [
        Row("ui.burst_task", burst_all["longest_task_ms"],
            note=f"thread time {burst_all['longest_task_thread_ms']} ms; "
                 f"{burst_all['tasks_over_100ms']} task(s) over 100 ms; "
                 f"{burst_all['counted']:,} messages counted"),
        Row("ui.burst_thread", burst_all["longest_task_thread_ms"], unit="ms",
            label="… the same longest task's main-thread time (info)"),
        Row("ui.count_seconds", burst_count["seconds_to_status"], unit="s",
            label=f"UI: {burst_count['scenario']}, seconds to the final status (info)",
            note=f"longest task {burst_count['longest_task_ms']} ms wall, "
                 f"{burst_count['longest_task_thread_ms']} ms thread"),
        Row("ui.big_paint", big_body["first_paint_ms"],
            note=f"{big_body['response_chars']:,} characters; longest task "
                 f"{big_body.get('longest_task_ms', '?')} ms"),
        Row("ui.sidebar_filter_p90", side["filter_p90_ms"], unit="ms",
            label="UI: filtering 500 services / 2,000 methods, p90 per key (info)"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 instead of 100,000")
    parser.add_argument("--only", default="", help="burst, big, sidebar (comma-separated)")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    huge = 10_000 if args.quick else 100_000
    up = start_grpc_server(Recorder())
    big, big_port = big_upstream(100_000)
    results = []
    try:
        with catalog() as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            if not only or "burst" in only:
                results.append(burst(browser, url, up.address, 10_000, "all"))
                results.append(burst(browser, url, up.address, huge, "count"))
                results.append(burst(browser, url, up.address, huge, "last"))
            if not only or "big" in only:
                results.append(big_response(browser, url, f"127.0.0.1:{big_port}"))
            if not only or "sidebar" in only:
                results.append(sidebar(browser, url))
            browser.close()
    finally:
        up.stop()
        big.stop(None)
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
