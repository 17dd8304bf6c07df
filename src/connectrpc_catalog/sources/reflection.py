"""gRPC server reflection client: the schemas of a running server, no .proto at hand.

`grpc.reflection.v1` first, `grpc.reflection.v1alpha` when the server answers
UNIMPLEMENTED (the two are wire-identical, so grpcio-reflection's v1alpha messages serve
both). The services are listed with a one-request call; then one bidirectional stream asks
for the file defining each service (pipelined) and for every dependency not yet received,
round after round, until the set is complete. The reflection service's own files are kept
when the server sends them and skipped when it cannot; well-known types a server cannot
send are taken from the protobuf runtime. The result goes through
`descriptor_set.load_set`, so reflecting an unchanged server again yields the same
shared `Schema`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from ..descriptors import WELL_KNOWN_FILES, Schema
from ..transports.base import grpc_address
from ..transports.status import code_name
from .core import Context, Given, LimitError, LoadError, SourceError, given_text, redact
from .descriptor_set import load_set

__all__ = [
    "DEFAULT_TIMEOUT",
    "VERSIONS",
    "Reflected",
    "ReflectionTarget",
    "load",
    "load_reflection",
    "parse_endpoint",
    "reflect",
]

_FIELD = "reflectionEndpoint"
"""The request field this source comes in."""

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 600.0
VERSIONS = ("v1", "v1alpha")
_Request: Any = reflection_pb2.ServerReflectionRequest
_Response: Any = reflection_pb2.ServerReflectionResponse
_MAX_DETAIL = 300
_TLS_WORDS = ("ssl", "tls", "handshake", "certificate", "verification", "hostname")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReflectionTarget:
    """Where and how to reflect: `endpoint` as given, `address` as `host:port`."""

    endpoint: str
    address: str
    use_tls: bool
    server_name: str = ""
    timeout: float = DEFAULT_TIMEOUT
    host: str = ""
    port: int = 0
    dial: str | None = None
    """The address to connect to (the access policy's checked one), or None to resolve
    `host`; the name still goes in :authority, SNI and the certificate check."""


@dataclass(frozen=True, slots=True)
class Reflected:
    """What a server sent: file name → serialized FileDescriptorProto, and its services."""

    files: dict[str, bytes]
    services: tuple[str, ...]
    version: str


def parse_endpoint(
    endpoint: str,
    *,
    use_tls: bool = False,
    server_name: str = "",
    timeout: float | None = None,
    dial: str | None = None,
) -> ReflectionTarget:
    """`host:port`, `[v6]:port`, or an `http(s)://host[:port]` URL; TLS for https and 443."""
    text = endpoint.strip()
    if not text:
        raise SourceError("reflectionEndpoint is empty", field=_FIELD)
    rest, default_port, tls = text, 443, use_tls
    lower = text.lower()
    if lower.startswith("https://"):
        rest, tls = text[8:], True
    elif lower.startswith("http://"):
        rest, default_port = text[7:], 80
    elif "://" in text:
        raise SourceError(
            f"reflectionEndpoint {redact(text)!r}: give host:port (e.g. localhost:50051) "
            "or an http:// or https:// URL",
            field=_FIELD,
        )
    rest = rest.rstrip("/")
    try:
        parts = urlsplit(f"//{rest}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or "/" in rest or "@" in rest:
        raise SourceError(
            f"reflectionEndpoint {redact(text)!r} is not host:port (e.g. localhost:50051)"
            + ("; credentials do not go in the endpoint" if "@" in rest else ""),
            field=_FIELD,
        )
    port = port or default_port
    seconds = DEFAULT_TIMEOUT if timeout is None or timeout <= 0 else min(timeout, MAX_TIMEOUT)
    return ReflectionTarget(
        endpoint=redact(text),
        address=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        use_tls=tls or port == 443,
        server_name=server_name.strip(),
        timeout=seconds,
        host=host,
        port=port,
        dial=dial,
    )


async def load(ctx: Context, given: Given) -> Schema:
    """The `reflectionEndpoint` source, with its reflectionOptions."""
    return await load_reflection(
        ctx,
        given_text(given, _FIELD),
        use_tls=given.use_tls,
        server_name=given.server_name,
        timeout_seconds=given.timeout,
        dial=given.dial,
    )


async def load_reflection(
    ctx: Context,
    endpoint: str,
    *,
    use_tls: bool = False,
    server_name: str = "",
    timeout_seconds: float | None = None,
    dial: str | None = None,
) -> Schema:
    """Reflect `endpoint` and load what it serves as a shared schema.

    TLS is used when `use_tls` is set or the port is 443; the timeout defaults to 10 s.
    `dial` is the address to connect to (the access policy's checked one).
    """
    target = parse_endpoint(
        endpoint, use_tls=use_tls, server_name=server_name, timeout=timeout_seconds, dial=dial
    )
    reflected = await reflect(
        target,
        max_bytes=ctx.limits.max_bytes,
        max_files=ctx.limits.max_files,
        tls_roots=ctx.tls_roots,
    )
    fds = descriptor_pb2.FileDescriptorSet()
    for data in reflected.files.values():
        fds.file.add().MergeFromString(data)
    return await load_set(ctx, fds.SerializeToString(), origin=f"reflection of {target.endpoint}")


async def reflect(
    target: ReflectionTarget,
    *,
    max_bytes: int = 64 * 1024 * 1024,
    max_files: int = 10_000,
    tls_roots: bytes | None = None,
) -> Reflected:
    """Every file a server's services need, through server reflection; LoadError if not."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.enable_retries", 0),
    ]
    # With a dialled address the channel goes to that IP (`ipv4:`/`ipv6:`, no second
    # resolution) and the name stays in :authority and the certificate check.
    name = target.server_name or (target.host if target.dial else "")
    if name:
        options.append(("grpc.default_authority", target.server_name or target.address))
        if target.use_tls:
            options.append(("grpc.ssl_target_name_override", name))
    address = grpc_address(target.host, target.port, target.dial) if target.dial else target.address
    try:
        async with asyncio.timeout(target.timeout):
            if target.use_tls:
                creds = grpc.ssl_channel_credentials(root_certificates=tls_roots)
                channel = grpc.aio.secure_channel(address, creds, options)
            else:
                channel = grpc.aio.insecure_channel(address, options)
            async with channel:
                version, services = await _list_services(target, channel)
                session = _Session(target, channel, version, max_bytes, max_files)
                return await session.run(services)
    except TimeoutError:
        raise LoadError(_timed_out(target)) from None
    except grpc.aio.AioRpcError as exc:
        raise LoadError(_rpc_failure(target, exc)) from None


def _path(version: str) -> str:
    return f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"


async def _list_services(
    target: ReflectionTarget, channel: grpc.aio.Channel
) -> tuple[str, tuple[str, ...]]:
    """The first reflection version the server serves, and its services.

    Probed with one request and a half-close (a unary-stream call on the bidi method):
    writing on an open stream that the server rejects at once can make grpc report
    INTERNAL instead of the server's UNIMPLEMENTED.
    """
    for version in VERSIONS:
        method = channel.unary_stream(
            _path(version),
            request_serializer=_Request.SerializeToString,
            response_deserializer=_Response.FromString,
        )
        try:
            answers = [r async for r in method(_Request(list_services=""), timeout=target.timeout)]
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED and version != VERSIONS[-1]:
                continue
            raise
        if not answers:
            raise LoadError(f"{target.endpoint} answered the reflection request with nothing")
        listing = answers[0]
        if listing.WhichOneof("message_response") == "error_response":
            raise LoadError(
                f"{target.endpoint} could not list its services: {_error(listing.error_response)}"
            )
        services = tuple(sorted({s.name for s in listing.list_services_response.service}))
        if not services:
            raise LoadError(f"{target.endpoint} serves reflection but lists no services")
        return version, services
    raise LoadError(f"reflection of {target.endpoint} failed")  # pragma: no cover


class _Session:
    """One ServerReflectionInfo stream, collecting files until no dependency is missing."""

    def __init__(
        self,
        target: ReflectionTarget,
        channel: grpc.aio.Channel,
        version: str,
        max_bytes: int,
        max_files: int,
    ) -> None:
        self.target = target
        self.version = version
        self.max_bytes = max_bytes
        self.max_files = max_files
        method = channel.stream_stream(
            _path(version),
            request_serializer=_Request.SerializeToString,
            response_deserializer=_Response.FromString,
        )
        self.call = method(timeout=target.timeout)
        self.files: dict[str, bytes] = {}
        self.deps: dict[str, tuple[str, ...]] = {}
        self.size = 0

    async def run(self, services: tuple[str, ...]) -> Reflected:
        try:
            return await self._run(services)
        except asyncio.InvalidStateError:  # written to after the server ended the stream
            code = await self.call.code()
            details = (await self.call.details() or "").strip()[:_MAX_DETAIL]
            raise LoadError(
                f"{self.target.endpoint} ended the reflection stream early: {code.name}: {details}"
            ) from None
        finally:
            self.call.cancel()

    async def _run(self, services: tuple[str, ...]) -> Reflected:
        endpoint = self.target.endpoint
        for name in services:
            await self.call.write(_Request(file_containing_symbol=name))
        for name in services:
            resp = await self._read()
            if resp.WhichOneof("message_response") == "error_response":
                if name.startswith("grpc.reflection."):
                    continue  # a server that cannot describe its reflection service itself
                raise LoadError(
                    f"{endpoint} lists {name} but could not send the file defining it: "
                    f"{_error(resp.error_response)}"
                )
            self._add(resp)
        asked = set(self.files)
        while missing := self._missing(asked):
            for name in missing:
                await self.call.write(_Request(file_by_filename=name))
            asked.update(missing)
            for name in missing:
                resp = await self._read()
                if resp.WhichOneof("message_response") != "error_response":
                    self._add(resp)
                elif name in WELL_KNOWN_FILES:
                    self._add_file(WELL_KNOWN_FILES[name])
                else:
                    importer = next((f for f, d in self.deps.items() if name in d), "a file")
                    raise LoadError(
                        f"{endpoint}: {importer} imports {name}, which the server could not "
                        f"send: {_error(resp.error_response)}"
                    )
        await self.call.done_writing()
        return Reflected(self.files, services, self.version)

    async def _read(self) -> Any:
        resp = await self.call.read()
        if resp is grpc.aio.EOF:
            raise LoadError(f"{self.target.endpoint} ended the reflection stream early")
        return resp

    def _add(self, resp: Any) -> None:
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            self._add_file(bytes(raw))

    def _add_file(self, raw: bytes) -> None:
        try:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:  # DecodeError, or a runtime-specific error type
            raise LoadError(
                f"{self.target.endpoint} sent a file descriptor that does not parse"
            ) from None
        if not proto.name or proto.name in self.files:
            return
        self.files[proto.name] = raw
        self.deps[proto.name] = tuple(proto.dependency)
        self.size += len(raw)
        if len(self.files) > self.max_files or self.size > self.max_bytes:
            raise LimitError(
                f"reflection of {self.target.endpoint}: more than {self.max_files} files "
                f"or {self.max_bytes} bytes",
            )

    def _missing(self, asked: set[str]) -> list[str]:
        return sorted({d for deps in self.deps.values() for d in deps} - asked - self.files.keys())


def _error(err: Any) -> str:
    name = code_name(err.error_code)
    text = (err.error_message or "").strip()[:_MAX_DETAIL]
    return f"{name}: {text}" if text else name


def _timed_out(target: ReflectionTarget) -> str:
    return (
        f"reflection of {target.endpoint} timed out after {target.timeout:g} s "
        "(is the address right and the server up? raise reflectionOptions.timeoutSeconds "
        "for a slow server)"
    )


def _rpc_failure(target: ReflectionTarget, exc: grpc.aio.AioRpcError) -> str:
    code = exc.code()
    details = (exc.details() or "").strip()[:_MAX_DETAIL]
    endpoint = target.endpoint
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return (
            f"{endpoint} does not serve gRPC server reflection (grpc.reflection.v1 and "
            "v1alpha both answered UNIMPLEMENTED); enable reflection on that server, or load "
            "its .proto files or a descriptor set instead"
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return _timed_out(target)
    if code == grpc.StatusCode.UNAVAILABLE:
        lower = details.lower()
        if target.use_tls and any(w in lower for w in _TLS_WORDS):
            hint = (
                "; the TLS handshake failed: if the server is plaintext, turn useTls off; if its "
                "certificate is for another name, set serverName"
            )
        elif not target.use_tls:
            hint = "; if the server uses TLS, set useTls"
        else:
            hint = ""
        return f"could not reach {endpoint} for reflection: {details or 'unavailable'}{hint}"
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return f"{endpoint} refused reflection ({code.name}): {details}"
    return f"reflection of {endpoint} failed: {code.name}: {details}"
