"""Sessions: their memory, the sweep's loop pauses, and 200 sessions working at once.

Two run.py scenarios (rows in bench/run.py):

- `scenario`: bytes per session on an already-loaded 500-file schema (bench/schema.py's
  generated set, 5,000 messages) at 1, 1,000 and 10,000 sessions: a child process builds
  the app, loads the schema once, then N sessions each add it (what a load of the same
  file returns: the shared schema) and tracemalloc counts what they add, divided by N
  (target ≤ 20 KB); and the longest event-loop pause of a 1 ms ticker while 100,000
  expired sessions are swept (target ≤ 20 ms), next to the same ticker idle.
- `concurrent`: the catalog started by its CLI; 200 clients at once each open a session,
  load the test protos, list the services, call the upstream a few times through
  InvokeGRPC and close the session. Errors, the p99 of one client's whole run, and the
  catalog's RSS, live sessions (from /metrics) and open fds after vs before (the before
  is taken after one warm-up client, so caches that stay are not counted as leaks).

Quick mode: a 100-file schema, 1/100/1,000 sessions, a 10,000-session sweep, 200 clients
with one call each.

    .venv/bin/python bench/sessions.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from common import PROTOS, Ctx, Http1, Row, open_fds, pct, rss_bytes

API = "/catalog.v1.CatalogService/"


# --- memory per session and sweep pauses: measured in a child process -----------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def per_session_bytes(path: str, counts: list[int]) -> dict[str, float]:
    """Bytes each session adds when N sessions load the already-loaded `path`.

    A load of an already-loaded file is a cache hit that returns the shared `Schema`
    object (checked here), so past the first sessions each adds that object directly (a
    hit re-reads and hashes the file: ~40 ms on 500 files, 10,000 times). A few sessions
    first, untraced in the count, so one-time costs (caches, interned names) are not
    charged to the first session; 1 is the median of 20 single sessions.
    """
    from connectrpc_catalog.app import AppConfig, create_app
    from connectrpc_catalog.sources.files import load_path

    app = create_app(AppConfig(max_sessions=sum(counts) + 40))
    schema = await load_path(app.loader.context, path)
    states: list[Any] = []

    async def sessions(n: int, real_load: bool = False) -> float:
        gc.collect()  # garbage freed meanwhile must not offset what the sessions hold
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(n):
            state, _ = app.manager.get_or_create(None)
            got = await load_path(app.loader.context, path) if real_load else schema
            if got is not schema:
                raise RuntimeError("a load of the same file did not return the shared schema")
            await state.registry.add(got)
            states.append(state)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / n

    tracemalloc.start()
    await sessions(5, real_load=True)
    out = {}
    for n in counts:
        if n == 1:
            out["1"] = statistics.median([await sessions(1, real_load=True) for _ in range(20)])
        else:
            out[str(n)] = await sessions(n)
    tracemalloc.stop()
    await app.shutdown()
    return out


async def longest_pause(sessions: int, work: bool) -> float:
    """The longest extra wait (ms) of a 1 ms ticker, sweeping `sessions` expired ones or not."""
    from connectrpc_catalog.app import AppConfig, create_app

    clock = Clock()
    app = create_app(AppConfig(session_ttl=60, clock=clock, max_sessions=sessions + 10))
    for _ in range(sessions):
        app.manager.get_or_create(None)
    clock.now += 61
    worst = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last - 0.001)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    if work:
        swept = await app.manager.sweep()
        if swept != sessions:
            raise RuntimeError(f"the sweep removed {swept} of {sessions} sessions")
    else:
        await asyncio.sleep(0.5)
    stop.set()
    await task
    await app.shutdown()
    return worst * 1000


async def child(path: str, counts: list[int], sweep: int) -> None:
    result: dict[str, Any] = {"bytes": await per_session_bytes(path, counts)}
    result["idle"] = await longest_pause(sweep, work=False)
    result["sweep"] = await longest_pause(sweep, work=True)
    print(json.dumps(result), flush=True)


async def schema_file(ctx: Ctx, files: int) -> Path:
    """bench/schema.py's generated schema of `files` files, as a descriptor-set file."""
    path = ctx.tmp / f"sessions-schema-{files}.binpb"
    if not path.exists():
        from schema import build_set, descriptor_set

        data = await asyncio.to_thread(lambda: descriptor_set(build_set(files, tag="s")[0]))
        path.write_bytes(data)
    return path


async def scenario(ctx: Ctx, quick: bool) -> list[Row]:
    files, counts, sweep = (
        (100, [1, 100, 1000], 10_000) if quick else (500, [1, 1000, 10**4], 10**5)
    )
    path = await schema_file(ctx, files)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", str(path), ",".join(map(str, counts)), str(sweep),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:  # timed out: the runner cancelled us
            proc.kill()
    if proc.returncode:
        raise RuntimeError(f"the measuring process failed: {err.decode()[-300:]}")
    got = json.loads(out.decode().strip().splitlines()[-1])
    note = f"quick: {files}-file schema, {'/'.join(map(str, counts))} sessions" if quick else ""
    keys = ("session.mem_1", "session.mem_1k", "session.mem_10k")
    rows = [Row(k, got["bytes"][str(n)], note=note) for k, n in zip(keys, counts, strict=True)]
    sweep_note = f"quick: {sweep:,} sessions" if quick else ""
    rows.append(Row("session.sweep_pause", got["sweep"], baseline=got["idle"], note=sweep_note))
    return rows


# --- 200 sessions at once against the CLI ---------------------------------------------


