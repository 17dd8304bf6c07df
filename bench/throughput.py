"""Throughput at one concurrency: the catalog against the fastest baseline that runs here.

Rows (see bench/run.py):

- `tput.list_services`, `tput.get_session`: Connect JSON POSTs on one session (the test
  protos loaded), with wrk, against a raw ASGI hello-world (bench/hello.py) on every ASGI
  server that is installed (uvicorn, granian, pyvoy, hypercorn), each with one worker per
  core where it has workers; the baseline is the fastest of them in the same round;
- `tput.invoke`: InvokeGRPC over gRPC (h2c) to bench/upstream.py, with h2load, against
  the same h2load calling the upstream directly (grpcio);
- info rows: each hello-world server, and InvokeGRPC over Connect JSON with wrk.

The catalog runs with every core when its CLI has `--workers` and a shared session store
(Redis at 127.0.0.1:6379); otherwise one process, said in a note. `BENCH_CATALOG_ARGS`
adds flags of your own. Without wrk or h2load a Python load generator stands in (noted:
it is slower than the servers, so its ratios say little).

    .venv/bin/python bench/throughput.py [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shlex
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from common import BENCH, PROTOS, ROOT, Ctx, Http1, Row, free_port, have

CONNECTIONS = 50
API = "/catalog.v1.CatalogService/"
METHOD = "/acme.weather.v1.WeatherService/GetCurrent"
UPSTREAM_REQUEST = bytes.fromhex("0a1209000000000000")  # Location{latitude: 52 …}, any bytes do
INVOKE = {
    "service": "acme.weather.v1.WeatherService",
    "method": "GetCurrent",
    "requestJson": '{"location": {"latitude": 52, "longitude": 10}}',
    "transport": "TRANSPORT_GRPC",
}
HELLO_APP = "bench.hello:app"


def hello_commands(port: int, workers: int) -> dict[str, list[str]]:
    """How each installed ASGI server serves the hello-world on `port`."""
    py, addr, w = sys.executable, "127.0.0.1", str(workers)
    uvloop = importlib.util.find_spec("uvloop") is not None
    every = {
        "uvicorn": [py, "-m", "uvicorn", HELLO_APP, "--host", addr, "--port", str(port),
                    "--workers", w, "--log-level", "warning", "--no-access-log",
                    *(["--loop", "uvloop"] if uvloop else []),
                    *(["--http", "httptools"] if importlib.util.find_spec("httptools") else [])],
        "granian": [py, "-m", "granian", "--interface", "asgi", "--host", addr,
                    "--port", str(port), "--workers", w, "--no-access-log",
                    "--log-level", "warning", *(["--loop", "uvloop"] if uvloop else []),
                    HELLO_APP],
        "pyvoy": [str(Path(py).parent / "pyvoy"), HELLO_APP, "--address", addr, "--port", str(port),
                  "--log-level", "warning"],
        "hypercorn": [py, str(BENCH / "hello.py"), str(port)],
    }  # fmt: skip
    return {name: cmd for name, cmd in every.items() if importlib.util.find_spec(name)}


async def hellos(ctx: Ctx) -> dict[str, str]:
    """Server name -> URL of its hello-world, started once."""
    if "hellos" not in ctx.state:
        urls = {}
        for name in hello_commands(0, 1):
            if ctx.quick and name == "hypercorn":  # never the fastest; full runs show it
                continue
            port = free_port()
            cmd = hello_commands(port, ctx.cores)[name]
            try:
                server = await ctx.start(f"hello-{name}", cmd, port, {"PYTHONPATH": str(ROOT)})
            except RuntimeError as exc:
                ctx.note(f"hello-world on {name} did not start: {str(exc).splitlines()[0]}")
                continue
            urls[name] = server.url + "/"
        ctx.state["hellos"] = urls
        workers = {"hypercorn": 1, "pyvoy": 1}
        ctx.note("throughput baselines: hello-world on " + ", ".join(
            f"{n} ({workers.get(n, ctx.cores)} worker(s))" for n in urls))  # fmt: skip
    result: dict[str, str] = ctx.state["hellos"]
    return result


async def catalog_flags(ctx: Ctx) -> list[str]:
    """Flags that let the catalog use every core, as far as this version can."""
    extra = shlex.split(os.environ.get("BENCH_CATALOG_ARGS", ""))
    help_text = await ctx.catalog_help()
    if "--workers" not in help_text or "--workers" in extra:
        why = "its CLI has no --workers" if "--workers" not in help_text else "BENCH_CATALOG_ARGS"
        ctx.note(f"throughput: catalog workers as started ({why})")
        return extra
    stores = re.findall(r"--[\w-]*(?:redis|session-store)[\w-]*", help_text)
    store = min(stores, key=len, default="")
    if store and await reachable(6379):
        ctx.note(f"throughput: catalog with --workers {ctx.cores} {store} redis://127.0.0.1:6379")
        prefix = f"{store}-prefix"  # its own keys, whatever else uses this Redis
        own = [prefix, f"bench-run-{os.getpid()}"] if prefix in help_text else []
        return ["--workers", str(ctx.cores), store, "redis://127.0.0.1:6379/0", *own, *extra]
    ctx.note("throughput: catalog with --workers 1 (sessions in memory: no shared store here)")
    return ["--workers", "1", *extra]


async def reachable(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def setup(ctx: Ctx) -> dict[str, str]:
    """Start the upstream and the catalog, load the protos into a session."""
    if "tput" in ctx.state:
        return dict(ctx.state["tput"])
    upstream = await ctx.upstream()
    cat = await ctx.catalog(*await catalog_flags(ctx), name="catalog-throughput")
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(cat.url + API + "LoadProtos", json={"protoPath": str(PROTOS)})
        r.raise_for_status()
        sid = r.headers["x-session-id"]
        check = await client.post(cat.url + API + "InvokeGRPC", headers={"x-session-id": sid},
                                  json={**INVOKE, "endpoint": upstream.address})  # fmt: skip
        if not check.json().get("success"):
            raise RuntimeError(f"InvokeGRPC through the catalog failed: {check.text[:200]}")
    ctx.state["tput"] = {"url": cat.url, "sid": sid, "upstream": upstream.address}
    return dict(ctx.state["tput"])


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def invoke_binary(upstream: str) -> bytes:
    from connectrpc_catalog.gen.catalog.v1 import catalog_pb

    return catalog_pb.InvokeGRPCRequest(
        endpoint=upstream,
        service=INVOKE["service"],
        method=INVOKE["method"],
        request_json=INVOKE["requestJson"],
        transport=catalog_pb.Transport.GRPC,
    ).to_binary()


async def run_tool(args: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return out.decode(errors="replace")


async def wrk(ctx: Ctx, url: str, body: str, headers: dict[str, str], seconds: float) -> float:
    script = ctx.tmp / f"wrk-{abs(hash((url, body, *headers.values())))}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}",
             *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())]  # fmt: skip
    script.write_text("\n".join(lines) + "\n")
    out = await run_tool(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds:.0f}s", "-s", str(script),
                          url])  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not match or bad:
        raise RuntimeError(f"wrk on {url}: {(bad and bad.group(0)) or out[-300:]}")
    return float(match.group(1))


async def h2load(ctx: Ctx, url: str, body: bytes, headers: dict[str, str], seconds: float) -> float:
    data = ctx.tmp / f"h2-{abs(hash((url, body)))}.bin"
    data.write_bytes(grpc_frame(body))
    hdrs = [a for k, v in {"content-type": "application/grpc", "te": "trailers", **headers}.items()
            for a in ("-H", f"{k}: {v}")]  # fmt: skip
    out = await run_tool(["h2load", "-t1", f"-c{CONNECTIONS}", "-m1", f"-D{seconds:.0f}",
                          "-d", str(data), *hdrs, url])  # fmt: skip
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not rate or not done or done.group(1) != done.group(2) or done.group(1) == "0":
        raise RuntimeError(f"h2load on {url}: {out[-300:]}")
    return float(rate.group(1))


async def py_http(url: str, body: bytes, headers: dict[str, str], seconds: float) -> float:
    """Fallback load generator: CONNECTIONS keep-alive HTTP/1.1 clients in this process."""
    base, _, path = url.removeprefix("http://").partition("/")
    conns: list[Http1] = []

    def client(_: int) -> Callable[[], Awaitable[None]]:
        conn = Http1("http://" + base)  # each worker its own connection
        conns.append(conn)

        async def send() -> None:
            status, _, _ = await conn.request("/" + path, body, headers)
            if status != 200:
                raise RuntimeError(f"HTTP {status} from {url}")

        return send

    try:
        return await py_loop(client, seconds)
    finally:
        for conn in conns:
            conn.close()


async def py_grpc(address: str, path: str, body: bytes, sid: str, seconds: float) -> float:
    """Fallback gRPC load generator: grpc.aio with CONNECTIONS calls in flight."""
    import grpc

    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(path)
        meta = (("x-session-id", sid),) if sid else ()

        def client(_: int) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                await call(body, metadata=meta, timeout=30)

            return send

        return await py_loop(client, seconds)


async def py_loop(client: Callable[[int], Callable[[], Awaitable[None]]], seconds: float) -> float:
    """Requests per second of CONNECTIONS workers, each sending with its own `client(i)`."""
    done = 0
    end = time.monotonic() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        send = client(i)
        while time.monotonic() < end:
            await send()
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
    return done / (time.monotonic() - t0)


async def http_rate(ctx: Ctx, url: str, body: str, headers: dict[str, str], s: float) -> float:
    if have("wrk"):
        return await wrk(ctx, url, body, headers, s)
    ctx.note("throughput: wrk missing (apt-get install wrk): Python load generator instead")
    return await py_http(url, body.encode(), headers, s)


async def grpc_rate(ctx: Ctx, address: str, path: str, body: bytes, sid: str, s: float) -> float:
    if have("h2load"):
        extra = {"x-session-id": sid} if sid else {}
        return await h2load(ctx, f"http://{address}{path}", body, extra, s)
    ctx.note("throughput: h2load missing (apt-get install nghttp2-client): grpc.aio instead")
    return await py_grpc(address, path, body, sid, s)


async def scenario(ctx: Ctx, quick: bool) -> list[Row]:
    seconds = 1 if quick or ctx.warmup else 4  # whole seconds: wrk and h2load take no less
    env = await setup(ctx)
    if quick and ctx.warmup:  # starting the servers and one call each is warm-up enough
        await hellos(ctx)
        return []
    url, sid, upstream = env["url"], env["sid"], env["upstream"]
    json_headers = {"Content-Type": "application/json"}
    hello = {}
    for name, hello_url in (await hellos(ctx)).items():
        if ctx.warmup and hello:  # one server warms the load generator up
            break
        with contextlib.suppress(RuntimeError):  # a server that fails is left out, noted below
            hello[name] = await http_rate(ctx, hello_url, "{}", json_headers, seconds)
    fastest = max(hello.values(), default=None)
    session = {**json_headers, "X-Session-ID": sid}
    rows = [
        Row(f"tput.hello.{name}", rps, label=f"hello-world on {name} (info)", unit="req/s")
        for name, rps in hello.items()
    ]
    for key, method in (("tput.list_services", "ListServices"), ("tput.get_session", "GetSession")):
        rps = await http_rate(ctx, url + API + method, "{}", session, seconds)
        rows.append(Row(key, rps, baseline=fastest))
    direct = await grpc_rate(ctx, upstream, METHOD, UPSTREAM_REQUEST, "", seconds)
    via = await grpc_rate(ctx, url.removeprefix("http://"), API + "InvokeGRPC",
                          invoke_binary(upstream), sid, seconds)  # fmt: skip
    rows.append(Row("tput.invoke", via, baseline=direct))
    body = json.dumps({**INVOKE, "endpoint": upstream})
    connect = await http_rate(ctx, url + API + "InvokeGRPC", body, session, seconds)
    rows.append(Row("tput.invoke_connect", connect, baseline=direct, unit="req/s",
                    label="InvokeGRPC throughput, Connect JSON with wrk (info)"))  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

    raise SystemExit(asyncio.run(run.main(["--only", "throughput", *sys.argv[1:]])))
