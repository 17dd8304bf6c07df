"""One process among several sharing a session store (`--session-store redis://…`).

`Replica` keeps this process's `SessionManager` (its cache of live sessions: registries,
connection pools, live calls) in step with the shared record (`session_store`):

- before a request runs, `prepare` makes sure the session it names is held here as the
  store has it: a session another process created is restored from its manifest (schemas
  by content key: held here already, else rebuilt from the stored descriptor set — never
  a compile); a session held here is checked again at most every `refresh_every`
  seconds, or at once when another process said it changed;
- after a request succeeded, `save` writes a new session, or the loads it added;
- `--sessions-per-identity` holds across processes: a request that may create a session
  (none named, or the one named is gone) first reads its owner's count in the store
  (one ZCOUNT, only when the limit is set), which `SessionManager.get_or_create` refuses
  at; the store's create script counts again when `save` writes the session, and
  refuses it atomically if other processes created the last ones meanwhile (the
  request's answer becomes that refusal and the session is dropped);
- what other processes announce arrives as `StoreEvents`: a session ended (closed
  here too), changed (checked again on its next request), the base reloaded (reloaded
  here, the old base serving until the new one is built), and live-call requests
  relayed to this process because it owns the call (`RelayDirectory`, calls.py's seam).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .calls import LiveCalls
from .gen.catalog.v1 import catalog_pb
from .problems import Code, RequestError
from .registry import Registry
from .session import SessionManager, State, fleet_owned
from .session_store import ManifestEntry, Record, SessionStore, b64, unb64

__all__ = ["RelayDirectory", "Replica"]

_log = logging.getLogger(__name__)
_SESSION_ID = re.compile(r"[0-9a-f]{32}")
_NODE = re.compile(r"[0-9a-f]{8}")


class Replica:
    """This process's side of a shared session store (see the module's docstring)."""

    def __init__(
        self,
        manager: SessionManager,
        *,
        reload_base: Callable[[], Awaitable[object]],
        max_calls: int,
    ) -> None:
        self.manager = manager
        self.store: SessionStore = manager.store
        self._reload_base = reload_base
        self._max_calls = max_calls
        self._pending: dict[tuple[str, str], asyncio.Task[str]] = {}
        self._reloading: asyncio.Task[None] | None = None
        self._again = False

    # -- before and after a request ----------------------------------------------------

    async def prepare(self, session_id: str | None, owner: str) -> str:
        """Hold the requested session here as the store has it; "" when it is live (or
        none was asked for), else why it is gone ("closed", "expired", "unknown").
        StoreUnavailable when the store does not answer."""
        self.store.check()
        fleet_owned(owner, None)
        gone = await self._prepare(session_id, owner)
        if self.manager.max_per_owner and (gone or not session_id):  # may create one
            fleet_owned(owner, await self.store.owned(owner, self.manager.now()))
        return gone

    async def _prepare(self, session_id: str | None, owner: str) -> str:
        if not session_id or not _SESSION_ID.fullmatch(session_id):
            return "" if not session_id else "unknown"
        state = self.manager.peek(session_id)
        if (
            state is not None
            and state.owner == owner
            and time.monotonic() - state.checked < self.store.refresh_every
        ):
            return ""
        key = (session_id, owner)
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(self._refresh(session_id, owner))
            self._pending[key] = task
            task.add_done_callback(lambda _t: self._pending.pop(key, None))
        return await asyncio.shield(task)

    async def _refresh(self, session_id: str, owner: str) -> str:
        found = await self.store.touch(session_id, self.manager.now())
        state = self.manager.peek(session_id)
        if isinstance(found, str):
            if state is not None:
                self.manager.forget(session_id, found)
            return found
        if found.owner != owner:
            return "unknown"  # someone else's: never shared, never touched
        stored = {e.key for e in found.manifest}
        if state is not None and state.owner == owner:
            registry = _registry(state)
            held = registry.loads
            have = {schema.key for _, schema in held}
            if not stored <= have:  # another process added loads: add them here too
                extra = [e for e in found.manifest if e.key not in have]
                schemas = await self.store.schemas(extra)
                more = tuple(zip((e.label for e in extra), schemas, strict=True))
                await registry.restore((*registry.loads, *more))
            state.stored = len(found.manifest)
            state.checked = time.monotonic()
            return ""
        schemas = await self.store.schemas(found.manifest)
        restored = self.manager.restored(session_id, owner, found.created)
        await _registry(restored).restore(
            tuple(zip((e.label for e in found.manifest), schemas, strict=True))
        )
        restored.used = bool(found.manifest)
        restored.stored = len(found.manifest)
        restored.checked = time.monotonic()
        held_now = self.manager.adopt(restored)
        if held_now is not restored:
            await restored.close()
        return ""

    async def save(self, state: State, created: bool) -> None:
        """Write what a successful request changed: a new session, or its new loads."""
        registry = _registry(state)
        if not created and 0 <= registry.load_count <= state.stored:
            return  # nothing new (most requests)
        loads = registry.loads
        entries = tuple(ManifestEntry(label, schema.key) for label, schema in loads)
        parts = [schema for _, schema in loads]
        if created or state.stored < 0:
            record = Record(
                id=state.id, owner=state.owner, created=state.created_at, manifest=entries
            )
            written = await self.store.create(
                record, self.manager.now(), parts, max_per_owner=self.manager.max_per_owner
            )
            if not written:  # other processes created the owner's last sessions meanwhile
                raise self.manager.owner_limit_error()
            state.stored = len(entries)
            state.checked = time.monotonic()
        elif len(entries) > state.stored:
            fresh = parts[state.stored :] if state.stored >= 0 else parts
            length = await self.store.append(state.id, entries, fresh)
            if not length:  # ended elsewhere meanwhile
                self.manager.forget(state.id, "closed")
                return
            state.stored = length
            if length > len(entries):
                state.checked = 0.0  # another process added loads too: read them next time

    # -- what the other processes announce ---------------------------------------------

    def session_ended(self, session_id: str, reason: str) -> None:
        """Another process ended the session: end it here too."""
        self.manager.forget(session_id, reason)

    def session_changed(self, session_id: str) -> None:
        """Another process added loads: read the manifest on the session's next request."""
        state = self.manager.peek(session_id)
        if state is not None:
            state.checked = 0.0

    def recheck_all(self) -> None:
        """The store was unreachable for a while: check every session held here again."""
        for state in self.manager.held():
            state.checked = 0.0

    def base_reloaded(self) -> None:
        """Another process reloaded the base: reload here (one reload at a time; a request
        that arrives meanwhile runs once more after it)."""
        if self._reloading is not None and not self._reloading.done():
            self._again = True
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        while True:
            self._again = False
            try:
                await self._reload_base()
                _log.info("reloaded the base (another catalog process reloaded it)")
            except Exception as exc:  # the previous base stays in place
                _log.error("reload announced by another process failed: %s", exc)
            if not self._again:
                return

    async def relayed(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run a live-call request another process relayed here (this process owns it).

        The request names the asking session and identity: a call of another session,
        or of a session another identity holds, is not_found, as it is locally."""
        session_id = str(request.get("session", ""))
        call_id = str(request.get("call", ""))
        asker = request.get("owner")
        # refreshes it here (it is in use); None too when `asker` does not hold it
        state = self.manager.get(session_id, asker) if isinstance(asker, str) else None
        if state is None:
            raise RequestError(
                f"no live call {call_id!r} in this session (its session ended)",
                code=Code.NOT_FOUND,
                field="callId",
            )
        live = self.live_calls(state)
        op = request.get("op")
        if op == "watch":
            async for event in live.watch(call_id):
                yield {"k": "ev", "ev": b64(event.to_binary())}
            return
        if op == "send":
            n = await live.send(call_id, str(request.get("text", "")))
        elif op == "close_send":
            n = await live.close_send(call_id)
        elif op == "cancel":
            n = int(await live.cancel(call_id))
        else:
            raise RequestError(f"unknown relayed operation {op!r}", code=Code.INTERNAL)
        yield {"k": "ok", "n": n, "last": True}

    def _owner_of(self, session_id: str) -> str:
        """The identity holding a session held here (its owner is set after its live
        calls are made, so it is looked up when a request is relayed)."""
        state = self.manager.peek(session_id)
        return state.owner if state is not None else ""

    def live_calls(self, state: State) -> LiveCalls:
        """The session's live calls here, routed through this process's directory."""
        invoker = state.invoker
        directory = RelayDirectory(self.store, self._owner_of)
        make = lambda: LiveCalls(  # noqa: E731
            invoker,  # type: ignore[arg-type]
            max_calls=self._max_calls,
            directory=directory,
            session_id=state.id,
        )
        return invoker.attached("live-calls", make)  # type: ignore[attr-defined, no-any-return]


class RelayDirectory:
    """calls.CallDirectory over the shared store: call ids name their process."""

    def __init__(self, store: SessionStore, owner_of: Callable[[str], str]) -> None:
        self._store = store
        self._owner_of = owner_of
        """The identity key holding a session: sent with each request relayed for it,
        for the owning process to check (see `Replica.relayed`)."""

    def new_id(self) -> str:
        """`<node>-<random>`."""
        return f"{self._store.node}-{secrets.token_hex(8)}"

    def is_remote(self, call_id: str) -> bool:
        """Whether the id names another process (a node id: 8 hex digits)."""
        node, sep, _ = call_id.partition("-")
        return bool(sep) and node != self._store.node and _NODE.fullmatch(node) is not None

    async def relay_unary(self, op: str, session_id: str, call_id: str, text: str = "") -> int:
        """Run SendMessage / CloseSend / CancelCall at the owner; its count."""
        request = {
            "op": op,
            "session": session_id,
            "owner": self._owner_of(session_id),
            "call": call_id,
            "text": text,
        }
        async for answer in self._store.relay(call_id, request):
            return int(answer.get("n", 0))
        raise RequestError(
            f"live call {call_id!r}: its process gave no answer; try again",
            code=Code.UNAVAILABLE,
        )

    async def relay_watch(
        self, session_id: str, call_id: str
    ) -> AsyncIterator[catalog_pb.InvokeStreamEvent]:
        """WatchCall at the owner: its events as they come."""
        owner = self._owner_of(session_id)
        request = {"op": "watch", "session": session_id, "owner": owner, "call": call_id}
        async for answer in self._store.relay(call_id, request):
            yield catalog_pb.InvokeStreamEvent.from_binary(unb64(answer.get("ev", "")))


def _registry(state: State) -> Registry:
    registry = state.registry
    if not isinstance(registry, Registry):  # pragma: no cover - wiring error
        raise RequestError("session has no registry", code=Code.INTERNAL)
    return registry
