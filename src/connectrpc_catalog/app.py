"""ASGI wiring: the catalog API, the web UI, middleware and the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from connectrpc.codec import proto_binary_codec

from .api.errors import InternalErrors
from .api.guards import BodyGuard, HostGuard, HostPolicy, OriginGuard, RouteGuard
from .api.refusal import DrainFirst
from .api.self_reflection import reflection_routes
from .api.service import CatalogService
from .api.sessions import ASGIApp, Message, Receive, Scope, Send, SessionMiddleware
from .api.static import StaticFiles
from .api.strictjson import StrictJSONCodec
from .base import Base
from .descriptors import EMPTY, SchemaCache
from .gen.catalog.v1 import catalog_pb
from .gen.catalog.v1.catalog_connect import CatalogServiceASGIApplication
from .invocation import CallLimits
from .jsondepth import DEFAULT_MAX_DEPTH
from .loading import Loader
from .registry import Registry
from .session import (
    CLEANUP_INTERVAL,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_TTL,
    SessionManager,
    State,
)
from .sources.compiler import Compiler
from .sources.core import Context, Limits
from .startup import BaseSpec, LoadedBase, load_base
from .transports import Invoker

__all__ = ["App", "AppConfig", "create_app"]

API_PREFIX = "/catalog.v1.CatalogService/"
_log = logging.getLogger(__name__)
_CALL = CallLimits()
_SERVICE = catalog_pb.desc().services[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppConfig:
    """What the app needs to know at start-up."""

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


class App:
    """The catalog's ASGI application; owns the session manager, compiler and caches."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.base = Base()
        self.schemas = SchemaCache(config.schema_cache_entries)
        self.compiler = Compiler()
        self.loader = Loader(
            Context(
                self.schemas,
                self.compiler,
                limits=config.load_limits,
                git_base_url=config.git_base_url,
                buf=config.buf or None,
                cache_dir=config.cache_dir or None,
            )
        )
        self.manager = SessionManager(
            self._new_state,
            ttl=config.session_ttl,
            cleanup_interval=config.cleanup_interval,
            clock=config.clock,
            max_sessions=config.max_sessions,
        )
        self._reload_lock = asyncio.Lock()
        self.service = CatalogService(
            manager=self.manager,
            loader=self.loader,
            base=self.base,
            reload_base=self.reload_base,
            admin_token=config.admin_token,
            call_limits=CallLimits(
                max_timeout=config.max_timeout,
                max_messages=config.max_stream_messages,
                max_json_depth=config.max_json_depth,
                max_streams=config.max_streams_per_session,
            ),
            max_loads=config.max_loads_per_session,
        )
        api = CatalogServiceASGIApplication(
            self.service,
            read_max_bytes=config.max_request_bytes,
            interceptors=[InternalErrors()],
            codecs=[proto_binary_codec(), StrictJSONCodec()],
        )
        self._api: ASGIApp = DrainFirst(
            RouteGuard(
                BodyGuard(
                    SessionMiddleware(api, self.manager, API_PREFIX),
                    max_bytes=config.max_request_bytes,
                    max_depth=config.max_json_depth,
                ),
                _SERVICE.type_name,
                {
                    f"/{_SERVICE.type_name}/{m.name}": m.method_kind != "unary"
                    for m in _SERVICE.methods
                },
            )
        )
        self._static = StaticFiles()
        self._routes = {**reflection_routes(), **config.extra_routes}
        self._app: ASGIApp = HostGuard(
            OriginGuard(self._route, config.cors_origins),
            HostPolicy.of(config.bind_host, config.allowed_hosts),
        )
        self._warmup: asyncio.Task[None] | None = None

    def _new_state(self, session_id: str, now: float) -> State:
        return State(
            id=session_id, registry=Registry(self.base, self.schemas), invoker=Invoker(), now=now
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if path.startswith(API_PREFIX):
            await self._api(scope, receive, send)
            return
        for prefix, app in self._routes.items():
            if path.startswith(prefix):
                await app(scope, receive, send)
                return
        await self._static(scope, receive, send)

    async def reload_base(self) -> LoadedBase:
        """(Re)load the start-up sources and swap them in as the shared base.

        Raises BaseLoadError and keeps the current base when a source fails (unless the
        spec says keep_going). Sessions see the new base on their next call.
        """
        async with self._reload_lock:
            loaded = await load_base(self.loader, self.config.base, EMPTY)
            self.base.replace(loaded.schema, loaded.targets, loaded.origins)
            return loaded

    async def startup(self) -> None:
        """Start background work: the session sweep and the compiler's worker process."""
        self.manager.start()
        self._warmup = asyncio.create_task(self._warm_compiler())

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
        await self.loader.close()
        await self.compiler.close()

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


def create_app(config: AppConfig | None = None) -> App:
    """Build the catalog app."""
    return App(config or AppConfig())
