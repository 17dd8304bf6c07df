"""The cost of the limits per identity (`--calls-per-minute`, `--streams-per-identity`,
`--sessions-per-identity`), counted in Redis with `--session-store` and in memory
without: the same requests to catalogs with and without the limits, same run, interleaved.

Catalogs (the CLI, one worker each, `--auth proxy --trusted-proxy 127.0.0.1`: every
request carries `X-Forwarded-Email`, so it is one signed-in person's; the limits are keyed
by the identity in every sign-in mode, `--auth none` included, where everyone is the one
anonymous identity):

- `redis`: sessions in Redis, no limits (the Redis rows' baseline);
- `redis+limits`: the same with all three limits set high enough never to refuse
  (`--calls-per-minute 1000000000`, the others 1,000,000);
- `redis+streams`: the same with `--streams-per-identity` only (the lease alone);
- `memory` and `memory+limits`: sessions in memory, without and with the three limits.

Measured per catalog, one client each (http.client, Connect JSON over a keep-alive
HTTP/1.1 connection), sequentially, in 5 blocks per round interleaved across the catalogs
(their order reversed every other block) after a few warm-up requests; bench/run.py's
round 0 is a warm-up too. Per round: 1,000 unary calls, 250 streams and 250 new sessions
per catalog (`--quick`: 100, 25, 25, and only the two Redis catalogs, or the two memory
ones without Redis, so that it takes a few seconds; nothing in the warm-up round, the
catalogs are started and warmed up in round 1):

- `limits.*.unary`: InvokeGRPC of bench/upstream.py's unary GetCurrent (grpcio), p50 and
  p99 — with `--calls-per-minute` one Lua script per call;
- `limits.*.stream`: InvokeStream of a 5-message server stream (bench/streams.py's
  upstream), from sending the request to the end of the stream, p50 — with
  `--streams-per-identity` a lease taken and given back (and with `--calls-per-minute`
  the call counted too: the `stream_all` row);
- `limits.*.session`: the first request of a new session (GetSession without
  X-Session-ID; the session is closed after, untimed), p50 — with
  `--sessions-per-identity` a ZCOUNT of the person's sessions before, and the create
  script's count.

Info row `limits.redis.ping`: a Redis PING round trip from this process (what one added
round trip costs here). No row has a target: they show what the limits cost.

    .venv/bin/python bench/limits.py [--quick] [--rounds N]

Redis: BENCH_REDIS_URL (default redis://127.0.0.1:6379/9); the keys go under a prefix of
this run's own and are deleted at the end. Without Redis the Redis rows say why (the
memory rows are still measured).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import PROTOS, Ctx, Row, free_port, keepalive_post, p50, pct  # noqa: E402

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
API = "/catalog.v1.CatalogService/"
WHO = "bench-limits@example.com"
SERVICE = "acme.weather.v1.WeatherService"
STREAM_MESSAGES = 5
BLOCKS = 5
HIGH = "1000000"
LIMITS = ("--calls-per-minute", "1000000000", "--streams-per-identity", HIGH,
          "--sessions-per-identity", HIGH)  # fmt: skip
AUTH = ("--auth", "proxy", "--trusted-proxy", "127.0.0.1", "--workers", "1")

SETUPS: dict[str, tuple[bool, tuple[str, ...], tuple[str, ...]]] = {
    "redis": (True, (), ("unary", "stream", "session")),
    "redis+limits": (True, LIMITS, ("unary", "stream", "session")),
    "redis+streams": (True, ("--streams-per-identity", HIGH), ("stream",)),
    "memory": (False, (), ("unary", "stream", "session")),
    "memory+limits": (False, LIMITS, ("unary", "stream", "session")),
}
"""Each catalog: whether its sessions are in Redis, its limit flags, what it measures."""

# row key → (label, measured setup, baseline setup, measurement, statistic)
ROWS: dict[str, tuple[str, str, str, str, str]] = {
    "limits.redis.unary_p50": (
        "unary InvokeGRPC p50, sessions in Redis, the three limits set (Redis-counted)",
        "redis+limits", "redis", "unary", "p50"),
    "limits.redis.unary_p99": (
        "… its p99 (Redis)", "redis+limits", "redis", "unary", "p99"),
    "limits.redis.stream": (
        "InvokeStream (5 messages) open-to-close p50, Redis, --streams-per-identity (lease)",
        "redis+streams", "redis", "stream", "p50"),
    "limits.redis.stream_all": (
        "… the same with the three limits set (lease + the call counted)",
        "redis+limits", "redis", "stream", "p50"),
    "limits.redis.session": (
        "first request of a new session p50, Redis, --sessions-per-identity",
        "redis+limits", "redis", "session", "p50"),
    "limits.memory.unary_p50": (
        "unary InvokeGRPC p50, sessions in memory, the three limits set",
        "memory+limits", "memory", "unary", "p50"),
    "limits.memory.unary_p99": (
        "… its p99 (memory)", "memory+limits", "memory", "unary", "p99"),
    "limits.memory.stream": (
        "InvokeStream (5 messages) open-to-close p50, memory, the three limits set",
        "memory+limits", "memory", "stream", "p50"),
    "limits.memory.session": (
        "first request of a new session p50, memory, --sessions-per-identity",
        "memory+limits", "memory", "session", "p50"),
}  # fmt: skip
BASELINES = {
    "redis": "sessions in Redis, no limits",
    "memory": "sessions in memory, no limits",
}
PING_KEY = "limits.redis.ping"
PING_LABEL = "… a Redis PING round trip from the bench process (p50, info)"


async def redis_answers(url: str = REDIS) -> bool:
    """Whether a Redis answers PING at `url` within 2 s."""
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        return bool(await client.ping())  # type: ignore[misc]
    except Exception:
        return False
    finally:
        await client.aclose()


async def delete_prefix(prefix: str, url: str = REDIS) -> None:
    """Delete every key under `prefix:` (this run's own)."""
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


class Client:
    """One keep-alive Connect JSON connection to a catalog, as one signed-in person."""

    def __init__(self, port: int, unary: str, stream: str) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.sid = ""
        self.last_sid = ""
        loaded = json.loads(
            self.post("LoadProtos", json.dumps({"protoPath": str(PROTOS)}).encode(), sid="")
        )
        if not loaded.get("success"):
            raise RuntimeError(f"the catalog on port {port} did not load the test protos")
        self.sid = self.last_sid
        self.unary_body = json.dumps({
            "endpoint": unary, "service": SERVICE, "method": "GetCurrent",
            "requestJson": '{"location": {"latitude": 52, "longitude": 10}}',
            "transport": "TRANSPORT_GRPC",
        }).encode()  # fmt: skip
        stream_req = json.dumps({
            "endpoint": stream, "service": SERVICE, "method": "StreamForecast",
            "requestMessagesJson": ["{}"], "transport": "TRANSPORT_GRPC",
            "metadata": {"x-count": str(STREAM_MESSAGES)}, "timeoutSeconds": 30,
        }).encode()  # fmt: skip
        self.stream_body = b"\0" + len(stream_req).to_bytes(4, "big") + stream_req
        first = json.loads(self.post("InvokeGRPC", self.unary_body))
        if not first.get("success"):
            raise RuntimeError(f"the catalog's unary call failed: {first.get('error')}")
        self.stream()

    def post(
        self, method: str, body: bytes, ctype: str = "application/json", sid: str = "-"
    ) -> bytes:
        """One request on this client's session (`sid`: another one, "" for none); the
        connection is opened again once if the server closed it while idle."""
        sid = self.sid if sid == "-" else sid
        headers = {"Content-Type": ctype, "X-Forwarded-Email": WHO}
        if sid:
            headers["X-Session-ID"] = sid
        resp, data = keepalive_post(self.conn, API + method, body, headers)
        if resp.status != 200:
            raise RuntimeError(f"{method} answered HTTP {resp.status}: {data[:200]!r}")
        self.last_sid = resp.getheader("x-session-id") or ""
        return data

    def unary(self) -> None:
        if b'"success":true' not in self.post("InvokeGRPC", self.unary_body).replace(b" ", b""):
            raise RuntimeError("the catalog's unary call did not succeed")

    def stream(self) -> None:
        """The whole stream: every frame read, its messages counted, its end checked."""
        data = self.post("InvokeStream", self.stream_body, "application/connect+json")
        pos, got, end = 0, 0, b""
        while len(data) - pos >= 5:
            size = int.from_bytes(data[pos + 1 : pos + 5], "big")
            frame = data[pos + 5 : pos + 5 + size]
            if data[pos] & 2:
                end = frame
            elif frame.startswith(b'{"message"'):
                got += 1
            pos += 5 + size
        if end != b"{}" or got != STREAM_MESSAGES:
            raise RuntimeError(f"the stream gave {got} messages and ended {end[:200]!r}")

    def new_session(self) -> float:
        """Milliseconds of a GetSession without a session id (the session closed after)."""
        t0 = time.perf_counter()
        self.post("GetSession", b"{}", sid="")
        took = (time.perf_counter() - t0) * 1000
        made = self.last_sid
        if not made or made == self.sid:
            raise RuntimeError("GetSession without a session id made no new session")
        self.post("CloseSession", b"{}", sid=made)
        return took

    def measure(self, what: str, n: int) -> list[float]:
        """Milliseconds of each of `n` requests of one kind (unary, stream, session)."""
        if what == "session":
            return [self.new_session() for _ in range(n)]
        return _timed(self.unary if what == "unary" else self.stream, n)

    def close(self) -> None:
        self.conn.close()


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def sample(
    clients: dict[str, Client], sizes: dict[str, int], warmup: int
) -> dict[tuple[str, str], list[float]]:
    """Milliseconds per request of each (setup, measurement), in BLOCKS interleaved
    blocks (the order of the setups reversed every other block) after `warmup` each."""
    runs = {(name, what): client for name, client in clients.items() for what in SETUPS[name][2]}
    for (_, what), client in runs.items():
        client.measure(what, max(1, warmup // (1 if what == "unary" else 5)))
    got: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    kinds = ("unary", "stream", "session")
    order = sorted(runs, key=lambda k: (kinds.index(k[1]), list(SETUPS).index(k[0])))
    for block in range(BLOCKS):
        for key in order if block % 2 == 0 else reversed(order):
            got[key] += runs[key].measure(key[1], max(1, sizes[key[1]] // BLOCKS))
    return got


def _q(samples: list[float], q: float) -> float:
    """The median (q = 0.5) or the q-quantile of `samples`."""
    return p50(samples) if q == 0.5 else pct(samples, q)


def _ping(n: int) -> list[float]:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        client.ping()
        return _timed(client.ping, n)
    finally:
        client.close()


def _setups(quick: bool, redis_ok: bool) -> list[str]:
    """The catalogs of this run: all five; --quick only the Redis pair (the memory pair
    without Redis)."""
    if not redis_ok:
        return ["memory", "memory+limits"]
    return ["redis", "redis+limits"] if quick else list(SETUPS)


async def _clients(ctx: Ctx, names: list[str]) -> dict[str, Client]:
    """One client per catalog (the catalogs started on first use, kept for every round)."""
    clients: dict[str, Client] | None = ctx.state.get("limits.clients")
    if clients is not None:
        return clients
    upstream = await ctx.upstream()
    up_port = free_port()
    streams = BENCH / "streams.py"
    stream_up = await ctx.start(  # the same upstream as bench/streams.py's (one process)
        "stream-upstream", [sys.executable, str(streams), "--upstream", str(up_port)], up_port
    )
    prefix = f"bench-limits-{secrets.token_hex(4)}"
    if any(SETUPS[n][0] for n in names):
        ctx.at_exit(lambda: delete_prefix(prefix))
    store = ("--session-store", REDIS, "--session-store-prefix", prefix)
    servers = await asyncio.gather(*(
        ctx.catalog(*AUTH, *(store if SETUPS[n][0] else ()), *SETUPS[n][1], name=f"limits-{n}")
        for n in names
    ))  # fmt: skip
    made: dict[str, Client] = {}

    async def close() -> None:
        for client in made.values():
            client.close()

    ctx.at_exit(close)
    for name, server in zip(names, servers, strict=True):
        made[name] = await asyncio.to_thread(
            Client, server.port, upstream.address, stream_up.address
        )
    ctx.state["limits.clients"] = made
    return made


async def scenario(ctx: Ctx, quick: bool) -> list[Row]:
    """One measurement of every row (see the module's docstring)."""
    if quick and ctx.warmup:
        # --quick: nothing in the warm-up round (the catalogs start, and are warmed up, in
        # round 1), so a quick run whose time is used up before round 1 reaches this
        # scenario spent nothing on it
        return []
    help_text = await ctx.catalog_help()
    if "--streams-per-identity" not in help_text or "--sessions-per-identity" not in help_text:
        why = "this catalog has no --streams-per-identity/--sessions-per-identity"
        return [Row(k, None, note=why, label=v[0]) for k, v in ROWS.items()]
    redis_ok = ctx.state.get("limits.redis")
    if redis_ok is None:
        redis_ok = ctx.state["limits.redis"] = await redis_answers()
    clients = await _clients(ctx, _setups(quick, redis_ok))
    if ctx.warmup:
        sizes, warmup = {"unary": 25, "stream": 5, "session": 5}, 20
    elif quick:
        sizes, warmup = {"unary": 100, "stream": 25, "session": 25}, 25
    else:
        sizes, warmup = {"unary": 1000, "stream": 250, "session": 250}, 50
    got = await asyncio.to_thread(sample, clients, sizes, warmup)
    rows = []
    for key, (label, measured, base, what, how) in ROWS.items():
        if (measured, what) not in got or (base, what) not in got:
            why = f"no Redis answers at {REDIS}" if not redis_ok else "full mode only"
            rows.append(Row(key, None, note=why, label=label))
            continue
        samples = got[(measured, what)]
        lo, hi = (pct(samples, 0.1), pct(samples, 0.9)) if how == "p50" else (None, None)
        q = 0.5 if how == "p50" else 0.99
        rows.append(Row(key, _q(samples, q), baseline=_q(got[(base, what)], q),
                        unit="ms", label=label, lo=lo, hi=hi))  # fmt: skip
    if redis_ok:
        pings = await asyncio.to_thread(_ping, 200 if quick else 1000)
        rows.append(Row(PING_KEY, p50(pings), unit="ms", label=PING_LABEL))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        ctx = Ctx(quick=args.quick, rounds=args.rounds, tmp=Path(tmp))
        results: dict[str, list[Row]] = {}
        try:
            for n in range(args.rounds + 1):
                ctx.round = n
                rows = await scenario(ctx, args.quick)
                if n == 0:
                    continue  # the warm-up
                for row in rows:
                    results.setdefault(row.key, []).append(row)
        finally:
            await ctx.close()
    print("| row | median ms | baseline ms (median) | ratio (median of rounds) | by round |")
    print("|---|---|---|---|---|")
    for got in results.values():
        label = got[0].label
        values = [r.value for r in got if r.value is not None]
        if not values:
            print(f"| {label} | not measured ({got[0].note}) | | | |")
            continue
        pairs = [(r.value, r.baseline) for r in got if r.value is not None and r.baseline]
        ratios = [v / b for v, b in pairs]
        base = f"{statistics.median(b for _, b in pairs):.3f}" if pairs else ""
        ratio = f"{statistics.median(ratios):.2f}x" if ratios else ""
        each = " / ".join(f"{r:.2f}" for r in ratios)
        print(f"| {label} | {statistics.median(values):.3f} | {base} | {ratio} | {each} |")


if __name__ == "__main__":
    asyncio.run(main())
