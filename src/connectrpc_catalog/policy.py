"""The access policy: which folders of the server's disk a load may read
(`--proto-root`), which hosts a call or a reflection may reach (`--allow-target`),
optionally per group, and the limits per identity (calls per minute, streams at once).

It applies where the work is done: `GuardedLoader` wraps the source table for every
`LoadProtos` (start-up sources are the operator's and load unguarded) and
`GuardedInvoker` wraps each session's pool of upstream connections. Both report what
happened to an `Observer` (metrics, the audit log).

Targets are checked by address: the name is resolved and every address it resolves to
must be allowed, so `127.1`, `2130706433`, `0x7f.1`, `[::1]`, `::ffff:127.0.0.1`,
`0.0.0.0` or a name that resolves to a loopback or link-local address do not get around
a rule. A name pattern (`*.staging.internal:443`) never admits loopback, link-local
(cloud metadata), unspecified or multicast addresses; only an address rule (`127.0.0.1`,
`10.0.0.0/8:8080`) does. Refusals are PERMISSION_DENIED and name the setting that
would allow the request. Never imports connectrpc.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import ipaddress
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from .counters import LimitCounters, MemoryCounters
from .descriptors import Schema
from .happy_eyeballs import Chooser
from .identity import Identity, current_identity, session_tag
from .loading import Loader
from .problems import Code, RequestError
from .sources import buf, git
from .sources.core import Given, LoadError, redact
from .sources.reflection import parse_endpoint
from .transports import (
    CallEvent,
    CallStatus,
    CallTarget,
    Invoker,
    Metadata,
    MethodRef,
    Payloads,
    UnaryResult,
)

__all__ = [
    "AccessPolicy",
    "GuardedInvoker",
    "GuardedLoader",
    "IdentityLimits",
    "LimitExceeded",
    "Observer",
    "PolicyError",
    "RootPolicy",
    "TargetPolicy",
    "TargetRule",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_PATTERN = 300
_RESOLVE_TIMEOUT = 5.0


class PolicyError(RequestError):
    """A load or call the access policy does not allow: PERMISSION_DENIED."""

    code = Code.PERMISSION_DENIED


class LimitExceeded(RequestError):
    """A per-identity limit reached: RESOURCE_EXHAUSTED, naming the limit."""

    code = Code.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


# -- targets -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetRule:
    """One `--allow-target` pattern: a host glob or an address/CIDR, and ports."""

    text: str
    network: IPNetwork | None = None
    glob: str = ""
    ports: tuple[tuple[int, int], ...] = ()
    """Allowed port ranges; empty for any port."""
    trusted: bool = False
    """An endpoint the operator named: its name is allowed whatever it resolves to."""

    @classmethod
    def parse(cls, text: str) -> TargetRule:
        """`*.staging.internal:443`, `api.example.com`, `10.0.0.0/8:8000-8100`,
        `[fd00::/8]:443`, `127.0.0.1:*`; ValueError if it does not parse."""
        raw = text.strip()
        if not raw or len(raw) > _MAX_PATTERN:
            raise ValueError(f"{text[:80]!r} is not a target pattern")
        host, port_text = raw, ""
        if raw.startswith("["):
            end = raw.find("]")
            if end < 0:
                raise ValueError(f"{raw!r}: missing ']'")
            host, rest = raw[1:end], raw[end + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"{raw!r}: expected :PORT after ']'")
                port_text = rest[1:]
        elif raw.count(":") == 1:
            host, port_text = raw.split(":")
        ports = _ports(port_text, raw)
        host = host.lower().rstrip(".")
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            network = None
        if network is not None:
            return cls(raw, network=_unmapped_net(network), ports=ports)
        if not host or any(c not in _GLOB_CHARS for c in host):
            raise ValueError(
                f"{raw!r}: expected a host name (with * wildcards), an IP address or a "
                "CIDR, then optionally :PORT, :LOW-HIGH or :*"
            )
        return cls(raw, glob=host, ports=ports)

    def port_ok(self, port: int) -> bool:
        """Whether the rule allows this port."""
        return not self.ports or any(lo <= port <= hi for lo, hi in self.ports)


_GLOB_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._*?")


def _ports(text: str, raw: str) -> tuple[tuple[int, int], ...]:
    if text in ("", "*"):
        return ()
    lo_text, _, hi_text = text.partition("-")
    try:
        lo, hi = int(lo_text), int(hi_text or lo_text)
    except ValueError:
        raise ValueError(f"{raw!r}: the port {text!r} is not a number or LOW-HIGH") from None
    if not 0 < lo <= hi <= 65535:
        raise ValueError(f"{raw!r}: ports are 1-65535")
    return ((lo, hi),)


def _unmapped(addr: IPAddress) -> IPAddress:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _unmapped_net(net: IPNetwork) -> IPNetwork:
    mapped = isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped
    if mapped and net.prefixlen >= 96:
        return ipaddress.IPv4Network((mapped, net.prefixlen - 96), strict=False)
    return net


def special(addr: IPAddress) -> bool:
    """Addresses a name pattern never admits: loopback, link-local (cloud metadata),
    unspecified, multicast, reserved."""
    a = _unmapped(addr)
    return a.is_loopback or a.is_link_local or a.is_unspecified or a.is_multicast or a.is_reserved


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Which hosts calls and reflections may reach. `rules` empty and `any` false:
    nothing is allowed."""

    rules: tuple[TargetRule, ...] = ()
    any: bool = False

    def allows_address(self, name: str, addr: IPAddress, port: int) -> bool:
        """Whether `name` (as the client gave it) resolving to `addr` may be called."""
        if self.any:
            return True
        addr = _unmapped(addr)
        for rule in self.rules:
            if not rule.port_ok(port):
                continue
            if rule.network is not None:
                if addr.version == rule.network.version and addr in rule.network:
                    return True
            elif (rule.trusted or not special(addr)) and fnmatch.fnmatchcase(name, rule.glob):
                return True
        return False


Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
"""What turns a name into addresses (`resolve`; tests give their own)."""


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal in any form inet_aton takes, such
    as `127.1` or `2130706433`, resolves to itself)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), _RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError, UnicodeError):
        return []
    out: list[IPAddress] = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out


