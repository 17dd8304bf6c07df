"""SessionManager: creation, refresh, expiry with a fake clock, sweep, stats, delete, close."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from connectrpc_catalog.session import BusyError, SessionLimitError, SessionManager, State


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Closable:
    """Stands for a registry or invoker and records that it was closed."""

    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def make_manager(
    clock: FakeClock, ttl: float = 60.0, max_sessions: int = 1_000_000
) -> SessionManager:
    def factory(session_id: str, now: float) -> State:
        return State(id=session_id, registry=Closable(), invoker=Closable(), now=now)

    return SessionManager(factory, ttl=ttl, clock=clock, max_sessions=max_sessions)


def test_new_session_has_random_hex_id_and_is_found_again() -> None:
    mgr = make_manager(FakeClock())
    state, sid = mgr.get_or_create(None)
    assert len(sid) == 32 and int(sid, 16) >= 0
    again, sid2 = mgr.get_or_create(sid)
    assert again is state and sid2 == sid
    assert mgr.get(sid) is state


def test_unknown_id_is_never_adopted() -> None:
    mgr = make_manager(FakeClock())
    chosen = "a" * 32
    _, sid = mgr.get_or_create(chosen)
    assert sid != chosen
    assert mgr.get(chosen) is None


def test_use_refreshes_last_used_and_postpones_expiry() -> None:
    clock = FakeClock()
    mgr = make_manager(clock, ttl=60)
    state, sid = mgr.get_or_create(None)
    clock.now += 50
    assert mgr.get(sid) is state
    assert state.last_used == clock.now
    clock.now += 50  # 100 s after creation, 50 s after last use
    assert mgr.get(sid) is state
    assert mgr.expires_at(state) == clock.now + 60


def test_expired_session_is_never_returned_even_before_sweep() -> None:
    clock = FakeClock()
    mgr = make_manager(clock, ttl=60)
    state, sid = mgr.get_or_create(None)
    clock.now += 61
    assert mgr.get(sid) is None
    fresh, new_sid = mgr.get_or_create(sid)
    assert new_sid != sid and fresh is not state


async def test_sweep_removes_expired_and_closes_what_they_held() -> None:
    clock = FakeClock()
    mgr = make_manager(clock, ttl=60)
    old, old_id = mgr.get_or_create(None)
    clock.now += 30
    young, young_id = mgr.get_or_create(None)
    clock.now += 31  # old idle 61 s, young 31 s
    assert await mgr.sweep() == 1
    assert mgr.get(old_id) is None and mgr.get(young_id) is young
    assert old.invoker.closed == 1 and old.registry.closed == 1  # type: ignore[attr-defined]
    assert young.invoker.closed == 0  # type: ignore[attr-defined]


def test_stats_report_count_and_extremes() -> None:
    clock = FakeClock()
    mgr = make_manager(clock, ttl=60)
    assert mgr.get_stats().active_sessions == 0
    assert mgr.get_stats().oldest_session is None
    first, _ = mgr.get_or_create(None)
    clock.now += 10
    last, _ = mgr.get_or_create(None)
    stats = mgr.get_stats()
    assert stats.active_sessions == 2
    assert stats.oldest_session == first.created_at
    assert stats.newest_session == last.created_at
    clock.now += 55  # first idle 65 s: expired, not counted even before a sweep
    assert mgr.get_stats().active_sessions == 1


async def test_delete_closes_in_background_and_close_closes_all() -> None:
    mgr = make_manager(FakeClock())
    mgr.start()
    a, a_id = mgr.get_or_create(None)
    b, _ = mgr.get_or_create(None)
    assert mgr.delete(a_id) is True
    assert mgr.delete(a_id) is False
    for _ in range(100):
        if a.invoker.closed:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    assert a.invoker.closed == 1  # type: ignore[attr-defined]
    await mgr.close()
    assert b.invoker.closed == 1  # type: ignore[attr-defined]
    assert len(mgr) == 0
    with pytest.raises(RuntimeError):
        mgr.get_or_create(None)


async def test_background_sweep_runs_on_its_interval() -> None:
    clock = FakeClock()

    def factory(session_id: str, now: float) -> State:
        return State(id=session_id, registry=Closable(), invoker=Closable(), now=now)

    mgr = SessionManager(factory, ttl=60, cleanup_interval=0.05, clock=clock)
    mgr.start()
    state, _ = mgr.get_or_create(None)
    clock.now += 61
    for _ in range(200):
        if state.invoker.closed:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    assert state.invoker.closed == 1  # type: ignore[attr-defined]
    assert len(mgr) == 0
    await mgr.close()


def test_thousands_of_concurrent_get_or_create_from_threads() -> None:
    mgr = make_manager(FakeClock())
    shared, shared_id = mgr.get_or_create(None)
    barrier = threading.Barrier(8)

    def worker(_: int) -> list[str]:
        barrier.wait()
        ids = []
        for i in range(500):
            state, sid = mgr.get_or_create(shared_id if i % 2 else None)
            if i % 2:
                assert state is shared
            ids.append(sid)
        return ids

    with ThreadPoolExecutor(8) as pool:
        results = [sid for ids in pool.map(worker, range(8)) for sid in ids]
    new_ids = {sid for sid in results if sid != shared_id}
    assert len(new_ids) == 8 * 250  # every new session got its own id
    assert len(mgr) == 8 * 250 + 1


async def test_concurrent_tasks_share_one_session() -> None:
    mgr = make_manager(FakeClock())
    _, sid = mgr.get_or_create(None)

    async def use() -> str:
        await asyncio.sleep(0)
        return mgr.get_or_create(sid)[1]

    ids = await asyncio.gather(*(use() for _ in range(2000)))
    assert set(ids) == {sid}


async def test_sweep_of_100k_sessions_never_blocks_the_loop_long() -> None:
    clock = FakeClock()
    mgr = make_manager(clock, ttl=60)
    for _ in range(100_000):
        mgr.get_or_create(None)
    clock.now += 61
    gaps: list[float] = []
    done = asyncio.Event()

    async def watch() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    watcher = asyncio.create_task(watch())
    swept = await mgr.sweep()
    done.set()
    await watcher
    assert swept == 100_000 and len(mgr) == 0
    # The sweep yields between batches: it must have let the loop run many times.
    assert len(gaps) >= 20


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        make_manager(FakeClock(), ttl=0)


async def test_end_closes_before_returning() -> None:
    mgr = make_manager(FakeClock())
    state, sid = mgr.get_or_create(None)
    assert await mgr.end(sid) is True
    assert state.invoker.closed == 1  # type: ignore[attr-defined]
    assert await mgr.end(sid) is False
    assert mgr.get(sid) is None


def test_new_sessions_past_the_cap_are_refused_until_one_expires() -> None:
    clock = FakeClock()
    mgr = make_manager(clock, ttl=60, max_sessions=3)
    states = [mgr.get_or_create(None)[0] for _ in range(3)]
    for state in states:
        state.used = True  # each loaded something
    ids = [state.id for state in states]
    with pytest.raises(SessionLimitError) as info:
        mgr.get_or_create(None)
    assert "--max-sessions" in str(info.value)
    assert mgr.get_or_create(ids[0])[1] == ids[0]  # existing sessions keep working
    clock.now += 30
    mgr.get_or_create(ids[0])
    clock.now += 31  # ids[1] and ids[2] are now idle past the TTL
    assert mgr.get_or_create(None)[1] not in ids
    assert len(mgr) == 2


def test_a_session_counts_calls_in_progress_per_kind() -> None:
    state = make_manager(FakeClock()).get_or_create(None)[0]
    with state.hold("streams", 2), state.hold("streams", 2):
        with pytest.raises(BusyError), state.hold("streams", 2):
            pass
        with state.hold("loads", 1):
            pass
    with state.hold("streams", 2), state.hold("streams", 2):
        pass  # released when the calls ended


def test_at_the_cap_the_oldest_blank_session_makes_room() -> None:
    clock = FakeClock()
    mgr = make_manager(clock, ttl=60, max_sessions=3)
    kept = mgr.get_or_create(None)[0]
    kept.used = True  # it loaded something
    blank = [mgr.get_or_create(None)[1] for _ in range(2)]
    newest = mgr.get_or_create(None)[1]  # a flood of blank sessions cannot lock others out
    assert mgr.get(kept.id) is kept and mgr.get(newest) is not None
    assert mgr.get(blank[0]) is None and mgr.get(blank[1]) is not None
    for state in (mgr.get(blank[1]), mgr.get(newest)):
        assert state is not None
        state.used = True
    with pytest.raises(SessionLimitError):
        mgr.get_or_create(None)  # every session holds something: refused
