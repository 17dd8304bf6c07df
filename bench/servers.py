"""The server stack, measured: hello-world on every installed ASGI server, and the catalog
on each server it can run on (pyvoy, hypercorn) with 1 and 2 workers, in one run.

Rows (req/s, wrk with 50 connections for HTTP/1.1, h2load for gRPC; ratios to the fastest
hello-world of the same run): hello on each server; ListServices and GetSession over
Connect JSON; InvokeGRPC over gRPC (h2c) and over Connect JSON. 2 workers need a shared
session store: Redis at 127.0.0.1:6379, else those rows say why they are missing.

Runs its own rounds (a warm-up, then every configuration in turn per round) and reports
medians with the spread. Standalone: `.venv/bin/python bench/servers.py [--quick]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import httpx
from common import PROTOS, Ctx, Row, free_port
from throughput import (
    API,
    INVOKE,
    METHOD,
    UPSTREAM_REQUEST,
    grpc_rate,
    hello_commands,
    http_rate,
    invoke_binary,
    reachable,
)

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("pyvoy", "hypercorn")
"""The servers the catalog runs on (`--server`)."""
REDIS = "redis://127.0.0.1:6379/9"


async def _hellos(ctx: Ctx) -> dict[str, str]:
    """Each installed server's hello-world with one worker (the servers' own per-core rate)."""
    urls = {}
    for name in hello_commands(0, 1):
        port = free_port()
        cmd = hello_commands(port, 1)[name]
        try:
            server = await ctx.start(f"servers-hello-{name}", cmd, port, {"PYTHONPATH": str(ROOT)})
        except RuntimeError as exc:
            ctx.note(f"servers: hello-world on {name} did not start: {str(exc).splitlines()[0]}")
            continue
        urls[name] = server.url + "/"
    return urls


async def _catalogs(ctx: Ctx, upstream: str, quick: bool) -> dict[str, tuple[str, str]]:
    """(server, workers) label → (URL, session id with the weather protos loaded); --quick:
    1 worker only."""
    redis = await reachable(6379)
    out = {}
    for stack in STACKS:
        if importlib.util.find_spec(stack) is None:
            ctx.note(f"servers: {stack} is not installed here")
            continue
        for workers in (1,) if quick else (1, 2):
            if workers > 1 and not redis:
                ctx.note("servers: no Redis at 127.0.0.1:6379, so no 2-worker rows")
                continue
            args = ["--server", stack, "--workers", str(workers)]
            if workers > 1:
                args += ["--session-store", REDIS]
            label = f"{stack}.w{workers}"
            cat = await ctx.catalog(*args, name=f"servers-{label}")
            async with httpx.AsyncClient(timeout=60) as client:
                r = await client.post(cat.url + API + "LoadProtos", json={"protoPath": str(PROTOS)})
                r.raise_for_status()
                sid = r.headers["x-session-id"]
                check = await client.post(cat.url + API + "InvokeGRPC",
                                          headers={"x-session-id": sid},
                                          json={**INVOKE, "endpoint": upstream})  # fmt: skip
                if not check.json().get("success"):
                    raise RuntimeError(f"InvokeGRPC on {label} failed: {check.text[:200]}")
            out[label] = (cat.url, sid)
    return out


async def _measure(
    ctx: Ctx, url: str, sid: str, upstream: str, seconds: float
) -> dict[str, float]:
    session = {"Content-Type": "application/json", "X-Session-ID": sid}
    got = {}
    for what, method in (("list_services", "ListServices"), ("get_session", "GetSession")):
        got[what] = await http_rate(ctx, url + API + method, "{}", session, seconds)
    address = url.removeprefix("http://")
    got["invoke_grpc"] = await grpc_rate(
        ctx, address, API + "InvokeGRPC", invoke_binary(upstream), sid, seconds
    )
    body = json.dumps({**INVOKE, "endpoint": upstream})
    got["invoke_connect"] = await http_rate(ctx, url + API + "InvokeGRPC", body, session, seconds)
    return got


_WHAT = {
    "list_services": "ListServices (Connect JSON)",
    "get_session": "GetSession (Connect JSON)",
    "invoke_grpc": "InvokeGRPC (gRPC h2c)",
    "invoke_connect": "InvokeGRPC (Connect JSON)",
}


async def scenario(ctx: Ctx, quick: bool) -> list[Row]:
    seconds = 1.0 if quick else 3.0
    rounds = 1 if quick else 3
    upstream = (await ctx.upstream()).address
    hellos = await _hellos(ctx)
    catalogs = await _catalogs(ctx, upstream, quick)
    samples: dict[str, list[float]] = {}
    json_headers = {"Content-Type": "application/json"}
    for n in range(1 if quick else 0, rounds + 1):  # round 0 warms up (not in --quick)
        for name, url in hellos.items():
            with contextlib.suppress(RuntimeError):
                rps = await http_rate(ctx, url, "{}", json_headers, 1.0 if n == 0 else seconds)
                if n:
                    samples.setdefault(f"hello.{name}", []).append(rps)
        for label, (url, sid) in catalogs.items():
            got = await _measure(ctx, url, sid, upstream, 1.0 if n == 0 else seconds)
            for what, rps in got.items():
                if n:
                    samples.setdefault(f"{label}.{what}", []).append(rps)
    hello = {k: statistics.median(v) for k, v in samples.items() if k.startswith("hello.")}
    fastest = max(hello.values(), default=None)
    direct = await grpc_rate(ctx, upstream, METHOD, UPSTREAM_REQUEST, "", seconds)
    rows = []
    for key, values in samples.items():
        median = statistics.median(values)
        if key.startswith("hello."):
            label = f"hello-world on {key.split('.', 1)[1]}, 1 worker"
            base = fastest
        else:
            stack, workers, what = key.split(".")
            label = f"catalog on {stack}, {workers[1:]} worker(s): {_WHAT[what]}"
            base = direct if what.startswith("invoke") else fastest
        rows.append(Row(f"servers.{key}", median, baseline=base, unit="req/s", label=label,
                        lo=min(values), hi=max(values)))  # fmt: skip
    ctx.note(
        "servers: ratios of hello and Connect rows to the fastest hello-world (1 worker), of "
        "InvokeGRPC rows to direct grpcio throughput; same run"
    )
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

    raise SystemExit(asyncio.run(run.main(["--only", "servers", *sys.argv[1:]])))
