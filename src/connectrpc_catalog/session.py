"""Per-client sessions: each holds its own registry and invoker, and expires when idle.

The manager's lookups are synchronous and guarded by a lock so they are safe from any
thread or task; closing what a removed session held is asynchronous and done by the
manager's background task (or by `sweep()` / `close()` when awaited directly).

`--sessions-per-identity` (`max_per_owner`) counts the sessions held here; with a shared
store, a request that may create a session first reads its owner's count across
processes (`shared.Replica.prepare` → `fleet_owned`), and the store's create script
counts again atomically when the new session is written (`Replica.save`), so
requests spread over processes cannot pass the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from .problems import Code, RequestError
from .session_store import MemoryStore, SessionStore

__all__ = [
    "CLEANUP_INTERVAL",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_TTL",
    "BusyError",
    "IdentitySessionLimitError",
    "Resource",
    "SessionLimitError",
    "SessionManager",
    "State",
    "Stats",
    "fleet_owned",
]

DEFAULT_MAX_SESSIONS = 10_000
"""Live sessions one process holds at most; past it, new sessions are refused."""

DEFAULT_TTL = 3600.0
"""Sessions idle longer than this many seconds expire."""

CLEANUP_INTERVAL = 300.0
"""Seconds between two background sweeps."""

_log = logging.getLogger(__name__)

_SWEEP_BATCH = 1_000
"""Sessions examined per lock hold; the sweep yields to the event loop between batches."""

_CLOSE_SLICE = 0.002
"""Longest stretch (seconds) of closing sessions before yielding to the event loop."""


_FLEET: ContextVar[tuple[str, int] | None] = ContextVar("catalog_fleet_owned", default=None)
"""The current request's owner and its live sessions across processes (shared store)."""


def fleet_owned(owner: str, count: int | None) -> None:
    """Tell `get_or_create` of this request how many sessions `owner` holds across
    processes (None: not counted; set for every request, so none inherits another's)."""
    _FLEET.set(None if count is None else (owner, count))


class SessionLimitError(RequestError):
    """A new session was needed, but the manager already holds its maximum."""

    code = Code.RESOURCE_EXHAUSTED

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the catalog already holds {limit} sessions, its limit (--max-sessions): send the "
            "X-Session-ID of your session, close sessions you no longer use (CloseSession), "
            "or try again when idle ones have expired"
        )
        self.limit = limit


class IdentitySessionLimitError(RequestError):
    """A new session was needed, but its identity already holds as many as it may."""

    code = Code.RESOURCE_EXHAUSTED

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"you already hold {limit} sessions, the limit per person "
            "(--sessions-per-identity): send the X-Session-ID of one of them, close those "
            "you no longer use (CloseSession), or wait until idle ones expire"
        )
        self.limit = limit


class BusyError(RequestError):
    """A session already runs as many calls of one kind as it may."""

    code = Code.RESOURCE_EXHAUSTED

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            f"this session already has {limit} {what} in progress, its limit: wait for one "
            "to finish (or cancel it) and try again"
        )


class Resource(Protocol):
    """Something a session owns and must close when it ends."""

    async def close(self) -> None: ...


class State:
    """What one session holds."""

    __slots__ = (
        "_busy",
        "checked",
        "created_at",
        "id",
        "invoker",
        "last_used",
        "owner",
        "registry",
        "stored",
        "used",
    )

    def __init__(
        self, *, id: str, registry: Resource, invoker: Resource, now: float, owner: str = ""
    ) -> None:
        self.id = id
        self.owner = owner
        """The identity (`Identity.key`) that created the session; only it may use it."""
        self.registry = registry
        self.invoker = invoker
        self.created_at = now
        self.last_used = now
        self._busy: dict[str, int] | None = None
        self.checked = 0.0
        """When (monotonic) a shared store last confirmed the session (0: never)."""
        self.stored = -1
        """Loads of the registry the shared store holds (-1: the store has no record yet)."""
        self.used = False
        """Set once the session holds something (a load, a connection): until then it is
        blank, and the first to make room for new sessions at the cap."""

    @property
    def busy(self) -> bool:
        """Whether a call of the session is in progress."""
        return bool(self._busy and any(self._busy.values()))

    @contextlib.contextmanager
    def hold(self, what: str, limit: int) -> Iterator[None]:
        """Count one `what` (e.g. "streams") in progress; BusyError past `limit` at once."""
        busy = self._busy if self._busy is not None else {}
        self._busy = busy
        if busy.get(what, 0) >= limit:
            raise BusyError(what, limit)
        busy[what] = busy.get(what, 0) + 1
        try:
            yield
        finally:
            busy[what] -= 1

    async def close(self) -> None:
        """Close the invoker's connections and drop the session's schemas."""
        await self.invoker.close()
        await self.registry.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """A snapshot of the manager: count, and creation times (wall clock) of the extremes."""

    active_sessions: int
    oldest_session: float | None
    newest_session: float | None


