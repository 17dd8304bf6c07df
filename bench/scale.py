"""Scale-out throughput: GetSession on one live session (Connect JSON, wrk) through
catalogs that share their sessions in Redis (`--session-store`).

Rows (requests per second; the baseline of each is one worker with sessions in memory,
measured just before it):
- `scale.redis_w1`: one process, one worker, sessions in Redis;
- `scale.redis_w2`: one process, `--workers 2` on one port;
- `scale.redis_p2`: two processes on two ports (each one worker), one wrk per port at once,
  their rates summed — the two-replica case.

Info rows (milliseconds, p50): `scale.restore` — the first request for a session in a
process that has not seen it (rebuilt from Redis; baseline: its next request);
`scale.relay` — SendMessage on a live bidi call (the demo's AlertService.Subscribe) sent
to another process, which relays it to the call's owner (baseline: sent to the owner).

The session is created once and then used everywhere (each process restores it from
Redis on its first request; later requests touch Redis at most every few seconds).

    .venv/bin/python bench/scale.py [--quick] [--rounds N]

Redis: BENCH_REDIS_URL (default redis://127.0.0.1:6379/9); the keys go under a prefix of
this run's own and are deleted at the end. Without Redis (or wrk) the rows say why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import Ctx, Row  # noqa: E402

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
CONNECTIONS = 50
API = "/catalog.v1.CatalogService/"
KEYS = ("scale.redis_w1", "scale.redis_w2", "scale.redis_p2", "scale.restore", "scale.relay")
LABELS = {
    "scale.redis_w1": "GetSession throughput, 1 worker, sessions in Redis",
    "scale.redis_w2": "… --workers 2 on one port, sessions in Redis",
    "scale.redis_p2": "… 2 processes on 2 ports (1 worker each), sessions in Redis",
    "scale.restore": "first request in a process that never saw the session (p50, ms)",
    "scale.relay": "SendMessage relayed to the live call's process (p50, ms)",
}
WEATHER = BENCH.parent / "examples" / "weather"


async def _redis_answers() -> bool:
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(REDIS, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def _delete_prefix(prefix: str) -> None:
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(REDIS)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _wrk(ctx: Ctx, url: str, sid: str, connections: int, seconds: float) -> float:
    script = ctx.tmp / f"scale-{sid[:8]}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.body = "{}"\n'
        'wrk.headers["content-type"] = "application/json"\n'
        f'wrk.headers["x-session-id"] = "{sid}"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "-s", str(script),
        url + API + "GetSession",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await proc.communicate())[0].decode(errors="replace")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not rate or bad:
        raise RuntimeError(f"wrk on {url}: {(bad and bad.group(0)) or out[-300:]}")
    return float(rate.group(1))


async def _session(url: str) -> str:
    """A new session (it is written to the store before the answer)."""
    import httpx

    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(url + API + "GetSession", json={})
        r.raise_for_status()
        return r.headers["x-session-id"]


_SETUPS = {
    "mem": (("--workers", "1", "--memory"),),
    "w1": (("--workers", "1"),),
    "w2": (("--workers", "2"),),
    "p2": (("--workers", "1"), ("--workers", "1")),
}
"""Each setup's processes, by their flags ("--memory": no session store)."""


async def _urls(ctx: Ctx, setup: str) -> list[str]:
    """The URLs of one setup's processes (started on first use, kept for every round)."""
    started: dict[str, list[str]] = ctx.state.setdefault("scale", {})
    if setup in started:
        return started[setup]
    prefix = ctx.state.get("scale-prefix")
    if prefix is None:
        prefix = ctx.state["scale-prefix"] = f"bench-{secrets.token_hex(4)}"
        ctx.at_exit(lambda: _delete_prefix(prefix))
    store = ["--session-store", REDIS, "--session-store-prefix", prefix]
    urls = []
    for n, flags in enumerate(_SETUPS[setup]):
        args = [f for f in flags if f != "--memory"] + ([] if "--memory" in flags else store)
        urls.append((await ctx.catalog(*args, name=f"scale-{setup}-{n}")).url)
    started[setup] = urls
    return urls


async def _rate(ctx: Ctx, urls: list[str], seconds: float) -> float:
    sid = await _session(urls[0])
    share = CONNECTIONS // len(urls)
    rates = await asyncio.gather(*(_wrk(ctx, u, sid, share, seconds) for u in urls))
    return sum(rates)


