"""Where sessions live beyond one process: the `SessionStore` interface and its two stores.

`MemoryStore` (the default) is today's behaviour: the process's `SessionManager` is the
only record of its sessions, so every method is free. `RedisStore` (`--session-store
redis://…`) keeps each session's record in Redis, so any process that shares the Redis
serves any session:

- `P:s:<id>` — a hash: owner, created, last_used, and the manifest (label and content key
  of each schema the session loaded, in load order); its TTL is the session TTL,
  refreshed on use (at most once per `refresh_every` per process: a hot session does not
  cost a Redis write per request).
- `P:d:<key>` — a loaded schema's descriptor set, stored once by its content key (the
  `Schema.key` hash); its TTL is twice the session TTL and every refresh of a session
  that refers to it renews it.
- `P:x:<id>` — a closed session's tombstone (so other processes say "closed").
- `P:live` / `P:born` — sorted sets by last use and creation, for `stats` across processes.
- `P:lim:s:<h>` — the sessions of one identity (`<h>`: the SHA-1 of its key) by last use,
  kept by the create, touch and end scripts; `--sessions-per-identity` counts it (entries
  older than the TTL trimmed) inside the create script, so two processes cannot both
  create the last session allowed. The other limits' keys are in counters.py.
- `P:base` — a counter bumped by every base reload.
- channels `P:<db>:events` (session ended or changed, base reloaded) and
  `P:<db>:node:<node>` (live calls relayed to the process that owns them, and answers).

`P` is `--session-store-prefix`. Redis failures become `StoreUnavailable` (`unavailable`,
retryable); the listener task reconnects on its own and, once back, marks every cached
session to be checked again and catches up on a missed base reload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from .descriptors import Schema, SchemaCache, SchemaError
from .problems import Code, RequestError

__all__ = [
    "ManifestEntry",
    "MemoryStore",
    "Record",
    "RedisStore",
    "SessionStore",
    "StoreEvents",
    "StoreUnavailable",
    "encode_set",
    "open_store",
    "shown_url",
]

_log = logging.getLogger(__name__)

_RELAY_TIMEOUT = 10.0
"""Seconds a relayed live-call request waits for the owner's first answer."""
_RELAY_WINDOW = 256
"""Relayed answers the owner sends ahead of the asker's acknowledgements (flow control:
past it the owner stops reading the call's events, so the call's own bounds apply)."""
_ACK_TIMEOUT = 60.0
"""Seconds the owner waits for an acknowledgement before it gives the asker up."""
_RECONNECT_S = 0.5
"""Pause between two attempts to reach Redis again."""
_STATS_EVERY_S = 2.0
"""How often the cross-process session figures are re-read."""


class StoreUnavailable(RequestError):
    """The session store does not answer: a retryable `unavailable`."""

    code = Code.UNAVAILABLE


def shown_url(url: str) -> str:
    """The store URL without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path or '/0'}"
    except ValueError:
        return "the session store"


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One schema a session loaded: how (`label`, e.g. "protoPath ./protos") and its key."""

    label: str
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """What the store knows of a session."""

    id: str
    owner: str
    created: float
    manifest: tuple[ManifestEntry, ...] = ()