StateFactory = Callable[[str, float], State]


class SessionManager:
    """Creates, finds, refreshes and expires sessions."""

    def __init__(
        self,
        factory: StateFactory,
        *,
        ttl: float = DEFAULT_TTL,
        cleanup_interval: float = CLEANUP_INTERVAL,
        clock: Callable[[], float] = time.time,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_per_owner: int = 0,
        store: SessionStore | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("session TTL must be positive")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self.max_per_owner = max_per_owner
        """Live sessions one owner may hold (0: no limit but max_sessions)."""
        self._owned: dict[str, int] = {}
        self.created = 0
        """Sessions created so far (for metrics)."""
        self.expired = 0
        """Sessions that expired so far (for metrics)."""
        self.on_refused: Callable[[str], None] | None = None
        """Told the limit's name when a new session is refused (for metrics)."""
        self._factory = factory
        self.store: SessionStore = store or MemoryStore()
        """The record of sessions beyond this process (shared.py keeps the two in step)."""
        self.ttl = ttl
        self._interval = cleanup_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, State] = {}
        self._blank: OrderedDict[str, None] = OrderedDict()
        self._ended: OrderedDict[str, str] = OrderedDict()
        """How recently ended sessions ended, for telling their clients (bounded)."""
        self._max_ended = 4 * max_sessions
        """Ids of sessions created blank, oldest first (entries may be stale)."""
        self._to_close: list[State] = []
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def now(self) -> float:
        """The manager's clock (wall-clock seconds)."""
        return self._clock()

    def expires_at(self, state: State) -> float:
        """When the session expires unless it is used again."""
        return state.last_used + self.ttl

    def get_or_create(self, session_id: str | None, owner: str = "") -> tuple[State, str]:
        """Return the live session with this id, refreshed, or a new one with a new id.

        An unknown or expired id is never adopted: the caller gets a fresh id; so does an
        `owner` presenting the id of a session another owner created. Raises
        SessionLimitError when a new session is needed and `max_sessions` are live, and
        IdentitySessionLimitError when the owner already holds `max_per_owner`.
        """
        now = self._clock()
        with self._lock:
            if self._closed:
                raise RuntimeError("session manager is closed")
            state = self._live(session_id, now) if session_id else None
            if state is not None and state.owner != owner:
                state = None  # someone else's: never shared, never touched
            if state is None:
                if self.max_per_owner and self._held_by(owner) >= self.max_per_owner:
                    raise self.owner_limit_error()
                if len(self._sessions) >= self.max_sessions:
                    self._make_room(now)
                new_id = secrets.token_hex(16)
                state = self._factory(new_id, now)
                state.owner = owner
                self._sessions[new_id] = state
                self._owned[owner] = self._owned.get(owner, 0) + 1
                self.created += 1
                self._blank[new_id] = None
            state.last_used = now
            return state, state.id

    def get(self, session_id: str, owner: str | None = None) -> State | None:
        """Return the live session with this id (refreshed), or None (also when `owner` is
        given and did not create it)."""
        now = self._clock()
        with self._lock:
            state = self._live(session_id, now)
            if state is not None and owner is not None and state.owner != owner:
                return None
            if state is not None:
                state.last_used = now
            return state

    def delete(self, session_id: str, *, remember: bool = True) -> bool:
        """End a session now; what it held is closed in the background. True if it existed.

        `remember=False` forgets it ever existed (a session no client was told about).
        """
        with self._lock:
            state = self._remove(session_id, "closed" if remember else None)
        if state is None:
            return False
        self._wake()
        return True

    async def end(self, session_id: str) -> bool:
        """End a session (in every process, with a shared store) and wait until what it held
        here is closed. True if it existed. StoreUnavailable (and nothing ends) when the
        shared store does not answer."""
        store = self.store
        if store.shared:
            with self._lock:
                found = self._sessions.get(session_id)
            if found is not None:
                await store.end(session_id, found.owner)
        with self._lock:
            state = self._remove(session_id, "closed", close=False)
        if state is None:
            return False
        await _close_quietly(state)
        return True

    def peek(self, session_id: str) -> State | None:
        """The live session with this id held here, not refreshed (None if none)."""
        with self._lock:
            return self._live(session_id, self._clock())

    def restored(self, session_id: str, owner: str, created: float) -> State:
        """A state for a session another process created (not yet held: see `adopt`)."""
        state = self._factory(session_id, self._clock())
        state.owner = owner
        state.created_at = created
        return state

    def adopt(self, state: State) -> State:
        """Hold a restored session; the one held already if another request won the race.

        Counts against `max_sessions` like a new one (SessionLimitError when full).
        """
        now = self._clock()
        with self._lock:
            if self._closed:
                raise RuntimeError("session manager is closed")
            held = self._live(state.id, now)
            if held is not None:
                return held
            if len(self._sessions) >= self.max_sessions:
                self._make_room(now)
            state.last_used = now
            self._sessions[state.id] = state
            self._owned[state.owner] = self._owned.get(state.owner, 0) + 1
            self._ended.pop(state.id, None)
            if not state.used:
                self._blank[state.id] = None
            return state

    def forget(self, session_id: str, reason: str) -> bool:
        """Drop a session held here because the shared store says it ended (`reason`:
        "closed" or "expired"); what it held is closed in the background."""
        with self._lock:
            state = self._remove(session_id, reason)
        if state is None:
            return False
        self._wake()
        return True

    def held(self) -> list[State]:
        """Every session held here (a snapshot)."""
        with self._lock:
            return list(self._sessions.values())

    def ended(self, session_id: str, owner: str | None = None) -> str | None:
        """How a recently ended session ended ("expired" or "closed"), or None if unknown
        (also when `owner` is given and did not create it)."""
        with self._lock:
            ended = self._ended.get(session_id)
        if ended is None:
            return None
        reason, _, who = ended.partition("|")
        return reason if owner is None or who == owner else None

    def _held_by(self, owner: str) -> int:
        """Under the lock: `owner`'s sessions here, or across processes if more."""
        held = self._owned.get(owner, 0)
        fleet = _FLEET.get()
        if fleet is not None and fleet[0] == owner:
            return max(held, fleet[1])
        return held

    def owner_limit_error(self) -> IdentitySessionLimitError:
        """The refusal of a session past `max_per_owner` (counted for metrics)."""
        self._refused("sessions_per_identity")
        return IdentitySessionLimitError(self.max_per_owner)

    def owned(self, owner: str) -> int:
        """Live sessions `owner` holds."""
        with self._lock:
            return self._owned.get(owner, 0)

    def _remove(self, session_id: str, reason: str | None, *, close: bool = True) -> State | None:
        """Under the lock: take a session out, queue it for closing, remember why."""
        state = self._sessions.pop(session_id, None)
        if state is None:
            return None
        left = self._owned.get(state.owner, 0) - 1
        if left > 0:
            self._owned[state.owner] = left
        else:
            self._owned.pop(state.owner, None)
        if reason == "expired":
            self.expired += 1
        if close:
            self._to_close.append(state)
        if reason is not None:
            self._ended[session_id] = f"{reason}|{state.owner}"
            self._ended.move_to_end(session_id)
            while len(self._ended) > self._max_ended:
                self._ended.popitem(last=False)
        return state

    def get_stats(self) -> Stats:
        """Count live sessions and report the oldest and newest creation times (of every
        process, with a shared store: figures it re-reads every few seconds)."""
        shared = self.store.stats()
        if shared is not None:
            return Stats(
                active_sessions=shared[0], oldest_session=shared[1], newest_session=shared[2]
            )
        now = self._clock()
        with self._lock:
            created = [
                s.created_at for s in self._sessions.values() if now - s.last_used <= self.ttl
            ]
        return Stats(
            active_sessions=len(created),
            oldest_session=min(created) if created else None,
            newest_session=max(created) if created else None,
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _live(self, session_id: str, now: float) -> State | None:
        state = self._sessions.get(session_id)
        if state is None:
            return None
        if now - state.last_used > self.ttl:
            # Expired but not yet swept: never hand it out again.
            self._remove(session_id, "expired")
            self._wake()  # setting the event does not take the lock
            return None
        return state

    def _make_room(self, now: float) -> None:
        """Under the lock, at the cap: drop expired sessions, else the oldest blank one
        (it holds nothing, so its client loses nothing); SessionLimitError if none."""
        expired = [sid for sid, s in self._sessions.items() if now - s.last_used > self.ttl]
        for sid in expired:
            self._remove(sid, "expired")
        while len(self._sessions) >= self.max_sessions:
            if not self._blank:
                self._refused("max_sessions")
                raise SessionLimitError(self.max_sessions)
            sid, _ = self._blank.popitem(last=False)
            state = self._sessions.get(sid)
            if state is not None and not state.used and not state.busy:
                self._remove(sid, "expired")  # to its client, as if it had expired
        self._wake()

    def _refused(self, limit: str) -> None:
        if self.on_refused is not None:
            self.on_refused(limit)

    def _wake(self) -> None:
        loop, event = self._loop, self._wakeup
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def sweep(self) -> int:
        """Remove expired sessions and close what removed sessions held; return how many expired.

        Works in batches and yields between them, so 100k sessions never block the loop long.
        """
        now = self._clock()
        with self._lock:
            ids = list(self._sessions)
        expired = 0
        for start in range(0, len(ids), _SWEEP_BATCH):
            with self._lock:
                for sid in ids[start : start + _SWEEP_BATCH]:
                    state = self._sessions.get(sid)
                    if state is not None and now - state.last_used > self.ttl:
                        self._remove(sid, "expired")
                        expired += 1
            await asyncio.sleep(0)
        with self._lock:
            self._blank = OrderedDict((sid, None) for sid in self._blank if sid in self._sessions)
        await self._close_pending()
        return expired

    async def _close_pending(self) -> None:
        with self._lock:
            pending, self._to_close = self._to_close, []
        pending.reverse()
        slice_end = time.perf_counter() + _CLOSE_SLICE
        while pending:
            # Popping frees each state as soon as it is closed: dropping 100k at once
            # would stall the loop for tens of milliseconds in deallocation alone.
            await _close_quietly(pending.pop())
            if time.perf_counter() > slice_end:
                # Closing need not suspend, so let the loop breathe every few milliseconds.
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + _CLOSE_SLICE

    def start(self) -> None:
        """Start the background sweep on the running event loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="session-sweeper")

    async def _run(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            return
        next_sweep = time.monotonic() + self._interval
        while True:
            timeout = max(0.0, next_sweep - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)
            wakeup.clear()
            if time.monotonic() >= next_sweep:
                await self.sweep()
                next_sweep = time.monotonic() + self._interval
            else:
                await self._close_pending()

    async def close(self) -> None:
        """Stop the background task and close every session."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with self._lock:
            self._closed = True
            self._to_close.extend(self._sessions.values())
            self._sessions.clear()
        await self._close_pending()


async def _close_quietly(state: State) -> None:
    try:
        await state.close()
    except Exception:  # one broken session must not stop the others' cleanup
        _log.exception("closing session %s failed", state.id)