async def _latencies(ctx: Ctx, a: str, b: str, quick: bool) -> list[Row]:
    """scale.restore and scale.relay between processes A and B."""
    import time

    import httpx

    demo = await ctx.demo()
    n = 10 if quick else 40
    async with httpx.AsyncClient(timeout=30) as http:

        async def post(url: str, method: str, body: object, sid: str = "") -> httpx.Response:
            headers = {"x-session-id": sid} if sid else {}
            r = await http.post(url + API + method, json=body, headers=headers)
            r.raise_for_status()
            return r

        async def timed(url: str, method: str, body: object, sid: str) -> float:
            t0 = time.perf_counter()
            await post(url, method, body, sid)
            return (time.perf_counter() - t0) * 1000

        first, then = [], []
        for _ in range(n):
            r = await post(a, "LoadProtos", {"protoPath": str(WEATHER)})
            sid = r.headers["x-session-id"]
            first.append(await timed(b, "ListServices", {}, sid))
            then.append(await timed(b, "ListServices", {}, sid))
        call = {"call": {"endpoint": demo.address, "service": "weather.v1.AlertService",
                         "method": "Subscribe", "transport": "TRANSPORT_GRPC",
                         "timeoutSeconds": 120}}  # fmt: skip
        call_id = (await post(a, "StartCall", call, sid)).json()["callId"]
        send = {"callId": call_id, "messageJson": json.dumps({"removeRegion": "nowhere"})}
        owner = [await timed(a, "SendMessage", send, sid) for _ in range(n)]
        relayed = [await timed(b, "SendMessage", send, sid) for _ in range(n)]
        await post(a, "CancelCall", {"callId": call_id}, sid)
    med = statistics.median
    return [
        Row("scale.restore", med(first), baseline=med(then), unit="ms",
            label=LABELS["scale.restore"]),
        Row("scale.relay", med(relayed), baseline=med(owner), unit="ms",
            label=LABELS["scale.relay"]),
    ]  # fmt: skip


async def scenario(ctx: Ctx, quick: bool) -> list[Row]:
    """One measurement of every row (see the module's docstring)."""
    if shutil.which("wrk") is None:
        return [Row(k, None, note="wrk is not installed") for k in KEYS]
    if not await _redis_answers():
        return [Row(k, None, note=f"no Redis answers at {REDIS}") for k in KEYS]
    help_text = await ctx.catalog_help()
    if "--workers" not in help_text or "--session-store" not in help_text:
        return [Row(k, None, note="this catalog has no --workers/--session-store") for k in KEYS]
    seconds = 1 if quick or ctx.warmup else 4
    rows = []
    for key, setup in zip(KEYS, ("w1", "w2", "p2"), strict=False):
        if quick and setup == "w2":  # --quick: fewer processes to start
            rows.append(Row(key, None, note="full mode only", label=LABELS[key]))
            continue
        urls = await _urls(ctx, setup)
        base = await _rate(ctx, await _urls(ctx, "mem"), seconds)  # just before: same load
        rows.append(Row(key, await _rate(ctx, urls, seconds), baseline=base,
                        unit="req/s", label=LABELS[key]))  # fmt: skip
    return rows + await _latencies(ctx, *await _urls(ctx, "p2"), quick)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        ctx = Ctx(quick=args.quick, rounds=args.rounds, tmp=Path(tmp))
        results: dict[str, list[Row]] = {k: [] for k in KEYS}
        try:
            for n in range(args.rounds + 1):
                ctx.round = n
                rows = await scenario(ctx, args.quick)
                if n == 0:
                    continue  # the warm-up
                for row in rows:
                    results[row.key].append(row)
        finally:
            await ctx.close()
    print("| row | median | baseline (median) | ratio (median of rounds) | ratios by round |")
    print("|---|---|---|---|---|")
    for key, got in results.items():
        pairs = [(r.value, r.baseline) for r in got if r.value is not None and r.baseline]
        if not pairs:
            note = got[0].note if got else "-"
            print(f"| {LABELS[key]} | not measured ({note}) | | | |")
            continue
        v = statistics.median(p[0] for p in pairs)
        b = statistics.median(p[1] for p in pairs)
        ratios = [p[0] / p[1] for p in pairs]
        shown = f"{v:,.0f} | {b:,.0f}" if v > 100 else f"{v:.2f} | {b:.2f}"
        each = " / ".join(f"{r:.2f}" for r in ratios)
        print(f"| {LABELS[key]} | {shown} | {statistics.median(ratios):.2f}x | {each} |")
    print(json.dumps({k: [(r.value, r.baseline) for r in v] for k, v in results.items()}))


if __name__ == "__main__":
    asyncio.run(main())
