"""The catalog.v1 CatalogService handlers."""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from .base import Base
from .descriptors import Schema, SchemaError
from .gen.catalog.v1 import catalog_connect, catalog_pb
from .invocation import invoke_stream, invoke_unary
from .invoker import Invoker
from .loader import Loader, LoadError
from .middleware import current_session
from .registry import Registry
from .schema import message_schema
from .session import SessionManager, State
from .sources import load_source
from .startup import BaseLoadError, LoadedBase

__all__ = ["CatalogService"]

Ctx = RequestContext[Any, Any]  # the handlers' context type, shortened


class CatalogService(catalog_connect.CatalogService):
    """Implements catalog.v1.CatalogService on top of sessions, the loader and the invoker."""

    def __init__(
        self,
        *,
        manager: SessionManager,
        loader: Loader,
        base: Base,
        reload_base: Callable[[], Awaitable[LoadedBase]],
        admin_token: str = "",
    ) -> None:
        self.manager = manager
        self.loader = loader
        self.base = base
        self._reload_base = reload_base
        self._admin_token = admin_token

    async def load_protos(
        self, request: catalog_pb.LoadProtosRequest, ctx: Ctx
    ) -> catalog_pb.LoadProtosResponse:
        """Load one source into the caller's session, all-or-nothing."""
        registry = _registry()
        try:
            schema = await load_source(self.loader, request)
            view = await registry.add(schema)
        except (LoadError, SchemaError) as exc:
            view = registry.view
            return catalog_pb.LoadProtosResponse(
                success=False,
                error=str(exc),
                service_count=len(view.service_names),
                file_count=_user_file_count(view),
            )
        return catalog_pb.LoadProtosResponse(
            success=True,
            service_count=len(view.service_names),
            file_count=_user_file_count(view),
            loaded_services=list(schema.service_names),
        )

    async def list_services(
        self, request: catalog_pb.ListServicesRequest, ctx: Ctx
    ) -> catalog_pb.ListServicesResponse:
        """The services the session sees, sorted by name."""
        return catalog_pb.ListServicesResponse(services=_service_infos(_registry()))

    async def get_service_schema(
        self, request: catalog_pb.GetServiceSchemaRequest, ctx: Ctx
    ) -> catalog_pb.GetServiceSchemaResponse:
        """One service with the JSON Schema of its methods' messages."""
        name = request.service_name.strip().lstrip(".")
        if not name:
            raise ConnectError(Code.INVALID_ARGUMENT, "service_name is required")
        registry = _registry()
        svc = registry.find_service(name)
        view = registry.view
        schemas: dict[str, str] = view.cached(("json-schemas", name), lambda: _schemas(view, svc))
        info = _info(view, svc, registry.base)
        return catalog_pb.GetServiceSchemaResponse(service=info, message_schemas=dict(schemas))

    async def invoke_grpc(
        self, request: catalog_pb.InvokeGRPCRequest, ctx: Ctx
    ) -> catalog_pb.InvokeGRPCResponse:
        """Call a unary method upstream."""
        state = current_session()
        return await invoke_unary(_registry(), _invoker(state), request)

    async def invoke_stream(
        self, request: catalog_pb.InvokeStreamRequest, ctx: Ctx
    ) -> AsyncIterator[catalog_pb.InvokeStreamEvent]:
        """Call a method of any kind, streaming back what happens."""
        state = current_session()
        events = invoke_stream(_registry(), _invoker(state), request)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()  # a client that went away cancels the upstream call

    async def get_session(
        self, request: catalog_pb.GetSessionRequest, ctx: Ctx
    ) -> catalog_pb.GetSessionResponse:
        """Describe the caller's session."""
        state = current_session()
        registry = _registry()
        view = registry.view
        own = registry.own_services()
        own_set = set(own)
        return catalog_pb.GetSessionResponse(
            session_id=state.id,
            created_at=_timestamp(state.created_at),
            last_used=_timestamp(state.last_used),
            expires_at=_timestamp(self.manager.expires_at(state)),
            file_count=_user_file_count(view),
            service_count=len(view.service_names),
            base_services=[n for n in view.service_names if n not in own_set],
            session_services=list(own),
            ttl_seconds=int(self.manager.ttl),
        )

    async def close_session(
        self, request: catalog_pb.CloseSessionRequest, ctx: Ctx
    ) -> catalog_pb.CloseSessionResponse:
        """End the caller's session now."""
        return catalog_pb.CloseSessionResponse(closed=await self.manager.end(current_session().id))

    async def reload_base(
        self, request: catalog_pb.ReloadBaseRequest, ctx: Ctx
    ) -> catalog_pb.ReloadBaseResponse:
        """Reload the start-up sources (admin only: `Authorization: Bearer <admin token>`)."""
        if not self._admin_token:
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                "ReloadBase is disabled: start the catalog with --admin-token to enable it",
            )
        given = ctx.request_headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._admin_token.encode()
        ):
            raise ConnectError(
                Code.UNAUTHENTICATED,
                "ReloadBase needs the header Authorization: Bearer <admin token>",
            )
        try:
            loaded = await self._reload_base()
        except BaseLoadError as exc:
            view = self.base.schema
            return catalog_pb.ReloadBaseResponse(
                success=False,
                error=f"the previous base stays in place: {exc}",
                service_count=len(view.service_names),
                file_count=_user_file_count(view),
            )
        return catalog_pb.ReloadBaseResponse(
            success=True,
            error="\n".join(f"skipped: {s}" for s in loaded.skipped),
            service_count=len(loaded.schema.service_names),
            file_count=_user_file_count(loaded.schema),
        )


