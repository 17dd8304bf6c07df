"""The counts behind the per-identity limits (`--calls-per-minute`,
`--streams-per-identity`): one `LimitCounters` Protocol and its two rows.

`MemoryCounters` (no `--session-store`) counts in this process's memory: a deque of
call times per identity (a sliding 60 s window) and a number of open streams per
identity; nothing leaves the process, nothing can fail.

`RedisCounters` (`--session-store redis://…`) counts for every process sharing the
store, through `RedisStore` (its connection, its `StoreUnavailable` when Redis does not
answer, its script mechanism), one atomic Lua script per check, clocked by Redis's own
`TIME` so processes on machines whose clocks differ count the same window:

- `P:lim:c:<h>` — a sorted set of one identity's calls of the last 60 s (member: a
  unique call id, score: when, ms); a call trims what is older, counts, and adds itself
  only when under the limit (a sliding window, as in memory); the key expires 60 s after
  the last call. One round trip per call.
- `P:lim:t:<h>` — a sorted set of one identity's stream leases (member: `<node>-<random>`,
  score: the lease's deadline, ms); opening trims lapsed leases, counts, adds; closing
  removes; every process renews its own leases every lease/3 (one script for all), so
  the streams of a process that died stop counting once their lease lapses
  (`--stream-lease`).

`P` is `--session-store-prefix`, `<h>` the SHA-1 of the identity key (no names in key
names, bounded length). Sessions per identity are counted by the session store itself
(`P:lim:s:<h>`, maintained by its create/touch/end scripts: see session_store.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .session_store import RedisStore, SessionStore

__all__ = ["LimitCounters", "MemoryCounters", "RedisCounters", "counters_for", "identity_hash"]

_log = logging.getLogger(__name__)

WINDOW_S = 60.0
"""The window of `--calls-per-minute`."""
_MAX_IDENTITIES = 100_000
"""Identities whose calls memory keeps at once (the idlest is forgotten past it)."""
_RENEW_BATCH = 500
"""Leases renewed per script."""
_WHAT = "the limits per person (calls per minute, streams at once) cannot be checked"
"""What a StoreUnavailable says cannot be done."""


def identity_hash(key: str) -> str:
    """What an identity's Redis keys are named by (Lua's `redis.sha1hex` gives the same)."""
    return hashlib.sha1(key.encode()).hexdigest()


class LimitCounters(Protocol):
    """Where the per-identity counts live (policy.IdentityLimits asks, and refuses)."""

    shared: bool
    """Whether the counts are those of every process sharing a store."""

    async def take_call(self, key: str, limit: int) -> bool:
        """Count one call of identity `key` if it made fewer than `limit` in the last
        minute; whether it was counted (False: refuse it). StoreUnavailable when the
        shared store does not answer."""
        ...

    async def open_stream(self, key: str, limit: int) -> str | None:
        """Count one open stream of `key` if it has fewer than `limit`: the lease to
        close it with, or None (refuse it). StoreUnavailable when the store does not
        answer."""
        ...

    async def close_stream(self, key: str, lease: str) -> None:
        """Stop counting a stream (never fails: a lease the store did not hear about
        lapses by itself)."""
        ...

    async def close(self) -> None:
        """Stop background work (lease renewal)."""
        ...


class MemoryCounters:
    """The counts of this process only (no shared store)."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}
        self._open: dict[str, int] = defaultdict(int)

    async def take_call(self, key: str, limit: int) -> bool:
        """A sliding 60 s window of call times per identity."""
        now = self._clock()
        with self._lock:
            window = self._calls.setdefault(key, deque())
            while window and now - window[0] >= WINDOW_S:
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            if len(self._calls) > _MAX_IDENTITIES:  # bounded: forget the idlest
                self._calls.pop(next(iter(self._calls)))
            return True

    async def open_stream(self, key: str, limit: int) -> str | None:
        """A number of open streams per identity."""
        with self._lock:
            if self._open[key] >= limit:
                return None
            self._open[key] += 1
            return "m"

    async def close_stream(self, key: str, lease: str) -> None:
        """Undo `open_stream`."""
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]

    async def close(self) -> None:
        """Nothing runs in the background."""


