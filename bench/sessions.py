"""Session cost and sweep pauses, in process.

- bytes per session on an already-loaded schema (target <= 20 KB): N sessions each load
  the same folder; tracemalloc measures what they add beyond the first;
- the longest event-loop pause while sweeping 100k expired sessions (target <= 20 ms),
  next to a baseline pause of the same ticker with nothing to sweep.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc

from common import PROTOS

from connectrpc_catalog.app import AppConfig, create_app
from connectrpc_catalog.registry import Registry
from connectrpc_catalog.sources.files import load_path

N = 5_000
SWEEP = 100_000


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def per_session_bytes() -> tuple[float, float]:
    app = create_app(AppConfig())
    first, _ = app.manager.get_or_create(None)
    schema = await load_path(app.loader.context, str(PROTOS))
    assert isinstance(first.registry, Registry)
    await first.registry.add(schema)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states = []
    for _ in range(N):
        state, _ = app.manager.get_or_create(None)
        again = await load_path(app.loader.context, str(PROTOS))  # the real path: a cache hit
        assert isinstance(state.registry, Registry)
        await state.registry.add(again)
        states.append(state)
    loaded = (tracemalloc.get_traced_memory()[0] - before) / N
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(N):
        states.append(app.manager.get_or_create(None)[0])
    empty = (tracemalloc.get_traced_memory()[0] - before) / N
    tracemalloc.stop()
    await app.shutdown()
    return loaded, empty


async def longest_pause(work: bool) -> float:
    clock = Clock()
    app = create_app(AppConfig(session_ttl=60, clock=clock))
    for _ in range(SWEEP):
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
        assert swept == SWEEP
    else:
        await asyncio.sleep(0.5)
    stop.set()
    await task
    await app.shutdown()
    return worst * 1000


async def main() -> None:
    loaded, empty = await per_session_bytes()
    idle = await longest_pause(work=False)
    sweep = await longest_pause(work=True)
    print("| measure | value | target |")
    print("|---|---|---|")
    print(
        f"| bytes per session, schema already loaded ({N} sessions) | {loaded:,.0f} | <= 20,480 |"
    )
    print(f"| bytes per empty session | {empty:,.0f} | |")
    print(f"| longest loop pause, idle ticker (baseline) | {idle:.1f} ms | |")
    print(f"| longest loop pause, sweeping {SWEEP:,} sessions | {sweep:.1f} ms | <= 20 ms |")


if __name__ == "__main__":
    asyncio.run(main())