# -- folders -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootPolicy:
    """Folders of the server's disk a load may read (`any`: every folder)."""

    roots: tuple[Path, ...] = ()
    any: bool = False

    def check(self, path: str) -> None:
        """PolicyError unless `path`, with symlinks and `..` resolved, is inside a root.

        Blocking (it touches the disk): call it in a thread."""
        if self.any:
            return
        shown = redact(path)
        if not self.roots:
            raise PolicyError(
                f"loading {shown!r} from the catalog server's disk is off: the operator "
                "allows folders with --proto-root DIR (or upload the files: protoFiles)"
            )
        real = Path(os.path.realpath(os.path.expanduser(path)))
        for root in self.roots:
            if real == root or real.is_relative_to(root):
                return
        raise PolicyError(
            f"{shown!r} is outside the folders this catalog may read (--proto-root); "
            "symlinks and '..' are resolved before the check"
        )


# -- the whole policy ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The folders and targets for everyone, and more of them per group."""

    roots: RootPolicy = field(default_factory=lambda: RootPolicy(any=True))
    targets: TargetPolicy = field(default_factory=lambda: TargetPolicy(any=True))
    group_targets: Mapping[str, TargetPolicy] = field(default_factory=dict)
    group_roots: Mapping[str, RootPolicy] = field(default_factory=dict)
    resolver: Resolver = field(default=resolve, compare=False, repr=False)
    """How names are resolved for the target check (the address checked is the one
    dialled, so nothing resolves the name a second time)."""
    chooser: Chooser = field(default_factory=Chooser, compare=False, repr=False)
    """Which of a name's checked addresses is dialled: the first that accepts a
    connection, raced as RFC 8305 does (`happy_eyeballs`), not always the first."""

    @classmethod
    def build(
        cls,
        *,
        proto_roots: Iterable[str] = (),
        allow_targets: Iterable[str] = (),
        allow_any_target: bool = False,
        group_targets: Iterable[tuple[str, str]] = (),
        group_roots: Iterable[tuple[str, str]] = (),
        permissive: bool = False,
        operator_endpoints: Iterable[str] = (),
    ) -> AccessPolicy:
        """From settings; `permissive` (loopback) allows everything not configured;
        `operator_endpoints` (the start-up target, `--target-for`) are always allowed."""
        roots = tuple(_real(p) for p in proto_roots)
        rules = tuple(TargetRule.parse(t) for t in allow_targets)
        gt: dict[str, list[TargetRule]] = defaultdict(list)
        for group, pattern in group_targets:
            gt[group].append(TargetRule.parse(pattern))
        gr: dict[str, list[Path]] = defaultdict(list)
        for group, path in group_roots:
            gr[group].append(_real(path))
        any_target = allow_any_target or (permissive and not rules and not gt)
        rules += tuple(_operator_rule(e) for e in operator_endpoints)
        return cls(
            roots=RootPolicy(roots, any=permissive and not roots and not gr),
            targets=TargetPolicy(rules, any=any_target),
            group_targets={g: TargetPolicy(tuple(r)) for g, r in gt.items()},
            group_roots={g: RootPolicy(tuple(r)) for g, r in gr.items()},
        )

    def read_roots(self, who: Identity) -> tuple[str, ...] | None:
        """The folders `who` may read (None: any), which bound the search for imports."""
        groups = who.groups & self.group_roots.keys()
        policies = [self.roots, *(self.group_roots[g] for g in groups)]
        if any(p.any for p in policies):
            return None
        return tuple(sorted({str(r) for p in policies for r in p.roots}))

    def check_path(self, path: str, who: Identity) -> None:
        """PolicyError unless `who` may read `path` (blocking: call it in a thread)."""
        try:
            self.roots.check(path)
        except PolicyError:
            for group in sorted(who.groups & self.group_roots.keys()):
                try:
                    self.group_roots[group].check(path)
                    return
                except PolicyError:
                    continue
            raise

    def _target_policies(self, who: Identity) -> list[TargetPolicy]:
        return [
            self.targets,
            *(self.group_targets[g] for g in sorted(who.groups & self.group_targets.keys())),
        ]

    def restricts_targets(self, who: Identity) -> bool:
        """Whether `who`'s targets are checked at all (false: any target, as on loopback)."""
        return not any(p.any for p in self._target_policies(who))

    async def check_target(self, host: str, port: int, who: Identity) -> str | None:
        """The address to dial for `host:port`: PolicyError unless every address `host`
        resolves to may be called by `who`; None when targets are not checked (the
        caller resolves the name itself).

        The caller must connect to the address returned, not resolve `host` again: a
        second answer (DNS rebinding, a short TTL) could name an address never checked."""
        policies = self._target_policies(who)
        if any(p.any for p in policies):
            return None
        name = host.strip().lower().strip("[]").rstrip(".")
        shown = f"{name}:{port}"
        addrs = await self.resolver(name, port)
        if not addrs:
            raise PolicyError(
                f"the target {shown!r} does not resolve, so the catalog cannot check it "
                "against --allow-target"
            )
        for addr in addrs:
            if not any(p.allows_address(name, addr, port) for p in policies):
                shown_addr = f" (it resolves to {_unmapped(addr)})" if str(addr) != name else ""
                raise PolicyError(
                    f"calling {shown!r}{shown_addr} is not allowed here: the operator allows "
                    "targets with --allow-target PATTERN (host glob, IP or CIDR, with :PORT), "
                    "or every target with --allow-any-target"
                )
        return str(await self.chooser.pick([_unmapped(a) for a in addrs], port))


