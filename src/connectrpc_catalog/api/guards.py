"""Pure-ASGI middleware that refuses hostile requests before any work is done.

* `HostGuard`: the `Host` must name this catalog (DNS rebinding defence).
* `OriginGuard`: only the catalog's own page, and origins the operator names, may call
  it from a browser (CORS for those origins; `Sec-Fetch-Site` as a second line).
* `BodyGuard`: for the API only: headers are UTF-8, gRPC comes over HTTP/2, and JSON
  bodies are bounded in size and nesting before connectrpc parses them.

Every refusal is a Connect error (see `refusal`) and runs no handler, so it never
creates a session.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from connectrpc.code import Code

from ..jsondepth import JSONDepthError, check_depth
from .refusal import ASGIApp, Drained, Message, Receive, Scope, Send, header, refuse

__all__ = ["BodyGuard", "HostGuard", "HostPolicy", "OriginGuard", "RouteGuard"]

_OFF_LOOP_BYTES = 64 * 1024
"""JSON bodies larger than this are checked in a worker thread."""


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which `Host` values the catalog answers: loopback and IP literals, `localhost`,
    the bind address, and the names the operator allowed (`*` allows any)."""

    bind_host: str = "127.0.0.1"
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, bind_host: str, names: Iterable[str]) -> HostPolicy:
        """A policy for a server bound to `bind_host` that also answers `names`."""
        return cls(bind_host.lower().strip("[]"), frozenset(_hostname(n) for n in names))

    def allows(self, host: str) -> bool:
        """Whether a request's Host header (with or without port) names this catalog."""
        if "*" in self.names:
            return True
        name = _hostname(host)
        if name in ("localhost", self.bind_host) or name.endswith(".localhost"):
            return True
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True  # a rebinding page's Host is a name, never an address


