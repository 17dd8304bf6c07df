"""The catalog.v1 CatalogService handlers."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf.descriptor import (
    Descriptor,
    FileDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from ..base import Base
from ..calls import LiveCalls, live_calls
from ..descriptors import Schema, SchemaError
from ..gen.catalog.v1 import catalog_connect, catalog_pb
from ..identity import current_identity
from ..invocation import CallLimits, invoke_stream, invoke_unary
from ..loading import SOURCE_FIELDS, SOURCES, Loader
from ..registry import Registry
from ..rules import violations
from ..schema import is_infrastructure, options_of, schema_documents
from ..session import SessionManager, State
from ..sources.core import Given, LoadError, redact
from ..startup import BaseLoadError, LoadedBase
from ..transports import Invoker
from .sessions import current_session, session_status

__all__ = ["MAX_SCHEMA_BYTES", "CatalogService"]

Ctx = RequestContext[Any, Any]  # the handlers' context type, shortened

_MAX_IMPORT_PATHS = 32
"""The most `importPaths` one LoadProtos may give."""

MAX_SCHEMA_BYTES = 8 << 20
"""The most JSON Schema (bytes of the documents) one GetServiceSchema answer carries."""

_COMPACT = json.JSONEncoder(separators=(",", ":"), check_circular=False)  # documents are trees


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
        call_limits: CallLimits | None = None,
        max_loads: int = 4,
        max_schema_bytes: int = MAX_SCHEMA_BYTES,
    ) -> None:
        self.manager = manager
        self.loader = loader
        self.base = base
        self._reload_base = reload_base
        self._admin_token = admin_token
        self.call_limits = call_limits or CallLimits()
        self.max_loads = max_loads
        self.max_schema_bytes = max_schema_bytes
        self.auth_mode = "none"
        """How people sign in (the app sets it; GetSession reports it)."""
        self.base_path = ""
        """The path prefix browsers reach the catalog at (--base-path; the app sets it)."""

    async def load_protos(
        self, request: catalog_pb.LoadProtosRequest, ctx: Ctx
    ) -> catalog_pb.LoadProtosResponse:
        """Load one source into the caller's session, all-or-nothing."""
        state = current_session()
        with state.hold("loads", self.max_loads):
            response = await self._load(request)
        state.used = state.used or response.success
        return response

    async def _load(self, request: catalog_pb.LoadProtosRequest) -> catalog_pb.LoadProtosResponse:
        registry = _registry()
        try:
            kind, given = _source(request)
            schema, notes = await self.loader.load_noted(kind, given)
            view = await registry.add(schema, _label(kind, given))
        except (LoadError, SchemaError) as exc:
            view = await registry.current()
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
            import_root=notes.root,
            placed_files=notes.placed,
        )

    async def list_services(
        self, request: catalog_pb.ListServicesRequest, ctx: Ctx
    ) -> catalog_pb.ListServicesResponse:
        """The services the session sees, sorted by name."""
        return catalog_pb.ListServicesResponse(services=await _service_infos(_registry()))

    async def get_service_schema(
        self, request: catalog_pb.GetServiceSchemaRequest, ctx: Ctx
    ) -> catalog_pb.GetServiceSchemaResponse:
        """One service with the JSON Schema of its methods' messages."""
        name = request.service_name.strip().lstrip(".")
        if not name:
            raise ConnectError(Code.INVALID_ARGUMENT, "serviceName is required")
        registry = _registry()
        view = await registry.current()
        svc = registry.find_service(name)
        limit = self.max_schema_bytes
        built: _Built = await view.derive(
            ("json-schemas", svc.full_name, limit), lambda: _schemas(view, svc, limit)
        )
        if built.error:
            raise ConnectError(Code.RESOURCE_EXHAUSTED, built.error)
        info = _info(view, svc, registry.base)
        return catalog_pb.GetServiceSchemaResponse(
            service=info, message_schemas=dict(built.schemas)
        )

    async def invoke_grpc(
        self, request: catalog_pb.InvokeGRPCRequest, ctx: Ctx
    ) -> catalog_pb.InvokeGRPCResponse:
        """Call a unary method upstream."""
        state = current_session()
        state.used = True  # it holds a connection now
        return await invoke_unary(_registry(), _invoker(state), request, self.call_limits)

    async def invoke_stream(
        self, request: catalog_pb.InvokeStreamRequest, ctx: Ctx
    ) -> AsyncIterator[catalog_pb.InvokeStreamEvent]:
        """Call a method of any kind, streaming back what happens."""
        state = current_session()
        state.used = True  # it holds a connection now
        limits = self.call_limits
        with state.hold("streams", limits.max_streams):
            events = invoke_stream(_registry(), _invoker(state), request, limits)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()  # a client that went away cancels the upstream call

    # -- live calls (see calls.py) ---------------------------------------------

    def _live(self, state: State) -> LiveCalls:
        return live_calls(_invoker(state), self.call_limits.max_streams)

    async def start_call(
        self, request: catalog_pb.StartCallRequest, ctx: Ctx
    ) -> catalog_pb.StartCallResponse:
        """Start a live call that SendMessage, CloseSend and CancelCall then drive."""
        state = current_session()
        state.used = True  # it holds a connection now
        call = request.call or catalog_pb.InvokeStreamRequest()
        return await self._live(state).start(_registry(), call, self.call_limits)

    async def watch_call(
        self, request: catalog_pb.WatchCallRequest, ctx: Ctx
    ) -> AsyncIterator[catalog_pb.InvokeStreamEvent]:
        """The live call's events as they happen."""
        events = self._live(current_session()).watch(request.call_id)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def send_message(
        self, request: catalog_pb.SendMessageRequest, ctx: Ctx
    ) -> catalog_pb.SendMessageResponse:
        """Send one request message on a live call."""
        live = self._live(current_session())
        sent = await live.send(request.call_id, request.message_json)
        return catalog_pb.SendMessageResponse(sent_count=sent)

    async def close_send(
        self, request: catalog_pb.CloseSendRequest, ctx: Ctx
    ) -> catalog_pb.CloseSendResponse:
        """Half-close a live call."""
        sent = await self._live(current_session()).close_send(request.call_id)
        return catalog_pb.CloseSendResponse(sent_count=sent)

    async def cancel_call(
        self, request: catalog_pb.CancelCallRequest, ctx: Ctx
    ) -> catalog_pb.CancelCallResponse:
        """Cancel a live call upstream."""
        cancelled = await self._live(current_session()).cancel(request.call_id)
        return catalog_pb.CancelCallResponse(cancelled=cancelled)

    async def export_descriptor_set(
        self, request: catalog_pb.ExportDescriptorSetRequest, ctx: Ctx
    ) -> catalog_pb.ExportDescriptorSetResponse:
        """The session's schema (or one service's files) as a FileDescriptorSet."""
        registry = _registry()
        view = await registry.current()
        name = request.service_name.strip().lstrip(".")
        roots = [registry.find_service(name).file.name] if name else list(view.file_names)
        data, count = descriptor_set_of(view, roots)
        return catalog_pb.ExportDescriptorSetResponse(descriptor_set=data, file_count=count)

    async def validate_message(
        self, request: catalog_pb.ValidateMessageRequest, ctx: Ctx
    ) -> catalog_pb.ValidateMessageResponse:
        """The buf.validate rules a message breaks (protovalidate, CEL included)."""
        name = request.type_name.strip().lstrip(".")
        if not name:
            raise ConnectError(Code.INVALID_ARGUMENT, "typeName is required")
        limit = self.call_limits.max_call_bytes
        if len(request.message_json) > limit:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"messageJson holds {len(request.message_json)} bytes; at most {limit} are "
                "checked",
            )
        view = await _registry().current()
        try:
            desc = view.pool.FindMessageTypeByName(name)
        except KeyError:
            raise ConnectError(
                Code.NOT_FOUND, f"message type {name!r} is not loaded in this session"
            ) from None
        found = await asyncio.to_thread(
            violations, view, desc, request.message_json, self.call_limits.max_json_depth
        )
        return catalog_pb.ValidateMessageResponse(
            violations=[
                catalog_pb.RuleViolation(
                    field_path=v.field_path, rule_id=v.rule_id, message=v.message
                )
                for v in found
            ]
        )

    async def get_session(
        self, request: catalog_pb.GetSessionRequest, ctx: Ctx
    ) -> catalog_pb.GetSessionResponse:
        """Describe the caller's session, and who the caller is."""
        state = current_session()
        who = current_identity()
        registry = _registry()
        view = await registry.current()
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
            session_status=session_status(),
            identity=who.name,
            auth_mode=self.auth_mode,
            groups=sorted(who.groups),
            sign_out_url=f"{self.base_path}/auth/logout" if self.auth_mode == "oidc" else "",
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