# -- Redis --------------------------------------------------------------------------

_NOW_MS = """
if redis.replicate_commands then redis.replicate_commands() end -- TIME, then writes (Redis < 5)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_TAKE_CALL = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

_OPEN_STREAM = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local lease = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return 1
"""
)

_RENEW = (
    _NOW_MS
    + """
local lease = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', ARGV[i], now + lease, ARGV[i + 1])
  if redis.call('PTTL', ARGV[i]) < lease then redis.call('PEXPIRE', ARGV[i], lease) end
end
return 1
"""
)


class RedisCounters:
    """The counts of every process sharing `store` (see the module's docstring)."""

    shared = True

    def __init__(self, store: RedisStore, *, lease: float) -> None:
        self._store = store
        self._prefix = f"{store.prefix}:lim:"
        self._lease_ms = max(1, int(lease * 1000))
        self._window_ms = int(WINDOW_S * 1000)
        self.renew_every = max(0.05, lease / 3)
        """Seconds between two renewals of this process's leases."""
        self._take = store.script(_TAKE_CALL)
        self._open_script = store.script(_OPEN_STREAM)
        self._renew = store.script(_RENEW)
        self._leases: dict[str, str] = {}
        """This process's open leases: lease → the key of its identity's set."""
        self._renewing = asyncio.Lock()
        """Held by a renewal and by a close: a close never races a renewal's re-add."""
        self._task: asyncio.Task[None] | None = None
        self._seq = 0

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{identity_hash(key)}"

    async def take_call(self, key: str, limit: int) -> bool:
        """One script: trim the window, count, add (see the module's docstring)."""
        self._seq += 1
        member = f"{self._store.node}-{self._seq}-{secrets.token_hex(3)}"
        taken = await self._store.run(
            self._take(keys=[self._key("c", key)], args=[limit, member, self._window_ms]), _WHAT
        )
        return bool(int(taken))

    async def open_stream(self, key: str, limit: int) -> str | None:
        """One script: trim lapsed leases, count, add a lease; renewed here until closed."""
        lease = f"{self._store.node}-{secrets.token_hex(8)}"
        zset = self._key("t", key)
        opened = await self._store.run(
            self._open_script(keys=[zset], args=[limit, lease, self._lease_ms]), _WHAT
        )
        if not int(opened):
            return None
        self._leases[lease] = zset
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._renewal(), name="stream-leases"
            )
        return lease

    async def close_stream(self, key: str, lease: str) -> None:
        """Forget the lease here (no longer renewed), then remove it from the store."""
        zset = self._leases.pop(lease, None)
        if zset is None:
            return
        from .session_store import StoreUnavailable

        try:
            async with self._renewing:
                await self._store.run(self._store.redis.zrem(zset, lease), _WHAT)
        except StoreUnavailable:
            pass  # it lapses by itself within the lease

    async def _renewal(self) -> None:
        from .session_store import StoreUnavailable

        while self._leases:
            await asyncio.sleep(self.renew_every)
            try:
                async with self._renewing:
                    held = list(self._leases.items())
                    for start in range(0, len(held), _RENEW_BATCH):
                        args: list[Any] = [self._lease_ms]
                        for lease, zset in held[start : start + _RENEW_BATCH]:
                            args += [zset, lease]
                        await self._store.run(self._renew(keys=[], args=args), _WHAT)
            except StoreUnavailable:
                continue  # renewed on the next round once the store is back
            except Exception:  # the renewal must go on
                _log.exception("renewing stream leases failed")

    async def close(self) -> None:
        """Stop renewing (the leases still held lapse by themselves)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def counters_for(store: SessionStore, *, lease: float) -> LimitCounters:
    """The counters that go with a session store: shared with it when it is."""
    from .session_store import RedisStore

    if isinstance(store, RedisStore):
        return RedisCounters(store, lease=lease)
    return MemoryCounters()
