"""ASGI wiring: the catalog API, the web UI, middleware and the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from connectrpc.codec import proto_binary_codec

from .api.auth import AuthGate, authenticator_for
from .api.basepath import BasePath
from .api.coalesce import Coalesce
from .api.collections import CollectionService
from .api.compression import CompressLarge
from .api.errors import InternalErrors
from .api.guards import BodyGuard, HostGuard, HostPolicy, OriginGuard, RouteGuard
from .api.health import ops_routes
from .api.refusal import BodyDeadline
from .api.self_reflection import reflection_routes
from .api.service import CatalogService
from .api.sessions import ASGIApp, Message, Receive, Scope, Send, SessionMiddleware
from .api.static import StaticFiles
from .api.strictjson import StrictJSONCodec
from .audit import AuditLog
from .base import Base
from .counters import counters_for
from .descriptors import EMPTY, SchemaCache
from .gen.catalog.v1 import catalog_pb, collections_pb
from .gen.catalog.v1.catalog_connect import CatalogServiceASGIApplication
from .gen.catalog.v1.collections_connect import CollectionServiceASGIApplication
from .identity import current_identity
from .invocation import CallLimits
from .jsondepth import DEFAULT_MAX_DEPTH
from .loading import Loader
from .metrics import Metrics
from .policy import AccessPolicy, GuardedInvoker, GuardedLoader, IdentityLimits, Observers
from .registry import Registry
from .saved.secrets import Sealer
from .saved.store import Opener
from .session import (
    CLEANUP_INTERVAL,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_TTL,
    SessionManager,
    State,
)
from .session_store import open_store
from .settings import (
    AuthSettings,
    LimitSettings,
    OpsSettings,
    PolicySettings,
    SavedSettings,
    ServerSettings,
    SessionSettings,
    Settings,
)
from .shared import Replica
from .sources.compiler import Compiler
from .sources.core import Context, Limits
from .sources.disk import FILES
from .startup import BaseSpec, LoadedBase, load_base

__all__ = ["App", "AppConfig", "Settings", "create_app"]

API_PREFIX = "/catalog.v1.CatalogService/"
COLLECTIONS_PREFIX = "/catalog.v1.CollectionService/"
_log = logging.getLogger(__name__)
_CALL = CallLimits()
_SERVICE = catalog_pb.desc().services[0]
_COLLECTIONS = collections_pb.desc().services[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppConfig:
    """A flat way to write the settings the tests (and embedders) change most, with the
    runtime hooks `clock` and `extra_routes`; `settings()` is the tree it stands for."""

    session_ttl: float = DEFAULT_TTL
    cleanup_interval: float = CLEANUP_INTERVAL
    cors_origins: Sequence[str] = ()
    """Browser origins (besides the catalog's own page) that may call the API."""
    bind_host: str = "127.0.0.1"
    allowed_hosts: Sequence[str] = ()
    """Host names the catalog answers besides loopback, IP literals and `bind_host`."""
    max_request_bytes: int = 96 * 1024 * 1024
    max_json_depth: int = DEFAULT_MAX_DEPTH
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_timeout: float = _CALL.max_timeout
    """Longest deadline an InvokeGRPC/InvokeStream call may ask for, in seconds."""
    max_stream_messages: int = _CALL.max_messages
    max_streams_per_session: int = _CALL.max_streams
    max_loads_per_session: int = 4
    schema_cache_entries: int = 64
    extra_routes: dict[str, ASGIApp] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    base: BaseSpec = field(default_factory=BaseSpec)
    admin_token: str = ""
    git_base_url: str = ""
    buf: str = ""
    cache_dir: str = ""
    load_limits: Limits = field(default_factory=Limits)
    auth: AuthSettings = field(default_factory=AuthSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    saved: SavedSettings = field(default_factory=SavedSettings)
    sessions_per_identity: int = 0
    calls_per_minute: int = 0
    streams_per_identity: int = 0

    def settings(self) -> Settings:
        """The settings tree these values stand for."""
        return Settings(
            server=ServerSettings(
                host=self.bind_host,
                allowed_hosts=tuple(self.allowed_hosts),
                cors_origins=tuple(self.cors_origins),
            ),
            sessions=SessionSettings(
                ttl=self.session_ttl,
                cleanup_interval=self.cleanup_interval,
                max_sessions=self.max_sessions,
                per_identity=self.sessions_per_identity,
            ),
            limits=LimitSettings(
                max_request_bytes=self.max_request_bytes,
                max_json_depth=self.max_json_depth,
                max_timeout=self.max_timeout,
                max_stream_messages=self.max_stream_messages,
                max_streams_per_session=self.max_streams_per_session,
                max_loads_per_session=self.max_loads_per_session,
                schema_cache_entries=self.schema_cache_entries,
                calls_per_minute=self.calls_per_minute,
                streams_per_identity=self.streams_per_identity,
                load=self.load_limits,
            ),
            auth=replace(self.auth, admin_token=self.admin_token or self.auth.admin_token),
            policy=self.policy,
            ops=self.ops,
            saved=self.saved,
            base=self.base,
            git_base_url=self.git_base_url,
            buf=self.buf,
            cache_dir=self.cache_dir,
        )


class App:
    """The catalog's ASGI application; owns the session manager, compiler and caches."""

    def __init__(
        self,
        config: AppConfig | Settings,
        *,
        clock: Callable[[], float] | None = None,
        extra_routes: dict[str, ASGIApp] | None = None,
    ) -> None:
        if isinstance(config, AppConfig):
            clock = clock or config.clock
            extra_routes = {**config.extra_routes, **(extra_routes or {})}
            config = config.settings()
        self.settings = s = config
        self.clock = clock = clock or time.time
        self.base = Base()
        self._base_loaded = not s.base.sources
        self.schemas = SchemaCache(s.limits.schema_cache_entries)
        self.compiler = Compiler(
            workers=s.limits.compile_workers,
            max_queue=s.limits.compile_queue,
            max_worker_rss=s.limits.compile_worker_max_rss,
        )
        self.loader = Loader(
            Context(
                self.schemas,
                self.compiler,
                limits=s.limits.load,
                git_base_url=s.git_base_url,
                buf=s.buf or None,
                cache_dir=s.cache_dir or None,
                proto_roots=s.policy.proto_roots,
                import_paths=s.import_paths,
                max_compiled_bytes=s.limits.compiled_cache_bytes,
            )
        )
        """The loader of the start-up sources (the operator's: no policy applies)."""
        self.metrics = Metrics(self._figures, clock) if s.ops.metrics else None
        self.audit = AuditLog(s.ops.audit_log) if s.ops.audit_log else None
        self.observer = Observers(*(o for o in (self.metrics, self.audit) if o is not None))
        self.policy = AccessPolicy.build(
            proto_roots=s.policy.proto_roots,
            allow_targets=s.policy.allow_targets,
            allow_any_target=s.policy.allow_any_target,
            group_targets=s.policy.group_targets,
            group_roots=s.policy.group_proto_roots,
            permissive=s.server.loopback,
            operator_endpoints=_operator_endpoints(s.base),
        )
        store = open_store(
            s.sessions.store,
            prefix=s.sessions.store_prefix,
            ttl=s.sessions.ttl,
            cache=self.schemas,
            clock=clock,
        )
        self.identity_limits = IdentityLimits(
            calls_per_minute=s.limits.calls_per_minute,
            streams=s.limits.streams_per_identity,
            counters=counters_for(store, lease=s.limits.stream_lease),
        )
        """Counted in memory, or across processes with a shared store (counters.py)."""
        self.user_loader = GuardedLoader(self.loader, self.policy, self.observer)
        """The loader of LoadProtos: the access policy in front, metrics and audit behind."""
        self.manager = SessionManager(
            self._new_state,
            ttl=s.sessions.ttl,
            cleanup_interval=s.sessions.cleanup_interval,
            clock=clock,
            max_sessions=s.sessions.max_sessions,
            max_per_owner=s.sessions.per_identity,
            store=store,
        )
        if self.metrics is not None:
            self.manager.on_refused = self.metrics.refused_by
        self.replica = (
            Replica(
                self.manager,
                reload_base=self._reload_here,
                max_calls=s.limits.max_streams_per_session,
            )
            if self.manager.store.shared
            else None
        )
        """This process's side of a shared session store (`--session-store`), or None."""
        self._reload_lock = asyncio.Lock()
        self.service = CatalogService(
            manager=self.manager,
            loader=self.user_loader,
            base=self.base,
            reload_base=self.reload_base,
            admin_token=s.auth.admin_token,
            call_limits=CallLimits(
                max_timeout=s.limits.max_timeout,
                max_messages=s.limits.max_stream_messages,
                max_json_depth=s.limits.max_json_depth,
                max_streams=s.limits.max_streams_per_session,
            ),
            max_loads=s.limits.max_loads_per_session,
            max_schema_bytes=s.limits.max_schema_bytes,
        )
        api = CatalogServiceASGIApplication(
            self.service,
            read_max_bytes=s.limits.max_request_bytes,
            interceptors=[InternalErrors()],
            codecs=[proto_binary_codec(), StrictJSONCodec()],
        )
        self._api: ASGIApp = api_stack(
            by_kind(api, _SERVICE),
            _SERVICE,
            API_PREFIX,
            self.manager,
            s.limits,
            self.replica,
        )
        self.saved = Opener(
            s.saved.database,
            Sealer(s.saved.secret_key),
            everyone=s.auth.mode in ("none", "token"),
            max_saved_bytes=s.saved.max_saved_bytes_per_identity,
        )
        """Saved requests (saved/): the store, opened on first use or at start-up."""
        self.collections = CollectionService(
            opener=self.saved,
            call_limits=self.service.call_limits,
            policy=self.policy,
            max_run_seconds=s.saved.max_run_seconds,
        )
        collections_api = CollectionServiceASGIApplication(
            self.collections,
            read_max_bytes=s.limits.max_request_bytes,
            interceptors=[InternalErrors()],
            codecs=[proto_binary_codec(), StrictJSONCodec()],
        )
        self._apis: dict[str, ASGIApp] = {
            API_PREFIX: self._api,
            COLLECTIONS_PREFIX: api_stack(
                collections_api,
                _COLLECTIONS,
                COLLECTIONS_PREFIX,
                self.manager,
                s.limits,
                self.replica,
            ),
        }
        """Each catalog.v1 service's path prefix and its stack of guards."""
        self._static = StaticFiles()
        self.auth = authenticator_for(s.auth, clock=clock, audit=self.audit, metrics=self.metrics)
        self.service.auth_mode = self.auth.mode
        self.service.base_path = s.server.base_path
        self._exact: dict[str, ASGIApp] = {
            **ops_routes(self.ready, self.metrics),
            **self.auth.routes(),
        }
        reflection = reflection_routes()
        self._routes = {**reflection, **(extra_routes or {})}
        guarded = HostGuard(
            OriginGuard(
                AuthGate(
                    self._route,
                    self.auth,
                    (*self._apis, *reflection),
                    audit=self.audit,
                    metrics=self.metrics,
                ),
                s.server.cors_origins,
            ),
            HostPolicy.of(s.server.host, s.server.allowed_hosts),
        )
        # gRPC reflection (and embedders' routes) may stream a request for long: untimed
        self._app: ASGIApp = BodyDeadline(guarded, s.limits.max_body_seconds, tuple(self._routes))
        if s.server.base_path:
            self._app = BasePath(self._app, s.server.base_path)
        self._warmup: asyncio.Task[None] | None = None

    def _new_state(self, session_id: str, now: float) -> State:
        invoker = GuardedInvoker(
            owner=current_identity(),
            session=session_id[:8],
            policy=self.policy,
            limits=self.identity_limits,
            observer=self.observer,
        )
        state = State(
            id=session_id, registry=Registry(self.base, self.schemas), invoker=invoker, now=now
        )
        if self.replica is not None:  # its live calls are routed to the process owning each
            self.replica.live_calls(state)
        return state

    def _figures(self) -> dict[str, object]:
        stats = self.manager.get_stats()
        return {
            "active": stats.active_sessions,
            "created": self.manager.created,
            "expired": self.manager.expired,
            "oldest": stats.oldest_session,
            "newest": stats.newest_session,
            "builds": self.schemas.builds,
            "hits": self.schemas.hits,
            "memo_hits": self.loader.context.memo.hits,
            "entries": len(getattr(self.schemas, "_entries", ())),
            "runs": dict(self.loader.context.runs),
            "compile": self.compiler.stats(),
            "file_hits": FILES.hits,
        }

    async def ready(self) -> dict[str, bool]:
        """/readyz: the start-up sources are loaded and the compiler's worker runs."""
        if not self.compiler.alive():
            try:
                await asyncio.wait_for(self.compiler.warm_up(), 5.0)
            except Exception:  # reported as not ready
                _log.warning("the compiler's worker does not start", exc_info=True)
        alive = self.compiler.alive()
        checks = {"base_loaded": self._base_loaded, "worker_alive": alive}
        if self.manager.store.shared:  # --session-store: sessions live there
            checks["session_store"] = await self.manager.store.ready()
        provider = getattr(self.auth, "metadata", None)
        if provider is not None:  # --auth oidc: people can sign in only if it answers
            try:
                await asyncio.wait_for(provider(), 5.0)
                checks["oidc_provider"] = True
            except Exception:
                checks["oidc_provider"] = False
        return checks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        exact = self._exact.get(path)
        if exact is not None:
            await exact(scope, receive, send)
            return
        for api_prefix, api_app in self._apis.items():
            if path.startswith(api_prefix):
                await api_app(scope, receive, send)
                return
        for prefix, app in self._routes.items():
            if path.startswith(prefix):
                await app(scope, receive, send)
                return
        await self._static(scope, receive, send)

    async def reload_base(self) -> LoadedBase:
        """(Re)load the start-up sources and swap them in as the shared base.

        Raises BaseLoadError and keeps the current base when a source fails (unless the
        spec says keep_going). Sessions see the new base on their next call. With a shared
        session store, a reload (not the first load) is announced to every other process,
        which reloads too.
        """
        announce = self._base_loaded
        loaded = await self._reload_here()
        if announce and self.manager.store.shared:
            try:
                await self.manager.store.announce_reload()
            except Exception:  # reloaded here; the others catch up when the store is back
                _log.warning("could not announce the reload to the other catalog processes")
        return loaded

    async def _reload_here(self) -> LoadedBase:
        """Reload the base in this process only."""
        async with self._reload_lock:
            loaded = await load_base(self.loader, self.settings.base, EMPTY)
            self.base.replace(loaded.schema, loaded.targets, loaded.origins)
            self._base_loaded = True
            return loaded

    async def open_store(self) -> None:
        """Connect to the shared session store, if any (StoreUnavailable if it does not
        answer); idempotent."""
        if self.replica is not None:
            await self.manager.store.start(self.replica)

    async def startup(self) -> None:
        """Start background work: the session sweep and the compiler's worker process."""
        await self.open_store()
        self.manager.start()
        self._warmup = asyncio.create_task(self._warm_compiler())
        if self.settings.saved.database:  # named: it must open (and migrate) now
            await self.saved.get()

    async def _warm_compiler(self) -> None:
        try:
            await self.compiler.warm_up()
        except Exception:  # the first compile will retry and report a real error
            _log.warning("could not start the compiler process ahead of time", exc_info=True)

    async def shutdown(self) -> None:
        """Close every session, stop the sweep and the compiler."""
        if self._warmup is not None:
            self._warmup.cancel()
        await self.manager.close()
        await self.identity_limits.counters.close()
        await self.manager.store.close()
        await self.saved.close()
        await self.loader.close()
        await self.compiler.close()
        if self.audit is not None:
            self.audit.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def api_stack(
    inner: ASGIApp,
    service: Any,
    prefix: str,
    manager: SessionManager,
    limits: LimitSettings,
    replica: Replica | None = None,
) -> ASGIApp:
    """The guards in front of one catalog.v1 service (`service`: its generated
    descriptor, whose methods RouteGuard learns). BodyGuard also reads each body to its
    end before an answer starts (`refusal.Drained`); its refusals and RouteGuard's
    drain the body themselves."""
    return RouteGuard(
        BodyGuard(
            SessionMiddleware(inner, manager, prefix, replica),
            max_bytes=limits.max_request_bytes,
            max_depth=limits.max_json_depth,
        ),
        service.type_name,
        {f"/{service.type_name}/{m.name}": m.method_kind != "unary" for m in service.methods},
    )


class _ByKind:
    """Streamed answers pass Coalesce, unary ones CompressLarge; each leaves the other
    kind untouched, so a request passes only the one that can act on it."""

    __slots__ = ("routes", "unary")

    def __init__(self, routes: dict[str, ASGIApp], unary: ASGIApp) -> None:
        self.routes = routes
        self.unary = unary

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.routes.get(scope.get("path", ""), self.unary)(scope, receive, send)


def by_kind(api: ASGIApp, service: Any) -> ASGIApp:
    """`api` behind Coalesce for the streaming methods of `service`, CompressLarge for
    the unary ones (the other paths are answered by RouteGuard before they get here)."""
    unary, streamed = CompressLarge(api), Coalesce(api)
    kinds = {f"/{service.type_name}/{m.name}": m.method_kind != "unary" for m in service.methods}
    return _ByKind({p: streamed if s else unary for p, s in kinds.items()}, unary)


def _operator_endpoints(spec: BaseSpec) -> list[str]:
    """The endpoints the operator named (start-up target, --target-for, [targets])."""
    targets = [*spec.targets.values(), *(s.default_target for s in spec.sources)]
    return [t.endpoint for t in targets if t is not None and t.endpoint]


def create_app(config: AppConfig | Settings | None = None) -> App:
    """Build the catalog app."""
    return App(config or AppConfig())