def descriptor_set_of(view: Schema, roots: list[str]) -> tuple[bytes, int]:
    """A serialized FileDescriptorSet of `roots` and all they import, imports first."""
    order: list[str] = []
    seen: set[str] = set()
    pool = view.pool

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in pool.FindFileByName(name).dependencies:
            visit(dep.name)
        order.append(name)

    for root in roots:
        visit(root)
    out = bytearray()
    for name in order:
        data = view.files[name]
        out.append(0x0A)  # field 1 (file), length-delimited
        size = len(data)
        while size > 0x7F:
            out.append((size & 0x7F) | 0x80)
            size >>= 7
        out.append(size)
        out += data
    return bytes(out), len(order)


def _source(request: catalog_pb.LoadProtosRequest) -> tuple[str, Given]:
    """The request's source kind (its oneof field) and value, as the source table takes it."""
    source = request.source
    if source is None:
        raise ConnectError(Code.INVALID_ARGUMENT, f"no source given: set one of {SOURCE_FIELDS}")
    value = source.value
    opts = request.reflection_options
    given = Given(
        value=dict(value.files) if isinstance(value, catalog_pb.ProtoFiles) else value,
        use_tls=bool(opts and opts.use_tls),
        server_name=opts.server_name if opts else "",
        timeout=float(opts.timeout_seconds) if opts and opts.timeout_seconds > 0 else None,
        import_paths=tuple(request.import_paths[:_MAX_IMPORT_PATHS]),
    )
    if len(request.import_paths) > _MAX_IMPORT_PATHS:
        raise ConnectError(
            Code.INVALID_ARGUMENT,
            f"importPaths holds {len(request.import_paths)} folders; at most "
            f"{_MAX_IMPORT_PATHS} are allowed",
        )
    return source.field, given