def _hostname(host: str) -> str:
    """`Example.com:8080` → `example.com`; `[::1]:80` → `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


_ALLOWED_KEPT = 64
"""Distinct allowed Host values HostGuard remembers (a client may send any number)."""


class HostGuard:
    """Refuses requests whose Host is not a name of this catalog (DNS rebinding)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy
        self._allowed: set[bytes] = set()
        """Host values already allowed (at most _ALLOWED_KEPT): the policy never changes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = header(scope, b"host")
            if raw and raw not in self._allowed:
                host = raw.decode("latin-1")
                if self.policy.allows(host):
                    if len(self._allowed) < _ALLOWED_KEPT:
                        self._allowed.add(raw)
                    await self.app(scope, receive, send)
                    return
                name = _hostname(host)
                await refuse(
                    scope,
                    receive,
                    send,
                    Code.PERMISSION_DENIED,
                    f"this catalog does not answer to the host name {name!r}; if it is one "
                    f"of its names, start it with --allowed-host {name}",
                )
                return
        await self.app(scope, receive, send)


class OriginGuard:
    """Same-origin by default: browsers on other origins are refused, unless configured.

    Configured origins get CORS answers (preflight, and X-Session-ID exposed). `*` lets
    any origin call without credentials; `null` is never allowed.
    """

    ALLOW_HEADERS = (
        b"content-type, connect-protocol-version, connect-timeout-ms, x-session-id, "
        b"x-grpc-web, x-user-agent, grpc-timeout, authorization, x-catalog-token"
    )
    EXPOSE_HEADERS = (
        b"x-session-id, x-session-status, grpc-status, grpc-message, grpc-status-details-bin"
    )

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        allowed = {o.rstrip("/") for o in origins}
        if "null" in allowed:
            raise ValueError("the origin 'null' cannot be allowed")
        self.any = "*" in allowed
        self.origins = frozenset(o.encode() for o in allowed - {"*"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        if origin is not None and (self.any or origin in self.origins):
            await self._cors(origin, scope, receive, send)
            return
        if origin is not None and not _same_origin(scope, origin):
            shown = origin.decode("latin-1")
            await refuse(
                scope,
                receive,
                send,
                Code.PERMISSION_DENIED,
                f"requests from the web page at {shown} are refused: the catalog answers "
                f"only its own page; to allow that page, start it with --cors-origin {shown}",
            )
            return
        if origin is None and _cross_site_fetch(scope):
            await refuse(
                scope,
                receive,
                send,
                Code.PERMISSION_DENIED,
                "requests from other web sites are refused: the catalog answers only its "
                "own page (start it with --cors-origin ORIGIN to allow another page)",
            )
            return
        await self.app(scope, receive, send)

    async def _cors(self, origin: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        allow = b"*" if self.any and origin not in self.origins else origin
        if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", allow),
                        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                        (b"access-control-allow-headers", self.ALLOW_HEADERS),
                        (b"access-control-max-age", b"7200"),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        cors = [
            (b"access-control-allow-origin", allow),
            (b"access-control-expose-headers", self.EXPOSE_HEADERS),
            (b"vary", b"Origin"),
        ]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _same_origin(scope: Scope, origin: bytes) -> bool:
    """Whether `Origin` names the host the request was sent to (any scheme: a TLS proxy
    in front changes it; the Host itself was checked by HostGuard)."""
    host = header(scope, b"host")
    _, sep, rest = origin.partition(b"://")
    return bool(sep) and host is not None and rest.lower() == host.lower()


def _cross_site_fetch(scope: Scope) -> bool:
    """A browser request from another site that is not a navigation (a link to the UI)."""
    site = header(scope, b"sec-fetch-site")
    if site not in (b"cross-site", b"same-site"):
        return False
    return header(scope, b"sec-fetch-mode") != b"navigate"


_UNARY_TYPES = (b"application/json", b"application/proto")
_STREAM_TYPES = (b"application/connect+json", b"application/connect+proto")


class RouteGuard:
    """Answers what connectrpc would answer with an empty body (404, 405, 415) with a
    Connect error that says what to send instead. `methods` maps each API path to
    whether its response streams."""

    def __init__(self, app: ASGIApp, service: str, methods: dict[str, bool]) -> None:
        self.app = app
        self.service = service
        self.methods = methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = self.methods.get(scope["path"])
        if streaming is None:
            names = ", ".join(sorted(p.rsplit("/", 1)[-1] for p in self.methods))
            await refuse(
                scope,
                receive,
                send,
                Code.NOT_FOUND,
                f"no method {scope['path']!r}; {self.service} has {names}",
            )
            return
        if scope["method"] != "POST":
            await refuse(
                scope,
                receive,
                send,
                Code.INVALID_ARGUMENT,
                f"{scope['method']} is not accepted here: call the catalog's methods with POST",
                http_status=405,
                extra_headers=[(b"allow", b"POST")],
            )
            return
        problem = _content_type_problem(scope, streaming)
        if problem is not None:
            await refuse(scope, receive, send, Code.INVALID_ARGUMENT, problem, http_status=415)
            return
        await self.app(scope, receive, send)


def _content_type_problem(scope: Scope, streaming: bool) -> str | None:
    raw = header(scope, b"content-type")
    content_type = (raw or b"").partition(b";")[0].strip().lower()
    if content_type.startswith(b"application/grpc"):
        return None  # gRPC and gRPC-Web carry every kind of method
    wanted = _STREAM_TYPES if streaming else _UNARY_TYPES
    if content_type in wanted:
        return None
    method = scope["path"].rsplit("/", 1)[-1]
    shown = f"Content-Type {raw.decode('latin-1')!r}" if raw else "a request without Content-Type"
    if streaming and content_type in _UNARY_TYPES:
        return (
            f"{method} streams its answer, so {shown} does not fit: send "
            "application/connect+json (or +proto) with an enveloped body, or use gRPC or gRPC-Web"
        )
    return f"{shown} is not accepted by {method}: send {' or '.join(t.decode() for t in wanted)}"


_JSON_TYPES = frozenset(
    (
        b"application/json",
        b"application/connect+json",
        b"application/grpc+json",
        b"application/grpc-web+json",
    )
)
_ENVELOPE = struct.Struct(">BI")


class BodyGuard:
    """Checks what connectrpc would choke on, for the API paths only."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = _header_problem(scope)
        if problem is not None:
            await refuse(scope, receive, send, Code.INVALID_ARGUMENT, problem)
            return
        content_type = (header(scope, b"content-type") or b"").partition(b";")[0].strip()
        content_type = content_type.lower()
        is_grpc = content_type.startswith(b"application/grpc") and not content_type.startswith(
            b"application/grpc-web"
        )
        if is_grpc and scope.get("http_version") != "2":
            await refuse(
                scope,
                receive,
                send,
                Code.INVALID_ARGUMENT,
                "gRPC needs HTTP/2: use an HTTP/2 client (h2c, prior knowledge), or "
                "the Connect or gRPC-Web protocol over HTTP/1.1",
                http_status=400,
            )
            return
        if content_type not in _JSON_TYPES or scope.get("method") != "POST":
            drained = Drained(receive)  # the body is read to its end before an answer
            await self.app(scope, drained.receive, drained.sender(send))
            return
        body, complete = await _read_body(receive, self.max_bytes)
        if body is None:
            await refuse(
                scope,
                None if complete else receive,
                send,
                Code.RESOURCE_EXHAUSTED,
                f"the request body is larger than {self.max_bytes} bytes, the catalog's "
                "limit (--max-request-bytes)",
            )
            return
        problem = await self._json_problem(scope, content_type, body)
        if problem is not None:
            await refuse(scope, None, send, Code.INVALID_ARGUMENT, problem)  # body read
            return
        await self.app(scope, Drained(receive, body).receive, send)  # the body, once

    async def _json_problem(self, scope: Scope, content_type: bytes, body: bytes) -> str | None:
        enveloped = content_type != b"application/json"
        encoding = _encoding(scope, enveloped)
        try:
            if len(body) > _OFF_LOOP_BYTES:
                await asyncio.to_thread(_check, body, enveloped, encoding, self)
            else:
                _check(body, enveloped, encoding, self)
        except JSONDepthError as exc:
            return f"the request body is not acceptable JSON: {exc}"
        except _Unreadable as exc:
            return str(exc)
        return None