def _registry() -> Registry:
    registry = current_session().registry
    if not isinstance(registry, Registry):  # pragma: no cover - wiring error
        raise ConnectError(Code.INTERNAL, "session has no registry")
    return registry


def _invoker(state: State) -> Invoker:
    invoker = state.invoker
    if not isinstance(invoker, Invoker):  # pragma: no cover - wiring error
        raise ConnectError(Code.INTERNAL, "session has no invoker")
    return invoker


def _user_file_count(view: Schema) -> int:
    return sum(1 for name in view.file_names if not name.startswith("google/protobuf/"))


def _timestamp(t: float) -> Timestamp:
    seconds = int(t)
    return Timestamp(seconds=seconds, nanos=int((t - seconds) * 1e9))


def _service_infos(registry: Registry) -> list[catalog_pb.ServiceInfo]:
    view, base = registry.view, registry.base
    infos: tuple[catalog_pb.ServiceInfo, ...] = view.cached(
        ("service-infos", id(base), base.version),
        lambda: tuple(
            _info(view, svc, base)
            for svc in (view.service(n) for n in view.service_names)
            if svc is not None
        ),
    )
    return list(infos)


def _info(view: Schema, svc: ServiceDescriptor, base: Base) -> catalog_pb.ServiceInfo:
    comments = view.comments
    package = svc.file.package
    return catalog_pb.ServiceInfo(
        name=svc.full_name,
        package=package,
        documentation=comments.get(svc.full_name, ""),
        methods=[_method_info(m, comments) for m in svc.methods],
        default_target=base.target_for(svc.full_name),
        from_base=svc.full_name in base.schema.service_names,
        deprecated=svc.GetOptions().deprecated,
    )


def _method_info(m: MethodDescriptor, comments: dict[str, str]) -> catalog_pb.MethodInfo:
    return catalog_pb.MethodInfo(
        name=m.name,
        input_type=m.input_type.full_name,
        output_type=m.output_type.full_name,
        documentation=comments.get(m.full_name, ""),
        client_streaming=m.client_streaming,
        server_streaming=m.server_streaming,
        deprecated=m.GetOptions().deprecated,
    )


def _schemas(view: Schema, svc: ServiceDescriptor) -> dict[str, str]:
    """JSON Schemas of the methods' messages, then of every other top-level message of the
    service's package (what an `Any` field of this API is likely to hold)."""
    wanted = [d for m in svc.methods for d in (m.input_type, m.output_type)]
    package = svc.file.package
    for name in view.file_names:
        fd = view.pool.FindFileByName(name)
        if fd.package == package:
            wanted.extend(fd.message_types_by_name.values())
    out: dict[str, str] = {}
    for desc in wanted:
        if desc.full_name not in out:
            out[desc.full_name] = json.dumps(message_schema(desc, view.comments))
    return out