async def post(conn: Http1, method: str, body: object, sid: str = "") -> dict[str, Any]:
    headers = {"content-type": "application/json", **({"x-session-id": sid} if sid else {})}
    status, got, data = await conn.request(API + method, json.dumps(body).encode(), headers)
    if status != 200:
        raise RuntimeError(f"{method}: HTTP {status}: {data[:160]!r}")
    answer: dict[str, Any] = json.loads(data)
    answer["sid"] = got.get("x-session-id", sid)
    if answer.get("success") is False:
        raise RuntimeError(f"{method} failed: {data[:160]!r}")
    return answer


async def one_client(url: str, upstream: str, calls: int) -> dict[str, float]:
    """One session's load + list + `calls` invokes + close: ms for each step and in all."""
    steps: dict[str, float] = {}
    t0 = last = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[step] = steps.get(step, 0) + (now - last) * 1000
        last = now

    conn = Http1(url)
    try:
        sid = (await post(conn, "LoadProtos", {"protoPath": str(PROTOS)}))["sid"]
        lap("load")
        await post(conn, "ListServices", {}, sid)
        lap("list")
        invoke = {"endpoint": upstream, "service": "acme.weather.v1.WeatherService",
                  "method": "GetCurrent", "requestJson": '{"location": {"latitude": 52}}',
                  "transport": "TRANSPORT_GRPC"}  # fmt: skip
        for _ in range(calls):
            await post(conn, "InvokeGRPC", invoke, sid)
        lap("invoke")
        await post(conn, "CloseSession", {}, sid)
        lap("close")
    finally:
        conn.close()
    steps["all"] = (last - t0) * 1000
    return steps


async def hello_client(url: str, requests: int) -> float:
    """The client's floor: as many POSTs to a hello-world on a connection of its own (ms)."""
    conn, t0 = Http1(url), time.perf_counter()
    try:
        for _ in range(requests):
            await conn.request("/", b"{}", {"content-type": "application/json"})
    finally:
        conn.close()
    return (time.perf_counter() - t0) * 1000


async def figures(url: str, pid: int) -> tuple[float, float, float]:
    """RSS (MiB), live sessions and open fds of the catalog now."""
    await asyncio.sleep(0.5)  # let closed connections and sessions settle
    conn = Http1(url)
    try:
        _, _, text = await conn.request("/metrics")
    finally:
        conn.close()
    match = re.search(rb"^catalog_sessions_active(?:\{[^}]*\})? ([\d.e+]+)$", text, re.M)
    live = float(match.group(1)) if match else 0.0
    return (rss_bytes(pid) or 0) / (1 << 20), live, float(open_fds(pid) or 0)


async def concurrent(ctx: Ctx, quick: bool) -> list[Row]:
    clients, calls = 200, 1 if quick else 5
    upstream = await ctx.upstream()
    cat = await ctx.catalog("--max-sessions", "1000", name="catalog-concurrent")
    await one_client(cat.url, upstream.address, calls)  # warm-up: caches fill
    before = await figures(cat.url, cat.proc.pid)
    runs = await asyncio.gather(
        *(one_client(cat.url, upstream.address, calls) for _ in range(clients)),
        return_exceptions=True,
    )
    after = await figures(cat.url, cat.proc.pid)
    floor, server = await client_floor(ctx, clients, calls + 3)
    done = [r for r in runs if isinstance(r, dict)]
    errors = [r for r in runs if not isinstance(r, dict)]
    if errors:
        ctx.note(f"concurrent sessions: first error: {type(errors[0]).__name__}: {errors[0]}")
    times = [r["all"] for r in done]
    note = f"{clients} clients, {calls} call(s) each, one connection each, one client process"
    rows = [
        Row("c200.errors", float(len(errors)), note=note),
        Row(
            "c200.p99",
            pct(times, 0.99) if times else None,
            baseline=floor,
            lo=min(times, default=None),
            hi=max(times, default=None),
            note=f"baseline: the same clients' requests to a hello-world on {server}",
        ),
        Row("c200.rss", after[0] - before[0], note=f"{before[0]:.0f} → {after[0]:.0f} MiB"),
        Row("c200.sessions", after[1] - before[1]),
        Row("c200.fds", after[2] - before[2], note=f"{before[2]:.0f} → {after[2]:.0f}"),
    ]
    for step in ("load", "list", "invoke", "close"):
        got = [r[step] for r in done]
        rows.append(Row(f"c200.{step}_p99", pct(got, 0.99) if got else None, unit="ms",
                        label=f"200 sessions at once: p99 of the {step} step (info)",
                        note=f"p50 {pct(got, 0.5):,.0f} ms" if got else ""))  # fmt: skip
    return rows


async def client_floor(ctx: Ctx, clients: int, requests: int) -> tuple[float | None, str]:
    """p99 of `clients` clients each making `requests` POSTs to a hello-world at once."""
    from throughput import hellos

    servers = await hellos(ctx)
    if not servers:
        return None, "none"
    name, url = next(iter(servers.items()))
    url = url.rstrip("/")
    await hello_client(url, requests)
    got = await asyncio.gather(*(hello_client(url, requests) for _ in range(clients)))
    return pct(got, 0.99), name


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1:2] == ["--child"]:
        path, counts, sweep = sys.argv[2], sys.argv[3], int(sys.argv[4])
        asyncio.run(child(path, [int(c) for c in counts.split(",")], sweep))
        raise SystemExit(0)
    import run

    raise SystemExit(asyncio.run(run.main(["--only", "sessions", *sys.argv[1:]])))