class _Unreadable(ValueError):
    """A body the guard cannot check (and connectrpc would refuse too)."""


def _check(body: bytes, enveloped: bool, encoding: bytes, guard: BodyGuard) -> None:
    if not enveloped:
        text = _decompress(body, encoding, guard.max_bytes)
        if text != b"{}":  # the body of every call without arguments nests one level
            check_depth(text, guard.max_depth)
        return
    view = memoryview(body)
    while len(view) >= _ENVELOPE.size:
        flags, size = _ENVELOPE.unpack_from(view)
        payload = bytes(view[_ENVELOPE.size : _ENVELOPE.size + size])
        view = view[_ENVELOPE.size + size :]
        if flags & 0x01:
            payload = _decompress(payload, encoding, guard.max_bytes)
        if not flags & 0x80:  # 0x80 marks an end-of-stream frame (not JSON of a message)
            check_depth(payload, guard.max_depth)


def _encoding(scope: Scope, enveloped: bool) -> bytes:
    names = (b"connect-content-encoding", b"grpc-encoding") if enveloped else (b"content-encoding",)
    for name in names:
        value = header(scope, name)
        if value:
            return value.strip().lower()
    return b"identity"


def _decompress(data: bytes, encoding: bytes, limit: int) -> bytes:
    if encoding in (b"", b"identity"):
        return data
    if encoding != b"gzip":
        raise _Unreadable(
            f"JSON requests compressed with {encoding.decode('latin-1')!r} are not accepted; "
            "send them uncompressed or with gzip"
        )
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise _Unreadable("the request body is not valid gzip") from None
    if len(out) > limit:
        raise _Unreadable(f"the request body inflates past {limit} bytes, the catalog's limit")
    return out


def _header_problem(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if type(key) is bytes and type(value) is bytes and key.isascii() and value.isascii():
            continue  # ASCII is UTF-8 (one C scan each, no copy)
        try:
            bytes(key).decode("utf-8")
            bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            name = bytes(key).decode("latin-1")
            return f"the header {name!r} holds bytes that are not UTF-8 text"
    return None


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The whole request body (None once it grows past `limit` bytes), and whether the
    client has sent all of it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        complete = not message.get("more_body", False)
        if size > limit:
            return None, complete
        chunks.append(chunk)
        if complete:
            return b"".join(chunks), True