class StoreEvents(Protocol):
    """What a process does when the store tells it something (the app implements it)."""

    def session_ended(self, session_id: str, reason: str) -> None: ...

    def session_changed(self, session_id: str) -> None: ...

    def recheck_all(self) -> None: ...

    def base_reloaded(self) -> None: ...

    def relayed(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run a live-call request relayed from another process; its answers."""
        ...


class SessionStore(Protocol):
    """The record of sessions a process serves; shared by processes when `shared`."""

    shared: bool
    node: str
    """This process's id among those sharing the store (live calls are named by it)."""
    refresh_every: float
    """Seconds a cached session is trusted before the store is asked again."""

    async def start(self, events: StoreEvents) -> None: ...

    async def close(self) -> None: ...

    def check(self) -> None:
        """Raise StoreUnavailable at once when the store is known to be unreachable."""

    async def ready(self) -> bool: ...

    async def touch(self, session_id: str, now: float) -> Record | str:
        """Refresh a session's expiry and read its record; else why it is gone
        ("closed", "expired")."""
        ...

    async def create(
        self, record: Record, now: float, parts: Sequence[Schema], *, max_per_owner: int = 0
    ) -> bool:
        """Write a new session; False (nothing written) when its owner holds
        `max_per_owner` live sessions already (0: no limit)."""
        ...

    async def owned(self, owner: str, now: float) -> int:
        """Live sessions `owner` holds across processes (0 for a store that is not shared)."""
        ...

    async def append(
        self, session_id: str, entries: Sequence[ManifestEntry], parts: Sequence[Schema]
    ) -> int:
        """Add loads to a session's manifest; the manifest's length now (0: session gone)."""
        ...

    async def end(self, session_id: str, owner: str) -> bool: ...

    async def schemas(self, manifest: Sequence[ManifestEntry]) -> list[Schema]:
        """The schemas of a manifest: cached here, else rebuilt from the stored sets."""
        ...

    def stats(self) -> tuple[int, float | None, float | None] | None:
        """Sessions live across processes (count, oldest, newest creation), or None."""
        ...

    async def announce_reload(self) -> None: ...

    def relay(self, call_id: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """A live-call request run by the process owning the call; its answers."""
        ...


class MemoryStore:
    """Sessions in this process's memory only: the manager is the record; nothing to do."""

    shared = False
    refresh_every = float("inf")

    def __init__(self) -> None:
        self.node = ""

    async def start(self, events: StoreEvents) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to close."""

    def check(self) -> None:
        """Always reachable."""

    async def ready(self) -> bool:
        """Always ready."""
        return True

    async def touch(self, session_id: str, now: float) -> Record | str:
        """Never asked (not shared): the manager knows every session."""
        return "unknown"

    async def create(
        self, record: Record, now: float, parts: Sequence[Schema], *, max_per_owner: int = 0
    ) -> bool:
        """The manager holds it already (and counted it)."""
        return True

    async def owned(self, owner: str, now: float) -> int:
        """Never asked: the manager counts its owners' sessions."""
        return 0

    async def append(
        self, session_id: str, entries: Sequence[ManifestEntry], parts: Sequence[Schema]
    ) -> int:
        """The registry holds it already."""
        return len(entries)

    async def end(self, session_id: str, owner: str) -> bool:
        """The manager ends it."""
        return True

    async def schemas(self, manifest: Sequence[ManifestEntry]) -> list[Schema]:
        """Never asked: nothing is restored from a memory store."""
        return []

    def stats(self) -> tuple[int, float | None, float | None] | None:
        """The manager's own figures are the figures."""
        return None

    async def announce_reload(self) -> None:
        """No other process to tell."""

    async def relay(self, call_id: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every live call is local."""
        raise RequestError(f"no live call {call_id!r}", code=Code.NOT_FOUND, field="callId")
        yield {}  # pragma: no cover - makes this an async generator


def encode_set(schema: Schema) -> bytes:
    """A schema's files as a serialized FileDescriptorSet (field 1, length-delimited)."""
    out = bytearray()
    for name in sorted(schema.files):
        data = schema.files[name]
        out.append(0x0A)
        n = len(data)
        while n >= 0x80:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        out += data
    return bytes(out)


# -- Redis ------------------------------------------------------------------------------

_TOUCH = """
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then
  return {0, redis.call('GET', KEYS[2]) or ''}
end
redis.call('HSET', KEYS[1], 'last_used', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'owner', 'created', 'manifest', 'keys')
local owned = ARGV[6] .. redis.sha1hex(f[1] or '')
redis.call('ZADD', owned, ARGV[2], ARGV[4])
redis.call('PEXPIRE', owned, ARGV[1])
if f[4] then
  for k in string.gmatch(f[4], '%S+') do redis.call('PEXPIRE', ARGV[5] .. k, ARGV[3]) end
end
return {1, f[1] or '', f[2] or '0', f[3] or '[]'}
"""

_CREATE = """
local limit = tonumber(ARGV[7])
if limit > 0 and not redis.call('ZSCORE', KEYS[4], ARGV[4]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[9])
  if redis.call('ZCARD', KEYS[4]) >= limit then return 0 end
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'created', ARGV[2], 'last_used', ARGV[2],
  'manifest', ARGV[5], 'keys', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
return 1
"""

_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local m = cjson.decode(redis.call('HGET', KEYS[1], 'manifest') or '[]')
local seen = {}
for _, e in ipairs(m) do seen[e[2]] = true end
for _, e in ipairs(cjson.decode(ARGV[1])) do
  if not seen[e[2]] then table.insert(m, e); seen[e[2]] = true end
end
local keys = {}
for _, e in ipairs(m) do table.insert(keys, e[2]) end
redis.call('HSET', KEYS[1], 'manifest', cjson.encode(m), 'keys', table.concat(keys, ' '))
return #m
"""

_END = """
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('ZREM', KEYS[5], ARGV[3])
if n == 1 then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
return n
"""

_STATS = """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for i = 1, #dead, 500 do
  local last = math.min(i + 499, #dead)
  redis.call('ZREM', KEYS[1], unpack(dead, i, last))
  redis.call('ZREM', KEYS[2], unpack(dead, i, last))
end
local o = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local w = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), o[2] or '', w[2] or ''}
"""


def _manifest(raw: str | bytes) -> tuple[ManifestEntry, ...]:
    try:
        items = json.loads(raw)
    except ValueError:
        return ()
    if not isinstance(items, list):  # cjson writes an empty list as {}
        return ()
    return tuple(
        ManifestEntry(str(i[0]), str(i[1])) for i in items if isinstance(i, list) and len(i) == 2
    )


class RedisStore:
    """Sessions in Redis, shared by every process that names the same URL and prefix."""

    shared = True

    def __init__(
        self, url: str, *, prefix: str, ttl: float, cache: SchemaCache, clock: Callable[[], float]
    ) -> None:
        from redis.asyncio import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.shown = shown_url(url)
        query = dict(parse_qsl(urlsplit(url).query))
        self._redis: Any = Redis.from_url(
            url,
            socket_timeout=None if "socket_timeout" in query else 5.0,
            socket_connect_timeout=None if "socket_connect_timeout" in query else 2.0,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        db = urlsplit(url).path.strip("/") or "0"
        self.node = secrets.token_hex(4)
        self._p = prefix
        self.prefix = prefix
        """`--session-store-prefix`: every key of the catalog's starts with it and `:`."""
        self._events_channel = f"{prefix}:{db}:events"
        self._node_prefix = f"{prefix}:{db}:node:"
        self._ttl_ms = max(1, int(ttl * 1000))
        self._blob_ttl_ms = 2 * self._ttl_ms
        self._ttl = ttl
        self.refresh_every = max(0.05, min(ttl / 10, 5.0))
        self._cache = cache
        self._clock = clock
        self._known: weakref.WeakValueDictionary[str, Schema] = weakref.WeakValueDictionary()
        """Schemas by content key that this process holds (no fetch, no rebuild)."""
        self._stored: dict[str, float] = {}
        """Content keys this process knows are in Redis, and when it last knew."""
        self._up = False
        self._events: StoreEvents | None = None
        self._listener: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._serving: dict[str, asyncio.Task[None]] = {}
        self._credit: dict[str, _Credit] = {}
        """Relayed requests served here: answers each asker may still be sent."""
        self._base_gen = b""
        self._stats: tuple[int, float | None, float | None] | None = None
        self._scripts = {
            name: self._redis.register_script(text)
            for name, text in (
                ("touch", _TOUCH),
                ("create", _CREATE),
                ("append", _APPEND),
                ("end", _END),
                ("stats", _STATS),
            )
        }

    # -- for counters.py: the same connection, scripts and failure handling ------------

    @property
    def redis(self) -> Any:
        """The asyncio Redis client (for a command awaited through `run`)."""
        return self._redis

    def script(self, text: str) -> Any:
        """A Lua script registered as this store's own are (EVALSHA, loaded on demand)."""
        return self._redis.register_script(text)

    async def run(self, op: Awaitable[Any], what: str) -> Any:
        """Await a Redis command or script: StoreUnavailable saying that `what` (e.g. "the
        limits per person cannot be checked") when Redis does not answer (the store is
        marked down), at once while it is known to be down."""
        return await self._run(op, what)

    # -- connection and health ------------------------------------------------------

    def _unavailable(self, what: str = "sessions cannot be read or saved") -> StoreUnavailable:
        return StoreUnavailable(
            f"the session store ({self.shown}) does not answer, so {what} right now: try "
            "again in a moment (nothing was changed)"
        )

    async def _run(self, op: Awaitable[Any], what: str = "sessions cannot be read or saved") -> Any:
        """Await a Redis command; a connection failure marks the store down."""
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeout

        if not self._up:
            if isinstance(op, asyncio.Future | asyncio.Task):
                op.cancel()
            elif hasattr(op, "close"):
                op.close()
            raise self._unavailable(what)
        try:
            return await op
        except (RedisTimeout, TimeoutError):  # slow, not gone: this request only
            raise self._unavailable(what) from None
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            raise self._unavailable(what) from None

    def _mark_down(self, exc: BaseException) -> None:
        if self._up:
            _log.warning("session store %s unreachable: %s", self.shown, type(exc).__name__)
        self._up = False

    async def _pings(self) -> bool:
        from redis.exceptions import RedisError

        try:
            await asyncio.wait_for(self._redis.ping(), 5.0)
        except (RedisError, OSError, TimeoutError):
            return False
        return True

    def check(self) -> None:
        """StoreUnavailable at once while Redis is known to be unreachable."""
        if not self._up:
            raise self._unavailable()

    async def ready(self) -> bool:
        """Whether Redis answers a PING now (and the listener is connected)."""
        return await self._pings() and self._up

    async def start(self, events: StoreEvents) -> None:
        """Connect (StoreUnavailable when Redis does not answer) and start listening."""
        from redis.exceptions import RedisError

        if self._listener is not None:
            return
        try:
            await asyncio.wait_for(self._redis.ping(), 5.0)
            self._base_gen = await self._redis.get(f"{self._p}:base") or b""
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(
                f"cannot reach the session store {self.shown} (--session-store): {_reason(exc)}"
            ) from None
        self._events = events
        ready = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(self._listen(ready), name="session-store")
        await ready

    async def close(self) -> None:
        """Stop listening and close the connections."""
        task, self._listener = self._listener, None
        for t in [*self._serving.values(), *([task] if task else [])]:
            t.cancel()
        for t in [*self._serving.values(), *([task] if task else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        """Subscribe; dispatch what arrives; reconnect after a failure."""
        from redis.exceptions import RedisError

        channels = (self._events_channel, self._node_prefix + self.node)
        first = True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                await self._redis.ping()
                if not first:
                    await self._reconnected()
                self._up = True
                if not ready.done():
                    ready.set_result(None)
                first = False
                await self._pump(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if not await self._pings():  # a slow answer is no outage
                    self._mark_down(exc)
            except Exception:  # a bug in a handler must not stop the listener
                _log.exception("session store listener failed")
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            if not ready.done():
                ready.set_result(None)
            first = False
            await asyncio.sleep(_RECONNECT_S)

    async def _pump(self, pubsub: Any) -> None:
        next_stats = 0.0
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message.get("type") in ("message", b"message"):
                self._dispatch(bytes(message["channel"]), bytes(message["data"]))
            if not self._up:
                await self._redis.ping()
                self._up = True
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + _STATS_EVERY_S
                await self._read_stats()

    async def _reconnected(self) -> None:
        """Back after a failure: cached sessions are checked again; a missed reload runs."""
        _log.info("session store %s reachable again", self.shown)
        events = self._events
        if events is None:
            return
        events.recheck_all()
        gen = await self._redis.get(f"{self._p}:base") or b""
        if gen != self._base_gen:
            self._base_gen = gen
            events.base_reloaded()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        events = self._events
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if events is None or not isinstance(msg, dict):
            return
        if channel.decode() == self._events_channel:
            self._event(events, msg)
            return
        kind = msg.get("k")
        if kind == "req":
            rid = str(msg.get("id", ""))
            task = asyncio.create_task(self._serve_relayed(events, msg))
            self._serving[rid] = task
            task.add_done_callback(lambda _t: self._serving.pop(rid, None))
        elif kind == "stop":
            serving = self._serving.get(str(msg.get("id", "")))
            if serving is not None:
                serving.cancel()
        elif kind == "ack":
            credit = self._credit.get(str(msg.get("id", "")))
            if credit is not None:
                credit.left += min(max(int(msg.get("n", 0) or 0), 0), _RELAY_WINDOW)
                credit.wake.set()
        else:
            queue = self._replies.get(str(msg.get("id", "")))
            if queue is not None:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(msg)

    def _event(self, events: StoreEvents, msg: dict[str, Any]) -> None:
        kind, origin = msg.get("t"), msg.get("from")
        if origin == self.node:
            return
        if kind == "end":
            events.session_ended(str(msg.get("id", "")), "closed")
        elif kind == "changed":
            events.session_changed(str(msg.get("id", "")))
        elif kind == "reload":
            self._base_gen = str(msg.get("gen", "")).encode()
            events.base_reloaded()

    async def _read_stats(self) -> None:
        cutoff = self._clock() - self._ttl
        n, oldest, newest = await self._scripts["stats"](
            keys=[f"{self._p}:live", f"{self._p}:born"], args=[repr(cutoff)]
        )
        self._stats = (
            int(n),
            float(oldest) if oldest else None,
            float(newest) if newest else None,
        )

    def stats(self) -> tuple[int, float | None, float | None] | None:
        """The live sessions of every process (re-read every few seconds), or None."""
        return self._stats if self._up else None

    # -- sessions ------------------------------------------------------------------

    def _keys(self, session_id: str) -> tuple[str, str]:
        return f"{self._p}:s:{session_id}", f"{self._p}:x:{session_id}"

    async def touch(self, session_id: str, now: float) -> Record | str:
        """Refresh the session (and the sets it refers to); its record, else why it is gone."""
        key, tomb = self._keys(session_id)
        found = await self._run(
            self._scripts["touch"](
                keys=[key, tomb, f"{self._p}:live"],
                args=[
                    self._ttl_ms,
                    repr(now),
                    self._blob_ttl_ms,
                    session_id,
                    f"{self._p}:d:",
                    f"{self._p}:lim:s:",
                ],
            )
        )
        if int(found[0]) == 0:
            reason = bytes(found[1]).decode(errors="replace").partition("|")[0]
            return reason or "expired"
        owner, created, manifest = (bytes(v).decode(errors="replace") for v in found[1:4])
        return Record(
            id=session_id, owner=owner, created=float(created), manifest=_manifest(manifest)
        )

    def _owned_key(self, owner: str) -> str:
        return f"{self._p}:lim:s:{hashlib.sha1(owner.encode()).hexdigest()}"

    async def create(
        self, record: Record, now: float, parts: Sequence[Schema], *, max_per_owner: int = 0
    ) -> bool:
        """Write a new session (and upload the sets of its first loads), unless its
        owner holds `max_per_owner` live sessions already: one script counts and writes."""
        await self._upload(parts)
        key, _ = self._keys(record.id)
        written = await self._run(
            self._scripts["create"](
                keys=[key, f"{self._p}:live", f"{self._p}:born", self._owned_key(record.owner)],
                args=[
                    record.owner,
                    repr(record.created),
                    self._ttl_ms,
                    record.id,
                    json.dumps([[e.label, e.key] for e in record.manifest]),
                    " ".join(e.key for e in record.manifest),
                    max_per_owner,
                    repr(now),
                    repr(now - self._ttl),
                ],
            )
        )
        return bool(int(written))

    async def owned(self, owner: str, now: float) -> int:
        """Sessions `owner` used within the TTL, in every process (one ZCOUNT)."""
        cutoff = f"({now - self._ttl!r}"
        count = self._redis.zcount(self._owned_key(owner), cutoff, "+inf")
        return int(await self._run(count, "the sessions per person cannot be counted"))

    async def append(
        self, session_id: str, entries: Sequence[ManifestEntry], parts: Sequence[Schema]
    ) -> int:
        """Upload the sets, add the loads to the manifest, tell the other processes."""
        await self._upload(parts)
        key, _ = self._keys(session_id)
        length = int(
            await self._run(
                self._scripts["append"](
                    keys=[key], args=[json.dumps([[e.label, e.key] for e in entries])]
                )
            )
        )
        if length:
            await self._publish({"t": "changed", "id": session_id})
        return length

    async def _upload(self, parts: Sequence[Schema]) -> None:
        """Store each set once by its content key; a set stored already only gets its TTL."""
        now = time.monotonic()
        for schema in parts:
            self._known[schema.key] = schema
            if now - self._stored.get(schema.key, -1e9) < self.refresh_every:
                continue
            blob_key = f"{self._p}:d:{schema.key}"
            if not int(await self._run(self._redis.pexpire(blob_key, self._blob_ttl_ms))):
                data = await asyncio.to_thread(encode_set, schema)
                await self._run(self._redis.set(blob_key, data, px=self._blob_ttl_ms))
            self._stored[schema.key] = now
            if len(self._stored) > 4096:
                self._stored.clear()

    async def end(self, session_id: str, owner: str) -> bool:
        """End the session everywhere: delete it, leave a tombstone, tell the others."""
        key, tomb = self._keys(session_id)
        n = await self._run(
            self._scripts["end"](
                keys=[key, tomb, f"{self._p}:live", f"{self._p}:born", self._owned_key(owner)],
                args=[f"closed|{owner}", self._ttl_ms, session_id],
            )
        )
        await self._publish({"t": "end", "id": session_id})
        return bool(int(n))

    async def schemas(self, manifest: Sequence[ManifestEntry]) -> list[Schema]:
        """Each schema of the manifest: held here already, else rebuilt from its stored set
        (a descriptor set: never a compile)."""
        out: list[Schema] = []
        for entry in manifest:
            schema = self._known.get(entry.key)
            if schema is None:
                data = await self._run(self._redis.get(f"{self._p}:d:{entry.key}"))
                if data is None:
                    raise RequestError(
                        f"the schemas this session loaded ({entry.label}) are no longer in "
                        "the session store: end the session and load them again",
                        code=Code.FAILED_PRECONDITION,
                    )
                try:
                    schema = await asyncio.to_thread(self._cache.from_set, bytes(data))
                except SchemaError:
                    schema = None
                if schema is None or schema.key != entry.key:
                    raise RequestError(
                        f"the stored schemas of {entry.label} do not match their key: end "
                        "the session and load them again",
                        code=Code.DATA_LOSS,
                    )
                self._known[entry.key] = schema
                self._stored[entry.key] = time.monotonic()
            out.append(schema)
        return out

    # -- base reloads ---------------------------------------------------------------

    async def announce_reload(self) -> None:
        """Tell every other process to reload its base."""
        gen = await self._run(self._redis.incr(f"{self._p}:base"))
        self._base_gen = str(gen).encode()
        await self._publish({"t": "reload", "gen": str(gen)})

    async def _publish(self, msg: dict[str, Any], channel: str = "") -> int:
        msg.setdefault("from", self.node)
        data = json.dumps(msg, separators=(",", ":"))
        return int(await self._run(self._redis.publish(channel or self._events_channel, data)))

    # -- live calls relayed to their owner -----------------------------------------

    async def relay(self, call_id: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Send a live-call request to the process that owns the call; its answers, up to
        the last (`{"k": "end"}` is not yielded). A process that does not answer is a
        retryable `unavailable` naming it."""
        owner = call_id.partition("-")[0]
        rid = secrets.token_hex(8)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(2 * _RELAY_WINDOW)
        self._replies[rid] = queue
        finished = False
        read = 0
        try:
            heard = await self._publish(
                {**request, "k": "req", "id": rid, "reply": self.node},
                self._node_prefix + owner,
            )
            if not heard:
                raise _gone(call_id, owner)
            timeout: float | None = _RELAY_TIMEOUT
            while True:
                try:
                    msg = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    raise _gone(call_id, owner) from None
                timeout = None  # a watch may wait long between two events
                if msg.get("k") == "end":
                    finished = True
                    return
                if msg.get("k") == "err":
                    finished = True
                    raise RequestError(
                        str(msg.get("message", "")),
                        code=Code.__members__.get(str(msg.get("code")), Code.UNAVAILABLE),
                        field=str(msg.get("field", "")),
                    )
                if msg.get("last"):
                    finished = True
                yield msg
                if finished:
                    return
                read += 1
                if read % (_RELAY_WINDOW // 2) == 0:  # room for as many more
                    ack = {"k": "ack", "id": rid, "n": _RELAY_WINDOW // 2}
                    await self._publish(ack, self._node_prefix + owner)
        finally:
            self._replies.pop(rid, None)
            if not finished and self._up:
                with contextlib.suppress(StoreUnavailable):
                    await self._publish({"k": "stop", "id": rid}, self._node_prefix + owner)

    async def _serve_relayed(self, events: StoreEvents, msg: dict[str, Any]) -> None:
        """Run a request another process relayed here; send each answer back."""
        reply = self._node_prefix + str(msg.get("reply", ""))
        rid = str(msg.get("id", ""))
        credit = self._credit[rid] = _Credit(_RELAY_WINDOW)
        try:
            async for answer in events.relayed(msg):
                while credit.left <= 0:
                    credit.wake.clear()
                    try:
                        await asyncio.wait_for(credit.wake.wait(), _ACK_TIMEOUT)
                    except TimeoutError:
                        return  # the asker is gone
                credit.left -= 1
                await self._publish({**answer, "id": rid}, reply)
            await self._publish({"k": "end", "id": rid}, reply)
        except RequestError as exc:
            with contextlib.suppress(StoreUnavailable):
                await self._publish(
                    {
                        "k": "err",
                        "id": rid,
                        "code": exc.code.name,
                        "message": exc.message,
                        "field": exc.field,
                    },
                    reply,
                )
        except Exception:  # never leaves the requester waiting without a word
            _log.exception("relayed live-call request failed")
            with contextlib.suppress(StoreUnavailable):
                await self._publish(
                    {"k": "err", "id": rid, "code": "INTERNAL", "message": "relay failed"},
                    reply,
                )
        finally:
            self._credit.pop(rid, None)


@dataclass(slots=True)
class _Credit:
    left: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def _gone(call_id: str, owner: str) -> RequestError:
    return RequestError(
        f"live call {call_id!r} lives in catalog process {owner}, which does not answer "
        "(it may be restarting or gone): try again in a moment, or start the call again",
        code=Code.UNAVAILABLE,
        field="callId",
    )


def _reason(exc: BaseException) -> str:
    """Why Redis could not be reached, without echoing credentials."""
    from redis.exceptions import AuthenticationError, ResponseError

    if isinstance(exc, AuthenticationError):
        return "the user name or password was refused"
    if isinstance(exc, TimeoutError):
        return "it did not answer in time"
    if isinstance(exc, ResponseError):
        return "it refused the connection (check the database number and credentials)"
    return "the connection failed (is Redis running there?)"


def b64(data: bytes) -> str:
    """Bytes for a JSON relay message."""
    return base64.b64encode(data).decode()


def unb64(text: object) -> bytes:
    """Bytes back from a JSON relay message."""
    return base64.b64decode(str(text))


def open_store(
    url: str, *, prefix: str, ttl: float, cache: SchemaCache, clock: Callable[[], float]
) -> SessionStore:
    """The store the settings name: in memory for "", else Redis."""
    if not url:
        return MemoryStore()
    return RedisStore(url, prefix=prefix, ttl=ttl, cache=cache, clock=clock)
