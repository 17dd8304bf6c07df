"""The limits per identity hold across catalog processes sharing one Redis:
`--sessions-per-identity`, `--calls-per-minute` and `--streams-per-identity` are reached
by requests spread over two processes (A and B, the real CLI, sign-in by proxy) and the
next request is refused in either, naming the flag; the stream lease of a killed process
stops counting once it lapses; with Redis stopped the limited RPCs are `unavailable`,
never unlimited, and they recover."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis

from connectrpc_catalog.counters import RedisCounters, identity_hash
from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.identity import Identity
from connectrpc_catalog.policy import IdentityLimits, LimitExceeded
from connectrpc_catalog.session_store import Record, RedisStore, StoreUnavailable
from tests.catalog_server import run_cli
from tests.connect_stream import stream_frames
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.schema import PROTO_DIR, SERVICE

from .conftest import API, REDIS_DB, REDIS_HOST, REDIS_PORT, OwnRedis, catalogs, store_args

pytest_plugins = ["tests.upstream.fixtures"]

PROXY = ("--auth", "proxy", "--trusted-proxy", "127.0.0.1/32")
CALLS = 4
LEASE_S = 3.0


def limits(calls: int = CALLS) -> tuple[str, ...]:
    return (
        "--sessions-per-identity",
        "2",
        "--calls-per-minute",
        str(calls),
        "--streams-per-identity",
        "1",
        "--stream-lease",
        f"{LEASE_S}s",
    )


LIMITS = limits()


def who(name: str) -> dict[str, str]:
    return {"x-forwarded-email": name}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def post(
    http: httpx.AsyncClient, url: str, method: str, body: dict[str, Any], person: str, sid: str = ""
) -> httpx.Response:
    headers = {**who(person), **({"x-session-id": sid} if sid else {})}
    return await http.post(url + API + method, json=body, headers=headers)


def refused(r: httpx.Response, flag: str) -> None:
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.json()["code"] == "resource_exhausted", r.text
    assert flag in r.json()["message"], r.text


def unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.json()["code"] == "unavailable", r.text


async def refusals(http: httpx.AsyncClient, url: str, reason: str) -> float:
    text = (await http.get(url + "/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("catalog_refusals_total{") and f'reason="{reason}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def loaded(http: httpx.AsyncClient, url: str, person: str) -> str:
    r = await post(http, url, "LoadProtos", {"protoPath": str(PROTO_DIR)}, person)
    assert r.status_code == 200 and r.json()["success"], r.text
    sid: str = r.headers["x-session-id"]
    return sid


def echo(upstream: GrpcServer) -> dict[str, Any]:
    return {
        "endpoint": upstream.address,
        "service": SERVICE,
        "method": "Echo",
        "transport": "TRANSPORT_GRPC",
        "requestJson": json.dumps({"message": "hi"}),
    }


def server_stream(upstream: GrpcServer, count: int, interval_ms: int = 0) -> dict[str, Any]:
    return {
        "endpoint": upstream.address,
        "service": SERVICE,
        "method": "ServerStream",
        "transport": "TRANSPORT_GRPC",
        "requestMessagesJson": [
            json.dumps({"message": "s", "count": count, "intervalMs": interval_ms})
        ],
    }


@contextlib.asynccontextmanager
async def streaming(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], person: str, sid: str
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """InvokeStream: its frames as they come (the last is `{"error": …}` if it failed)."""
    data = json.dumps(body).encode()
    headers = {"content-type": "application/connect+json", "x-session-id": sid, **who(person)}
    async with http.stream(
        "POST",
        url + API + "InvokeStream",
        content=struct.pack(">BI", 0, len(data)) + data,
        headers=headers,
    ) as r:
        assert r.status_code == 200, r.status_code
        yield stream_frames(r)


async def whole_stream(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], person: str, sid: str
) -> list[dict[str, Any]]:
    async with streaming(http, url, body, person, sid) as frames:
        return [f async for f in frames]


def stream_refused(frames: list[dict[str, Any]], flag: str) -> bool:
    """Whether the stream was refused by the limit `flag` names (False: it ran)."""
    if frames and "error" in frames[-1]:
        error = frames[-1]["error"]
        assert error["code"] == "resource_exhausted" and flag in error["message"], error
        return True
    assert frames and "status" in frames[-1], frames[-2:]
    return False


@pytest.fixture
def sync_redis() -> Iterator[redis.Redis]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    yield client
    client.close()


def redis_ms(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


# -- sessions ----------------------------------------------------------------------------


def _files(n: int) -> dict[str, dict[str, str]]:
    text = f'syntax = "proto3";\npackage burst{n}.v1;\nservice B{n} {{ rpc P(M) returns (M); }}\n'
    return {"files": {f"burst{n}/v1/b.proto": text + "message M {}\n"}}


async def test_sessions_per_identity_across_processes(
    redis_url: str, prefix: str, http: httpx.AsyncClient
) -> None:
    with catalogs(2, *store_args(redis_url, prefix, *PROXY, *LIMITS)) as (a, b):
        alice = "alice@x"
        sids = []
        for url in (a, b):  # one session made in each process
            r = await post(http, url, "GetSession", {}, alice)
            assert r.status_code == 200, r.text
            sids.append(r.headers["x-session-id"])
        for url in (a, b):  # the third is refused in either
            before = await refusals(http, url, "sessions_per_identity")
            refused(await post(http, url, "GetSession", {}, alice), "--sessions-per-identity")
            after = await refusals(http, url, "sessions_per_identity")
            assert after == before + 1
        for url in (b, a):  # both still serve, in either process (each restored in the other)
            for sid in sids:
                r = await post(http, url, "GetSession", {}, alice, sid)
                assert r.status_code == 200 and r.headers["x-session-id"] == sid, r.text
        r = await post(http, b, "GetSession", {}, "bob@x")  # others are not held up
        assert r.status_code == 200, r.text

        # Closing one (in B, for A's session) frees a place in every process, once.
        r = await post(http, b, "CloseSession", {}, alice, sids[0])
        assert r.status_code == 200 and r.json()["closed"], r.text
        r = await post(http, a, "GetSession", {}, alice)
        assert r.status_code == 200, r.text
        refused(await post(http, b, "GetSession", {}, alice), "--sessions-per-identity")

        # A burst spread over both processes at once, each request compiling its own
        # schema (so every one has checked the count before any is written): exactly the
        # limit gets through, the rest refused at the check or when the store writes them.
        burst = await asyncio.gather(
            *(
                post(http, (a, b)[i % 2], "LoadProtos", {"protoFiles": _files(i)}, "carol@x")
                for i in range(10)
            )
        )
        made = [r for r in burst if r.status_code == 200]
        assert len(made) == 2, [(r.status_code, r.text[:80]) for r in burst]
        for r in burst:
            if r.status_code != 200:
                refused(r, "--sessions-per-identity")
        for r in made:  # what was made is usable in both processes
            for url in (a, b):
                sid = r.headers["x-session-id"]
                again = await post(http, url, "GetSession", {}, "carol@x", sid)
                assert again.headers["x-session-id"] == sid


async def test_the_store_counts_sessions_by_last_use_within_the_ttl(
    redis_url: str, prefix: str
) -> None:
    """The create script's count: sessions used within the TTL, refreshed by touch,
    released by end; a session written twice counts once (clock values given, no waits)."""
    ttl = 100.0
    store = RedisStore(redis_url, prefix=prefix, ttl=ttl, cache=SchemaCache(4), clock=time.time)
    await store.start(_Events())
    owner, t0 = "proxy:frank@x", time.time()

    async def create(sid: str, now: float) -> bool:
        record = Record(id=sid, owner=owner, created=now)
        return await store.create(record, now, [], max_per_owner=2)

    try:
        assert await create("a" * 32, t0) and await create("b" * 32, t0 + 1)
        assert await store.owned(owner, t0 + 2) == 2
        assert not await create("c" * 32, t0 + 2)  # the third: refused, nothing written
        assert isinstance(await store.touch("c" * 32, t0 + 2), str)
        assert await create("a" * 32, t0 + 2)  # written again: still one of the two
        assert await store.owned("proxy:someone-else", t0 + 2) == 0
        # used again at t0 + 50 (touch): b still counts at t0 + 120, a (last used t0 + 2) not
        assert not isinstance(await store.touch("b" * 32, t0 + 50), str)
        assert await store.owned(owner, t0 + ttl + 20) == 1
        assert await create("c" * 32, t0 + ttl + 20)  # a's place, freed by the cutoff
        assert not await create("d" * 32, t0 + ttl + 21)
        assert await store.end("b" * 32, owner)  # CloseSession frees a place at once
        assert await create("d" * 32, t0 + ttl + 22)
    finally:
        await store.close()


# -- calls -------------------------------------------------------------------------------


async def test_calls_per_minute_across_processes(
    redis_url: str, prefix: str, http: httpx.AsyncClient, grpc_upstream: GrpcServer
) -> None:
    with catalogs(2, *store_args(redis_url, prefix, *PROXY, *LIMITS)) as (a, b):
        bob = "bob@x"
        sid = await loaded(http, a, bob)
        for i in range(CALLS):  # spread: A, B, A, B
            r = await post(http, (a, b)[i % 2], "InvokeGRPC", echo(grpc_upstream), bob, sid)
            assert r.status_code == 200 and r.json()["success"], r.text
        for url in (a, b):
            before = await refusals(http, url, "calls_per_minute")
            r = await post(http, url, "InvokeGRPC", echo(grpc_upstream), bob, sid)
            refused(r, "--calls-per-minute")
            assert await refusals(http, url, "calls_per_minute") == before + 1
        dave = "dave@x"  # another identity has its own count
        sid_d = await loaded(http, b, dave)
        r = await post(http, a, "InvokeGRPC", echo(grpc_upstream), dave, sid_d)
        assert r.status_code == 200 and r.json()["success"], r.text


# -- streams -----------------------------------------------------------------------------


def _worker(supervisor: subprocess.Popen[str]) -> int:
    """The worker process of a `--workers 1` catalog (the supervisor's one child)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        if len(pids) == 1:
            return pids[0]
        time.sleep(0.1)
    raise AssertionError(f"catalog {supervisor.pid} has no single worker")


async def test_stream_leases_across_processes_and_a_killed_process(
    redis_url: str,
    prefix: str,
    http: httpx.AsyncClient,
    grpc_upstream: GrpcServer,
    sync_redis: redis.Redis,
) -> None:
    carol = "carol@x"
    leases = f"{prefix}:lim:t:{identity_hash('proxy:' + carol)}"
    args = store_args(redis_url, prefix, *PROXY, *limits(calls=1000))  # streams are calls too
    with run_cli(*args) as (a, proc_a), run_cli(*args) as (b, _proc_b):
        sid = await loaded(http, a, carol)
        long = server_stream(grpc_upstream, count=1000, interval_ms=50)  # 50 s unless stopped
        short = server_stream(grpc_upstream, count=2)
        started = asyncio.Event()

        async def hold() -> None:
            with contextlib.suppress(httpx.HTTPError, AssertionError):
                async with streaming(http, a, long, carol, sid) as frames:
                    async for frame in frames:
                        if "message" in frame:
                            started.set()

        holder = asyncio.create_task(hold())
        try:
            await asyncio.wait_for(started.wait(), 30)
            for url in (b, a):  # one stream at once, whichever process asks
                assert stream_refused(
                    await whole_stream(http, url, short, carol, sid), "--streams-per-identity"
                )
            (member, first_deadline), *others = sync_redis.zrange(leases, 0, -1, withscores=True)
            assert not others

            # The lease is renewed while the stream runs: past its first deadline it counts.
            for _ in range(600):  # bounded: 60 s
                if redis_ms(sync_redis) > first_deadline + 100:
                    break
                await asyncio.sleep(0.1)
            renewed = sync_redis.zscore(leases, member)
            assert renewed is not None and renewed > first_deadline
            assert stream_refused(
                await whole_stream(http, b, short, carol, sid), "--streams-per-identity"
            )

            # A's worker dies with the stream open: nothing releases its lease ...
            os.kill(_worker(proc_a), signal.SIGKILL)
            await asyncio.wait_for(holder, 30)
            lapses = sync_redis.zscore(leases, member)
            assert lapses is not None
            frames = await whole_stream(http, b, short, carol, sid)
            if redis_ms(sync_redis) < lapses:  # asked before the lease lapsed: it counted
                assert stream_refused(frames, "--streams-per-identity")
            # ... until it lapses: then B admits a stream (bounded wait, no fixed time).
            deadline = time.monotonic() + 10 * LEASE_S + 30
            while stream_refused(frames, "--streams-per-identity"):
                assert time.monotonic() < deadline, "the dead process's lease never lapsed"
                await asyncio.sleep(0.2)
                frames = await whole_stream(http, b, short, carol, sid)
            assert redis_ms(sync_redis) >= lapses
            assert sync_redis.zscore(leases, member) is None  # trimmed, not renewed
            # the admitted stream released its own lease when it ended
            for _ in range(600):  # bounded: 30 s
                if not sync_redis.zcard(leases):
                    break
                await asyncio.sleep(0.05)
            assert sync_redis.zcard(leases) == 0
            assert not stream_refused(await whole_stream(http, b, short, carol, sid), "-")
        finally:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await holder


# -- Redis away --------------------------------------------------------------------------


async def test_redis_stopped_limits_are_unavailable_then_recover(
    own_redis: OwnRedis, http: httpx.AsyncClient, grpc_upstream: GrpcServer
) -> None:
    erin = "erin@x"
    with catalogs(2, *store_args(own_redis.url, "fleet", *PROXY, *LIMITS)) as (a, b):
        sid = await loaded(http, a, erin)
        first_call = time.monotonic()
        for url in (a, b):
            r = await post(http, url, "InvokeGRPC", echo(grpc_upstream), erin, sid)
            assert r.status_code == 200 and r.json()["success"], r.text

        own_redis.stop()  # SHUTDOWN SAVE: the counts are on disk
        for url in (a, b):
            unavailable(await post(http, url, "InvokeGRPC", echo(grpc_upstream), erin, sid))
            unavailable(await post(http, url, "GetSession", {}, erin))  # a new session
            data = json.dumps(server_stream(grpc_upstream, 2)).encode()
            r = await http.post(
                url + API + "InvokeStream",
                content=struct.pack(">BI", 0, len(data)) + data,
                headers={"content-type": "application/connect+json", "x-session-id": sid}
                | who(erin),
            )
            assert r.status_code == 503 and b"unavailable" in r.content, r.content[:200]

        own_redis.start()
        r = await post(http, b, "InvokeGRPC", echo(grpc_upstream), erin, sid)
        deadline = time.monotonic() + 60
        while r.status_code == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            r = await post(http, b, "InvokeGRPC", echo(grpc_upstream), erin, sid)
        assert r.status_code == 200 and r.json()["success"], r.text
        done = 3  # two before the stop, this one
        while True:
            r = await post(http, (a, b)[done % 2], "InvokeGRPC", echo(grpc_upstream), erin, sid)
            if r.status_code != 200:
                refused(r, "--calls-per-minute")
                break
            done += 1
            assert done <= 2 * CALLS, "never refused: the limit was lost"
        if time.monotonic() - first_call < 55:  # the calls before the stop still count
            assert done == CALLS
        # sessions and streams are counted again too
        r = await post(http, a, "GetSession", {}, erin)
        assert r.status_code == 200, r.text
        refused(await post(http, b, "GetSession", {}, erin), "--sessions-per-identity")


class _Events:
    """StoreEvents of a store used without a catalog around it."""

    def session_ended(self, session_id: str, reason: str) -> None: ...

    def session_changed(self, session_id: str) -> None: ...

    def recheck_all(self) -> None: ...

    def base_reloaded(self) -> None: ...

    async def relayed(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return
        yield {}


async def test_the_counters_themselves_answer_unavailable(own_redis: OwnRedis) -> None:
    """Not only the session middleware: each count refuses while Redis is away."""
    store = RedisStore(own_redis.url, prefix="units", ttl=60, cache=SchemaCache(4), clock=time.time)
    await store.start(_Events())
    counters = RedisCounters(store, lease=LEASE_S)
    limits = IdentityLimits(calls_per_minute=2, streams=1, counters=counters)
    x, y = Identity(name="x", via="proxy"), Identity(name="y", via="proxy")
    try:
        await limits.take_call(x)
        await limits.take_call(x)
        with pytest.raises(LimitExceeded) as calls:
            await limits.take_call(x)
        assert calls.value.limit == "calls_per_minute"
        lease = await limits.open_stream(x)
        with pytest.raises(LimitExceeded) as streams:
            await limits.open_stream(x)
        assert streams.value.limit == "streams_per_identity"
        await limits.close_stream(x, lease)
        lease = await limits.open_stream(x)  # released: there is room again

        own_redis.stop()
        for attempt in (limits.take_call(y), limits.open_stream(y), store.owned("proxy:y", 0.0)):
            with pytest.raises(StoreUnavailable):  # y is under every limit: never admitted
                await attempt
        await limits.close_stream(x, lease)  # never fails (the lease lapses by itself)

        own_redis.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                await limits.take_call(y)
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        assert await store.owned("proxy:y", time.time()) == 0
    finally:
        await counters.close()
        await store.close()
