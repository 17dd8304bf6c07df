"""Saved requests: the store's operations on SQLite and PostgreSQL, and what a run adds
to a call. Standalone: `.venv/bin/python bench/saved.py` (PostgreSQL at
CATALOG_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test, is skipped
when absent). Prints one line per database and one for the run; times are for this
machine at the time, so compare the ratios of one run.

In `bench/run.py`, `scenario()` gives the `saved.*` rows each round (bench/common.py's
interface): SaveRequest one at a time and 20 at once into one collection (the
collection's lock makes them take turns: its baseline is the same 20 one after the
other), GetCollection, per database, and a saved request's run against a bare
`invoke_stream` of the same call. The databases, the demo server and the runner are
made in the first round and kept in `ctx.state`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from common import Ctx, Row

from connectrpc_catalog.base import Base
from connectrpc_catalog.demo import demo_source
from connectrpc_catalog.demo.weather import start
from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import ANONYMOUS
from connectrpc_catalog.invocation import CallLimits, invoke_stream
from connectrpc_catalog.loading import Loader
from connectrpc_catalog.registry import Registry
from connectrpc_catalog.saved.authhelpers import TokenCache
from connectrpc_catalog.saved.files import export_files, import_files
from connectrpc_catalog.saved.run import Runner
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import Store
from connectrpc_catalog.saved.variables import Resolved
from connectrpc_catalog.sources.compiler import Compiler
from connectrpc_catalog.sources.core import Context
from connectrpc_catalog.transports import Invoker

PG = os.environ.get("CATALOG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
N = 200


def _saved(cid: str, i: int) -> pb.SavedRequest:
    return pb.SavedRequest(
        collection_id=cid,
        name=f"request {i}",
        service="weather.v1.WeatherService",
        method="GetCurrentConditions",
        endpoint="{{host}}",
        transport=catalog_pb.Transport.GRPC,
        request_messages_json=['{"location": {"city": "{{city}}"}}'],
        assertions=[
            pb.Assertion(kind="status", op="eq", value="OK"),
            pb.Assertion(kind="field", path="$.placeName", op="eq", value='"Lisbon"'),
        ],
    )


async def _ms(n: int, work: object) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await work()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000 / n


async def store_ops(url: str, label: str) -> None:
    t = time.perf_counter()
    store = await Store.open(url, Sealer("bench passphrase of 16+"))
    opened = (time.perf_counter() - t) * 1000
    coll = await store.save_collection(ANONYMOUS, pb.SaveCollectionRequest(name="bench"))
    counter = iter(range(10**9))
    save = await _ms(N, lambda: store.save_request(ANONYMOUS, _saved(coll.id, next(counter))))
    get = await _ms(20, lambda: store.get_collection(ANONYMOUS, coll.id))
    listing = await _ms(50, lambda: store.list_collections(ANONYMOUS))
    info, reqs, envs = await store.get_collection(ANONYMOUS, coll.id)
    files = export_files(info, reqs, envs)
    t = time.perf_counter()
    await store.import_collection(ANONYMOUS, "", import_files(files))
    imported = (time.perf_counter() - t) * 1000
    await store.close()
    print(
        f"{label}: open+migrate {opened:.0f} ms; SaveRequest {save:.2f} ms; GetCollection "
        f"({N} requests) {get:.1f} ms; ListCollections {listing:.2f} ms; import {N} "
        f"{imported:.0f} ms"
    )


async def postgres() -> None:
    try:
        import asyncpg

        admin = await asyncpg.connect(PG.replace("postgresql://", "postgres://"), timeout=5)
    except Exception as exc:
        print(f"PostgreSQL: skipped ({type(exc).__name__})")
        return
    name = f"saved_bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await store_ops(f"{PG.rsplit('/', 1)[0]}/{name}", "PostgreSQL")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run_overhead() -> None:
    demo = start("127.0.0.1", 0)
    cache, compiler = SchemaCache(), Compiler()
    loader = Loader(Context(cache, compiler))
    invoker = Invoker()
    try:
        source = demo_source(demo)
        registry = Registry(Base(await loader.load(source.kind, source.given())), cache)
        runner = Runner(
            registry=registry, invoker=invoker, limits=CallLimits(), tokens=TokenCache()
        )
        saved = _saved("", 0)
        env = Resolved(variables={"host": demo.address, "city": "Lisbon"})
        bare = catalog_pb.InvokeStreamRequest(
            service=saved.service,
            method=saved.method,
            endpoint=demo.address,
            transport=catalog_pb.Transport.GRPC,
            request_messages_json=['{"location": {"city": "Lisbon"}}'],
        )

        async def direct() -> None:
            async for _ in invoke_stream(registry, invoker, bare, CallLimits()):
                pass

        async def run() -> None:
            await runner.run(saved, env)

        rounds: dict[str, list[float]] = {"direct": [], "run": []}
        for i in range(6):  # round 0 warms up
            for name, work in (("direct", direct), ("run", run)):
                took = await _ms(200, work)
                if i:
                    rounds[name].append(took)
        d, r = statistics.median(rounds["direct"]), statistics.median(rounds["run"])
        print(
            f"run: invoke_stream {d:.3f} ms/call; a saved request's run (2 variables, "
            f"2 assertions) {r:.3f} ms/call; ratio {r / d:.2f}"
        )
    finally:
        await invoker.close()
        await loader.close()
        await compiler.close()
        demo.stop()


# --- bench/run.py's scenario ---------------------------------------------------------


async def _stores(ctx: Ctx) -> dict[str, Store]:
    """The SQLite store, and the PostgreSQL one when the server answers (made once)."""
    stores: dict[str, Store] | None = ctx.state.get("saved.stores")
    if stores is not None:
        return stores
    stores = ctx.state["saved.stores"] = {}
    sealer = Sealer("bench passphrase of 16+")
    stores["sqlite"] = await Store.open(f"sqlite:///{ctx.tmp / 'saved-bench.db'}", sealer)
    ctx.at_exit(stores["sqlite"].close)
    try:
        import asyncpg

        admin = await asyncpg.connect(PG.replace("postgresql://", "postgres://"), timeout=5)
    except Exception as exc:
        ctx.note(f"bench/saved.py: PostgreSQL rows not measured ({type(exc).__name__})")
        return stores
    name = f"saved_bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    stores["postgresql"] = await Store.open(f"{PG.rsplit('/', 1)[0]}/{name}", sealer)

    async def drop() -> None:
        await stores["postgresql"].close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    ctx.at_exit(drop)
    return stores


async def _store_rows(store: Store, db: str, n: int) -> list[Row]:
    coll = await store.save_collection(ANONYMOUS, pb.SaveCollectionRequest(name="bench"))
    counter = iter(range(10**9))

    async def save() -> None:
        await store.save_request(ANONYMOUS, _saved(coll.id, next(counter)))

    one = await _ms(n, save)
    start = time.perf_counter()
    for _ in range(20):
        await save()
    serial = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    await asyncio.gather(*(save() for _ in range(20)))
    together = (time.perf_counter() - start) * 1000
    get = await _ms(10, lambda: store.get_collection(ANONYMOUS, coll.id))
    held = n + 40
    return [
        Row(f"saved.save.{db}", one),
        Row(f"saved.concurrent.{db}", together, baseline=serial),
        Row(f"saved.get.{db}", get, note=f"{held} requests"),
    ]


async def _run_pair(ctx: Ctx) -> tuple[Callable[[], Awaitable[None]], ...]:
    """A bare invoke_stream of the demo's unary call and the saved request's run of it."""
    pair: tuple[Callable[[], Awaitable[None]], ...] | None = ctx.state.get("saved.run")
    if pair is not None:
        return pair
    demo = await asyncio.to_thread(start, "127.0.0.1", 0)
    cache, compiler = SchemaCache(), Compiler()
    loader = Loader(Context(cache, compiler))
    invoker = Invoker()

    async def close() -> None:
        await invoker.close()
        await loader.close()
        await compiler.close()
        await asyncio.to_thread(demo.stop)

    ctx.at_exit(close)
    source = demo_source(demo)
    registry = Registry(Base(await loader.load(source.kind, source.given())), cache)
    runner = Runner(registry=registry, invoker=invoker, limits=CallLimits(), tokens=TokenCache())
    saved = _saved("", 0)
    env = Resolved(variables={"host": demo.address, "city": "Lisbon"})
    bare = catalog_pb.InvokeStreamRequest(
        service=saved.service,
        method=saved.method,
        endpoint=demo.address,
        transport=catalog_pb.Transport.GRPC,
        request_messages_json=['{"location": {"city": "Lisbon"}}'],
    )

    async def direct() -> None:
        async for _ in invoke_stream(registry, invoker, bare, CallLimits()):
            pass

    async def run() -> None:
        await runner.run(saved, env)

    pair = ctx.state["saved.run"] = (direct, run)
    return pair


async def scenario(ctx: Ctx, quick: bool) -> list[Row]:
    """One round of the `saved.*` rows (see the module's docstring)."""
    rows: list[Row] = []
    for db, store in (await _stores(ctx)).items():
        rows += await _store_rows(store, db, 30 if quick else N)
    direct, run = await _run_pair(ctx)
    bare, saved = [], []
    for _ in range(5 if quick else 20):  # interleaved: load drift hits both alike
        bare.append(await _ms(10, direct))
        saved.append(await _ms(10, run))
    rows.append(Row("saved.run", statistics.median(saved), baseline=statistics.median(bare)))
    return rows


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="saved-bench-") as tmp:
        await store_ops(f"sqlite:///{Path(tmp) / 'saved.db'}", "SQLite")
    await postgres()
    await run_overhead()


if __name__ == "__main__":
    asyncio.run(main())