def _label(kind: str, given: Given) -> str:
    """How a load is named in conflict messages: "protoPath ./protos", "uploaded files"."""
    if isinstance(given.value, str):
        row = SOURCES.get(kind)
        return redact(f"{row.field if row is not None else kind} {given.value.strip()}")
    return "uploaded files" if kind == "proto_files" else "an uploaded descriptor set"


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


async def _service_infos(registry: Registry) -> list[catalog_pb.ServiceInfo]:
    """The listing of the session's view, built once per view and base, in a thread."""
    view, base = await registry.current(), registry.base
    infos: tuple[catalog_pb.ServiceInfo, ...] = await view.derive(
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
        has_source_info=svc.file.name in view.described_files,
        infrastructure=is_infrastructure(svc.full_name),
        options=_options(svc),
        file_options=_options(svc.file),
        file=svc.file.name,
    )


def _method_info(m: MethodDescriptor, comments: Mapping[str, str]) -> catalog_pb.MethodInfo:
    return catalog_pb.MethodInfo(
        name=m.name,
        input_type=m.input_type.full_name,
        output_type=m.output_type.full_name,
        documentation=comments.get(m.full_name, ""),
        client_streaming=m.client_streaming,
        server_streaming=m.server_streaming,
        deprecated=m.GetOptions().deprecated,
        options=_options(m),
    )


def _file_of(desc: ServiceDescriptor | MethodDescriptor | FileDescriptor) -> Any:
    if isinstance(desc, FileDescriptor):
        return desc
    return desc.file if isinstance(desc, ServiceDescriptor) else desc.containing_service.file


def _options(
    desc: ServiceDescriptor | MethodDescriptor | FileDescriptor,
) -> list[catalog_pb.OptionInfo]:
    return [
        catalog_pb.OptionInfo(name=name, value_json=_COMPACT.encode(value))
        for name, value in options_of(desc, _file_of(desc).pool)
    ]


@dataclass(frozen=True)
class _Built:
    """The outcome of building a service's schemas, cached either way."""

    schemas: dict[str, str]
    error: str = ""


def _schemas(view: Schema, svc: ServiceDescriptor, limit: int) -> _Built:
    """JSON Schemas (one document per type, see `schema`) of the methods' messages and all
    they reach, then of every other top-level message of the service's package and all
    they reach (what an `Any` field of this API is likely to hold), while they fit.

    Runs in a worker thread; stops as soon as `limit` bytes are exceeded.
    """
    comments = view.comments
    out: dict[str, str] = {}
    roots = [d for m in svc.methods for d in (m.input_type, m.output_type)]
    size = _add_documents(out, roots, comments, limit, known=())
    if size < 0:
        return _Built({}, _too_large(svc, limit))
    for desc in _package_messages(view, svc.file.package):
        if desc.full_name in out:
            continue
        extra: dict[str, str] = {}
        added = _add_documents(extra, [desc], comments, limit - size, known=out)
        if added < 0:
            break  # the extras are a convenience: keep those that fit
        out.update(extra)
        size += added
    return _Built(out)


def _add_documents(
    out: dict[str, str],
    roots: list[Descriptor],
    comments: Mapping[str, str],
    budget: int,
    known: dict[str, str] | tuple[()],
) -> int:
    """Serialize the documents of `roots` and what they reach into `out`; the bytes added,
    or -1 (with `out` partly filled) as soon as they exceed `budget`."""
    size = 0
    for name, doc in schema_documents(roots, comments, known):
        text = _COMPACT.encode(doc)
        size += len(name) + len(text)
        if size > budget:
            return -1
        out[name] = text
    return size


def _package_messages(view: Schema, package: str) -> list[Descriptor]:
    found: list[Descriptor] = []
    for name in view.file_names:
        fd = view.pool.FindFileByName(name)
        if fd.package == package:
            found.extend(fd.message_types_by_name.values())
    return found


def _too_large(svc: ServiceDescriptor, limit: int) -> str:
    amount = f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"
    return (
        f"the JSON Schemas of the types that the methods of {svc.full_name} use come to "
        f"more than {amount}, the most GetServiceSchema answers; split the service, or load "
        "a descriptor set in which its requests and responses reach fewer message types"
    )