def _operator_rule(endpoint: str) -> TargetRule:
    text = endpoint.strip()
    for prefix in ("grpc-web+", "connect+", "grpc+"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    host, port = _endpoint(text, False)
    host = host.lower().rstrip(".")
    try:
        network = _unmapped_net(ipaddress.ip_network(host))
    except ValueError:
        return TargetRule(
            endpoint, glob=host.replace("*", "?"), ports=((port, port),), trusted=True
        )
    return TargetRule(endpoint, network=network, ports=((port, port),))


def _real(path: str) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


# -- limits per identity ----------------------------------------------------------------


class IdentityLimits:
    """Calls per minute and streams at once, per identity (0 = no limit), counted by
    `counters`: this process's memory, or with a shared session store every process's
    (counters.py). The limits and their refusals are here; the counting is there."""

    def __init__(
        self, *, calls_per_minute: int = 0, streams: int = 0, counters: LimitCounters | None = None
    ) -> None:
        self.calls_per_minute = calls_per_minute
        self.streams = streams
        self.counters: LimitCounters = counters or MemoryCounters()

    async def take_call(self, who: Identity) -> None:
        """Count one call; LimitExceeded past `calls_per_minute` in the last 60 s
        (StoreUnavailable when a shared store cannot count it)."""
        if not self.calls_per_minute:
            return
        if not await self.counters.take_call(who.key, self.calls_per_minute):
            raise LimitExceeded(
                f"{who.name} made {self.calls_per_minute} calls in the last minute, the "
                "limit per person (--calls-per-minute): wait a little and try again",
                limit="calls_per_minute",
            )

    async def open_stream(self, who: Identity) -> str:
        """Count one open stream: the lease to give `close_stream` ("" when streams are
        not limited); LimitExceeded past `streams` at once (StoreUnavailable when a
        shared store cannot count it)."""
        if not self.streams:
            return ""
        lease = await self.counters.open_stream(who.key, self.streams)
        if lease is None:
            raise LimitExceeded(
                f"{who.name} already has {self.streams} streams open, the limit per "
                "person (--streams-per-identity): close one and try again",
                limit="streams_per_identity",
            )
        return lease

    async def close_stream(self, who: Identity, lease: str) -> None:
        """Undo `open_stream` (never fails)."""
        if lease:
            await self.counters.close_stream(who.key, lease)


# -- where the policy applies -------------------------------------------------------------


class Observer(Protocol):
    """What metrics and the audit log are told."""

    def loaded(
        self, *, who: Identity, session: str, kind: str, source: str, result: str, seconds: float
    ) -> None: ...

    def called(
        self,
        *,
        who: Identity,
        session: str,
        target: str,
        method: str,
        kind: str,
        transport: str,
        code: str,
        seconds: float,
    ) -> None: ...

    def refused(self, *, who: Identity, session: str, what: str, reason: str) -> None: ...


_DISK_KINDS = frozenset(("proto_path", "descriptor_set_path"))
_BUF_KINDS = frozenset(("proto_path", "buf_module", "proto_repo"))
"""Sources that may run buf (a folder with buf.yaml), which fetches modules itself."""
_MAX_TUNNELS = 16
_TUNNEL_SETUP_SECONDS = 10.0


class EgressProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 for the duration of one load, through which
    buf reaches the network: each tunnel's host is checked by the policy for `who` and
    connected to at the checked address. Refusals are kept, so the load can report the
    policy's own message (PERMISSION_DENIED) rather than buf's."""

    def __init__(self, policy: AccessPolicy, who: Identity) -> None:
        self.policy = policy
        self.who = who
        self.refused: list[PolicyError] = []
        self._secret = secrets.token_urlsafe(16)
        """In the URL buf is given: another local program cannot use this proxy (and so
        `who`'s targets) without it."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """http://catalog:SECRET@127.0.0.1:PORT (a client sends it as Proxy-Authorization)."""
        if self._server is None:
            return ""
        port = self._server.sockets[0].getsockname()[1]
        return f"http://catalog:{self._secret}@127.0.0.1:{port}"

    async def __aenter__(self) -> EgressProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=16384)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):  # the tunnels end as their sockets do
            writer.transport.abort()
        if self._tasks:
            _done, stuck = await asyncio.wait(set(self._tasks), timeout=1.0)
            for task in stuck:  # still connecting upstream: bounded by its own timeout
                task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._tasks) >= _MAX_TUNNELS:
            writer.close()
            return
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            upstream = await self._open(reader, writer)
            if upstream is not None:
                self._writers.add(upstream[1])
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            if upstream is not None:
                self._writers.discard(upstream[1])
                upstream[1].close()
            writer.close()

    async def _open(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The checked upstream connection of a CONNECT request, or None (answered)."""
        try:
            async with asyncio.timeout(_TUNNEL_SETUP_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
                method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
                host, port = _endpoint(rest.split(" ", 1)[0], True)
                if method != "CONNECT":
                    raise ValueError(method)
                if not self._authorized(head):
                    writer.write(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b'proxy-authenticate: Basic realm="catalog"\r\ncontent-length: 0\r\n\r\n'
                    )
                    return None
                dial = await self.policy.check_target(host, port, self.who)
                return await asyncio.open_connection(dial or host, port)
        except PolicyError as exc:
            self.refused.append(exc)
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        except (ValueError, asyncio.LimitOverrunError):
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
        except (OSError, TimeoutError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
        return None

    def _authorized(self, head: bytes) -> bool:
        want = base64.b64encode(f"catalog:{self._secret}".encode())
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"proxy-authorization":
                scheme, _, given = value.strip().partition(b" ")
                return scheme.lower() == b"basic" and secrets.compare_digest(given.strip(), want)
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


class GuardedLoader(Loader):
    """The source table with the policy in front of it, and an observer behind it."""

    def __init__(self, inner: Loader, policy: AccessPolicy, observer: Observer) -> None:
        super().__init__(inner.context, inner.kinds)
        self.inner = inner
        self.policy = policy
        self.observer = observer

    async def load(self, kind: str, given: Given) -> Schema:
        """Check the source against the policy, load it, and report the result."""
        who = current_identity()
        session = session_tag()
        source = redact(given.value if isinstance(given.value, str) else f"<{kind} upload>")[:200]
        start = time.perf_counter()
        try:
            dial = await self._check(kind, given, who)
            given = replace(given, read_roots=self.policy.read_roots(who), dial=dial)
            schema = await self._load(kind, given, who)
        except PolicyError as exc:
            self.observer.refused(who=who, session=session, what=f"load {kind}", reason=exc.message)
            self.observer.loaded(
                who=who,
                session=session,
                kind=kind,
                source=source,
                result="denied",
                seconds=time.perf_counter() - start,
            )
            raise
        except (LoadError, RequestError) as exc:
            result = "failed" if isinstance(exc, LoadError) else "refused"
            self.observer.loaded(
                who=who,
                session=session,
                kind=kind,
                source=source,
                result=result,
                seconds=time.perf_counter() - start,
            )
            raise
        self.observer.loaded(
            who=who,
            session=session,
            kind=kind,
            source=source,
            result="ok",
            seconds=time.perf_counter() - start,
        )
        return schema

    async def _load(self, kind: str, given: Given, who: Identity) -> Schema:
        """The inner load; buf, if it runs, goes through an `EgressProxy`."""
        if kind not in _BUF_KINDS or not self.policy.restricts_targets(who):
            return await self.inner.load(kind, given)
        async with EgressProxy(self.policy, who) as proxy:
            try:
                with buf.through_proxy(proxy.url):
                    return await self.inner.load(kind, given)
            except (LoadError, RequestError):
                if proxy.refused:  # buf failed because a host was refused: say so
                    raise proxy.refused[0] from None
                raise

    async def _check(self, kind: str, given: Given, who: Identity) -> str | None:
        """PolicyError unless `who` may load this; the address to dial for a network
        source whose target was checked."""
        value = given.value if isinstance(given.value, str) else ""
        for folder in given.import_paths:
            if folder.strip():
                await asyncio.to_thread(self.policy.check_path, folder, who)
        if kind in _DISK_KINDS and value.strip():
            await asyncio.to_thread(self.policy.check_path, value, who)
        elif kind == "buf_module" and value.strip():
            if await asyncio.to_thread(_on_disk, value):
                await asyncio.to_thread(self.policy.check_path, value, who)
            elif (bsr := buf.bsr_remote(value.strip())) is not None:
                await self.policy.check_target(*bsr, who)  # buf dials through the proxy
        elif kind == "proto_repo" and value.strip().lower().startswith("file://"):
            path = value.strip()[len("file://") :].split("//", 1)[0].split("@", 1)[0]
            await asyncio.to_thread(self.policy.check_path, path or "/", who)
        elif kind == "proto_repo" and value.strip():
            spec = git.parse_repo_spec(value, base_url=self.inner.context.git_base_url)
            where = git.remote(spec)
            if where is not None and not spec.mirrored:  # a mirror is the operator's
                return await self.policy.check_target(*where, who)
        elif kind == "reflection_endpoint" and value.strip():
            target = parse_endpoint(value, use_tls=given.use_tls)
            return await self.policy.check_target(target.host, target.port, who)
        return None


def _on_disk(value: str) -> bool:
    text = value.strip()
    if text.startswith(("/", ".", "~")):
        return True
    return os.path.exists(os.path.expanduser(text))


def _endpoint(text: str, use_tls: bool) -> tuple[str, int]:
    """host and port of a reflection endpoint (`host:port`, `[v6]:port`, or a URL)."""
    t = text.strip()
    default = 80
    for scheme, port in (("https://", 443), ("http://", 80)):
        if t.lower().startswith(scheme):
            t, default = t[len(scheme) :], port
    t = t.split("/", 1)[0]
    if use_tls:
        default = 443
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default
    host, sep, port_text = t.rpartition(":")
    if sep and port_text.isdigit() and ":" not in host:
        return host, int(port_text)
    return t, default


class GuardedInvoker(Invoker):
    """A session's invoker that checks each call's target and the caller's limits, and
    reports each call."""

    def __init__(
        self,
        *,
        owner: Identity,
        session: str,
        policy: AccessPolicy,
        limits: IdentityLimits,
        observer: Observer,
    ) -> None:
        super().__init__()
        self.owner = owner
        self.session = session
        self.policy = policy
        self.limits = limits
        self.observer = observer

    def _who(self) -> Identity:
        """The caller: the session's owner, with the groups of its current sign-in."""
        who = current_identity()
        return who if who.key == self.owner.key else self.owner

    async def _admit(self, target: CallTarget, method: MethodRef) -> CallTarget:
        """The target to call (with the checked address to dial), or the refusal."""
        try:
            dial = await self.policy.check_target(target.host, target.port, self._who())
            await self.limits.take_call(self.owner)
        except RequestError as exc:
            if exc.code is not Code.UNAVAILABLE:  # a refusal, not a store that is away
                self.observer.refused(
                    who=self.owner,
                    session=self.session,
                    what=f"call {method.path}",
                    reason=exc.message,
                )
            raise
        return target if dial in (None, target.host) else replace(target, dial=dial)

    def _report(self, target: CallTarget, method: MethodRef, code: str, start: float) -> None:
        self.observer.called(
            who=self.owner,
            session=self.session,
            target=target.authority,
            method=method.path,
            kind=method.kind,
            transport=str(target.protocol.value),
            code=code,
            seconds=time.perf_counter() - start,
        )

    async def unary(
        self,
        target: CallTarget,
        method: MethodRef,
        payload: bytes,
        *,
        metadata: Metadata = (),
        timeout_s: float = 30.0,
    ) -> UnaryResult:
        """Invoker.unary, admitted by the policy and reported."""
        dialled = await self._admit(target, method)
        start = time.perf_counter()
        code = "error"
        try:
            result = await super().unary(
                dialled, method, payload, metadata=metadata, timeout_s=timeout_s
            )
            code = result.status.name
            return result
        finally:
            self._report(target, method, code, start)

    async def stream(
        self,
        target: CallTarget,
        method: MethodRef,
        payloads: Payloads,
        *,
        metadata: Metadata = (),
        timeout_s: float = 30.0,
    ) -> AsyncGenerator[CallEvent, None]:
        """Invoker.stream, admitted by the policy and the stream limit, and reported."""
        dialled = await self._admit(target, method)
        try:
            lease = await self.limits.open_stream(self.owner)
        except LimitExceeded as exc:
            self.observer.refused(
                who=self.owner, session=self.session, what=f"call {method.path}", reason=exc.message
            )
            raise
        start = time.perf_counter()
        code = "cancelled"
        try:
            events = super().stream(
                dialled, method, payloads, metadata=metadata, timeout_s=timeout_s
            )
            try:
                async for event in events:
                    if isinstance(event, CallStatus):
                        code = event.name
                    yield event
            finally:
                await events.aclose()
        except RequestError:
            code = "refused"
            raise
        finally:
            self._report(target, method, code, start)
            await self.limits.close_stream(self.owner, lease)


class Observers:
    """Tells several observers."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def loaded(
        self, *, who: Identity, session: str, kind: str, source: str, result: str, seconds: float
    ) -> None:
        """Tell each a load happened."""
        for o in self.observers:
            o.loaded(
                who=who, session=session, kind=kind, source=source, result=result, seconds=seconds
            )

    def called(
        self,
        *,
        who: Identity,
        session: str,
        target: str,
        method: str,
        kind: str,
        transport: str,
        code: str,
        seconds: float,
    ) -> None:
        """Tell each a call happened."""
        for o in self.observers:
            o.called(
                who=who,
                session=session,
                target=target,
                method=method,
                kind=kind,
                transport=transport,
                code=code,
                seconds=seconds,
            )

    def refused(self, *, who: Identity, session: str, what: str, reason: str) -> None:
        """Tell each a refusal happened."""
        for o in self.observers:
            o.refused(who=who, session=session, what=what, reason=reason)
