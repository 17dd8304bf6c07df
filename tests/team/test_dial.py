"""The address the access policy checked is the address dialled (no second resolution).

The names used here (`*.rebind.test`) resolve nowhere on this machine: only the policy's
resolver, given by the test, knows them. A call that reaches the upstream therefore went
to the address the policy checked, and a TLS call that verifies proves the name (not the
address) was used for SNI and the certificate check. The rebinding resolver answers an
allowed address first and a refused one afterwards, as a DNS rebinding attack would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from connectrpc_catalog.app import AppConfig, create_app
from connectrpc_catalog.identity import Identity
from connectrpc_catalog.policy import (
    AccessPolicy,
    GuardedInvoker,
    IdentityLimits,
    IPAddress,
    Observers,
    PolicyError,
)
from connectrpc_catalog.settings import PolicySettings
from connectrpc_catalog.transports import (
    CallTarget,
    HttpVersion,
    MethodRef,
    TLSConfig,
    WireProtocol,
)
from tests.catalog_server import run_catalog
from tests.team.helpers import call
from tests.test_target import reflecting_upstream  # noqa: F401 - a fixture
from tests.upstream.behaviour import Recorder
from tests.upstream.connect_server import ConnectServer, start_connect_server
from tests.upstream.grpc_server import GrpcServer, start_grpc_server
from tests.upstream.schema import SERVICE
from tests.upstream.tls import ServerTLS

pytest_plugins = ["tests.upstream.fixtures"]

NAME = "api.rebind.test"
ECHO = MethodRef(path=f"/{SERVICE}/Echo")
WHO = Identity(name="alice@example.test")


class Resolver:
    """The policy's resolver: `answers` in turn (the last one repeats) for names under
    rebind.test, `refused` (TEST-NET-1) for `bad.rebind.test`; it counts its calls."""

    def __init__(self, *answers: str) -> None:
        self.answers = [ipaddress.ip_address(a) for a in answers]
        self.calls = 0
        self.names: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.names.append(host)
        if host == "bad.rebind.test":
            return [ipaddress.ip_address("192.0.2.1")]
        if not host.endswith(".rebind.test"):
            return []
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [answer]


def _policy(resolver: Resolver, *rules: str) -> AccessPolicy:
    return replace(AccessPolicy.build(allow_targets=rules or ["127.0.0.0/8"]), resolver=resolver)


def _invoker(policy: AccessPolicy) -> GuardedInvoker:
    return GuardedInvoker(
        owner=WHO, session="test", policy=policy, limits=IdentityLimits(), observer=Observers()
    )


def test_the_names_here_resolve_nowhere_else() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(NAME, 443)


@pytest.mark.parametrize("protocol", list(WireProtocol))
async def test_a_call_goes_to_the_checked_address_and_a_rebound_answer_is_refused(
    protocol: WireProtocol, grpc_upstream: GrpcServer, connect_upstream: ConnectServer
) -> None:
    port = grpc_upstream.port if protocol is WireProtocol.GRPC else connect_upstream.port
    resolver = Resolver("127.0.0.1", "192.0.2.1")  # then TEST-NET-1: not allowed
    invoker = _invoker(_policy(resolver))
    target = CallTarget(host=NAME, port=port, protocol=protocol)
    try:
        result = await invoker.unary(target, ECHO, b"", timeout_s=10)
        assert result.status.name == "OK", result.status
        assert resolver.calls == 1  # checked once; the transport resolved nothing
        with pytest.raises(PolicyError, match=r"192\.0\.2\.1.*--allow-target"):
            await invoker.unary(target, ECHO, b"", timeout_s=10)
        assert resolver.calls == 2
    finally:
        await invoker.close()


def test_pool_keys_include_the_dialled_address() -> None:
    target = CallTarget(host=NAME, port=1)
    a, b = replace(target, dial="127.0.0.1"), replace(target, dial="127.0.0.2")
    assert len({target.pool_key, a.pool_key, b.pool_key}) == 3
    assert a.grpc_address == "ipv4:127.0.0.1:1"
    assert replace(target, dial="::1").grpc_address == "ipv6:[::1]:1"


# -- TLS: the name for SNI and the certificate, the checked address for the socket ------


@pytest.fixture(scope="module")
def named_tls() -> Iterator[tuple[str, GrpcServer, ConnectServer]]:
    """gRPC and Connect upstreams whose certificate names only NAME (no IP address)."""
    ca = trustme.CA()
    cert = ca.issue_cert(NAME)
    server = ServerTLS(
        key_pem=cert.private_key_pem.bytes(),
        cert_chain_pem=b"".join(blob.bytes() for blob in cert.cert_chain_pems),
    )
    grpc_up = start_grpc_server(Recorder(), server)
    connect_up = start_connect_server(Recorder(), server)
    try:
        yield ca.cert_pem.bytes().decode(), grpc_up, connect_up
    finally:
        grpc_up.stop()
        connect_up.stop()


@pytest.mark.parametrize("protocol", list(WireProtocol))
async def test_tls_checks_the_name_while_dialling_the_address(
    protocol: WireProtocol, named_tls: tuple[str, GrpcServer, ConnectServer]
) -> None:
    ca_pem, grpc_up, connect_up = named_tls
    port = grpc_up.port if protocol is WireProtocol.GRPC else connect_up.port
    resolver = Resolver("127.0.0.1")
    invoker = _invoker(_policy(resolver))
    target = CallTarget(host=NAME, port=port, protocol=protocol, tls=TLSConfig(ca_pem=ca_pem))
    try:
        result = await invoker.unary(target, ECHO, b"", timeout_s=10)
        assert result.status.name == "OK", result.status
        assert resolver.calls == 1
        # the same socket checked against another name fails: the name is what is verified
        wrong = replace(target, tls=TLSConfig(ca_pem=ca_pem, server_name="other.rebind.test"))
        bad = await invoker.unary(wrong, ECHO, b"", timeout_s=10)
        assert bad.status.name == "UNAVAILABLE"
    finally:
        await invoker.close()


@pytest.mark.parametrize("protocol", list(WireProtocol))
async def test_an_address_target_with_tls_is_called_as_before(
    protocol: WireProtocol,
    tls_material: Any,
    grpc_tls_upstream: GrpcServer,
    connect_tls_upstream: ConnectServer,
) -> None:
    port = grpc_tls_upstream.port if protocol is WireProtocol.GRPC else connect_tls_upstream.port
    invoker = _invoker(AccessPolicy.build(allow_targets=["127.0.0.1"]))
    tls = TLSConfig(ca_pem=tls_material.ca_pem)
    try:
        for host in ("127.0.0.1", "localhost"):  # the certificate names both
            target = CallTarget(host=host, port=port, protocol=protocol, tls=tls)
            result = await invoker.unary(target, ECHO, b"", timeout_s=10)
            assert result.status.name == "OK", (host, result.status)
    finally:
        await invoker.close()


# -- the Host header a plaintext HTTP upstream sees ---------------------------------------


async def test_plaintext_http_sends_the_name_as_host() -> None:
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        length = next(
            (int(v) for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
             if k.strip().lower() == b"content-length"),
            0,
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\n"
                     b"content-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    invoker = _invoker(_policy(Resolver("127.0.0.1")))
    target = CallTarget(host=NAME, port=port, http=HttpVersion.HTTP1)
    try:
        result = await invoker.unary(target, ECHO, b"", timeout_s=10)
        assert result.status.name == "OK", result.status
        assert seen and f"host: {NAME}:{port}\r\n".encode() in seen[0].lower()
    finally:
        await invoker.close()
        server.close()


# -- through the API: reflection and calls ------------------------------------------------


@contextmanager
def catalog(
    allow: str = "127.0.0.0/8", roots: tuple[str, ...] = (), git_base_url: str = ""
) -> Iterator[tuple[str, Resolver]]:
    """A catalog whose policy allows `allow` and resolves with a `Resolver`."""
    resolver = Resolver("127.0.0.1")
    settings = PolicySettings(allow_targets=(allow,), proto_roots=roots)
    config = AppConfig(policy=settings, bind_host="127.0.0.1", git_base_url=git_base_url)
    app = create_app(config)
    policy = replace(app.policy, resolver=resolver)
    app.policy = policy
    app.user_loader.policy = policy
    with run_catalog(app=app) as c:
        yield c.url, resolver


@pytest.fixture
def catalog_with() -> Iterator[tuple[str, Resolver]]:
    """A catalog whose policy allows 127.0.0.0/8 and resolves with a `Resolver`."""
    with catalog() as found:
        yield found


def test_reflection_and_calls_through_the_api_dial_the_checked_address(
    catalog_with: tuple[str, Resolver], reflecting_upstream: str  # noqa: F811
) -> None:
    url, resolver = catalog_with
    port = reflecting_upstream.rsplit(":", 1)[1]
    with httpx.Client(timeout=30) as client:
        r = call(client, url, "LoadProtos", {"reflectionEndpoint": f"reflect.rebind.test:{port}"})
        body: dict[str, Any] = r.json()
        assert r.status_code == 200 and body.get("success"), r.text
        assert resolver.calls == 1
        sid = r.headers["x-session-id"]
        r = call(
            client,
            url,
            "InvokeGRPC",
            {
                "endpoint": f"{NAME}:{port}",
                "service": SERVICE,
                "method": "Echo",
                "requestJson": json.dumps({"message": "pinned"}),
                "transport": "TRANSPORT_GRPC",
            },
            sid=sid,
        )
        assert r.status_code == 200 and r.json().get("success"), r.text
        assert json.loads(r.json()["responseJson"]) == {"message": "pinned"}
        assert resolver.calls == 2


# -- Git and Buf remotes -----------------------------------------------------------------


def _load(url: str, source: dict[str, str]) -> httpx.Response:
    with httpx.Client(timeout=60) as client:
        return call(client, url, "LoadProtos", source)


@pytest.mark.parametrize(
    "repo",
    [
        "https://git.rebind.test/acme/apis",
        "http://git.rebind.test:8080/acme/apis.git",
        "ssh://git@git.rebind.test/acme/apis.git",
        "git@git.rebind.test:acme/apis.git",
        "github.com/acme/apis",  # resolves nowhere here: refused, not tried
    ],
)
def test_git_remotes_outside_the_allow_list_are_refused(repo: str) -> None:
    with catalog(allow="10.0.0.0/8") as (url, resolver):
        r = _load(url, {"protoRepo": repo})
    assert r.status_code == 403 and r.json()["code"] == "permission_denied", r.text
    assert "--allow-target" in r.json()["message"]
    assert resolver.names and resolver.names[0] in ("git.rebind.test", "github.com")


def test_git_over_ssh_connects_to_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "ssh-args"
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\nexit 1\n')
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake_ssh))
    with catalog() as (url, resolver):
        r = _load(url, {"protoRepo": "ssh://git@git.rebind.test:2222/acme/apis.git"})
    assert r.status_code in (200, 503) and not r.json().get("success"), r.text
    args = record.read_text().splitlines()
    assert resolver.names == ["git.rebind.test"]
    assert "HostName=127.0.0.1" in args and "HostKeyAlias=git.rebind.test" in args, args


def test_short_names_through_the_operators_git_mirror_are_not_checked() -> None:
    with catalog(allow="10.0.0.0/8", git_base_url="https://mirror.rebind.test/") as (url, res):
        r = _load(url, {"protoRepo": "github.com/acme/apis"})
        refused = _load(url, {"protoRepo": "github.com/acme/../../etc"})
    assert r.status_code == 503 and "mirror.rebind.test" in r.json()["message"], r.text
    assert res.names == []  # the operator chose the mirror: git resolves it (here: fails)
    assert refused.status_code == 400, refused.text


class Recording:
    """A TCP server on 127.0.0.1 that keeps the first bytes of each connection."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.seen: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                async with asyncio.timeout(10):
                    self.seen.append(await reader.read(4096))
                writer.write(self.reply)
                await writer.drain()
            finally:
                writer.close()

        self.server = await asyncio.start_server(keep, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *_exc: object) -> None:
        if self.server is not None:
            self.server.close()


async def test_git_connects_to_the_checked_address() -> None:
    recording = Recording(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    async with recording as port:
        with catalog() as (url, resolver):
            repo = f"http://git.rebind.test:{port}/acme/apis.git"
            r = await asyncio.to_thread(_load, url, {"protoRepo": repo})
    assert r.status_code == 200 and not r.json().get("success"), r.text  # 404: not found
    assert resolver.names == ["git.rebind.test"]
    head = recording.seen[0].lower()
    assert head.startswith(b"get /acme/apis.git/info/refs")
    assert f"host: git.rebind.test:{port}\r\n".encode() in head


def test_a_bsr_host_outside_the_allow_list_is_refused() -> None:
    with catalog(allow="10.0.0.0/8") as (url, _resolver):
        r = _load(url, {"bufModule": "bsr.rebind.test/acme/weather"})
    assert r.status_code == 403 and "--allow-target" in r.json()["message"], r.text


def _buf() -> None:
    from connectrpc_catalog.sources.buf import BufCLI

    if BufCLI().locate() is None:
        pytest.skip("the Buf CLI is not installed (set CONNECTRPC_CATALOG_BUF)")


async def test_buf_reaches_the_bsr_through_the_checking_proxy() -> None:
    _buf()
    recording = Recording()
    async with recording as port:
        with catalog() as (url, resolver):
            ref = f"bsr.rebind.test:{port}/acme/weather"
            r = await asyncio.to_thread(_load, url, {"bufModule": ref})
    assert r.status_code in (200, 503), r.text  # the "BSR" here speaks no TLS
    # checked up front, then buf's tunnel checked again by the proxy, and dialled there
    assert resolver.names == ["bsr.rebind.test", "bsr.rebind.test"]
    hello = recording.seen[0]
    assert hello[:1] == b"\x16" and b"bsr.rebind.test" in hello  # a TLS hello, name as SNI


def _module(root: Path, dep: str) -> Path:
    module = root / "mod"
    module.mkdir()
    (module / "buf.yaml").write_text(f"version: v2\ndeps:\n  - {dep}\n")
    # with the dependency in buf.lock (and not in buf's cache) buf fetches it
    commit, digest = "0123456789abcdef" * 2, "b5:" + "ab" * 64
    (module / "buf.lock").write_text(
        f"version: v2\ndeps:\n  - name: {dep}\n    commit: {commit}\n    digest: {digest}\n"
    )
    (module / "a.proto").write_text(
        'syntax = "proto3";\npackage a;\nimport "acme/x.proto";\nmessage A {}\n'
    )
    return module


def test_a_module_naming_a_loopback_remote_is_refused(tmp_path: Path) -> None:
    _buf()
    module = _module(tmp_path, "localhost:9/acme/x")
    with catalog(roots=(str(tmp_path),)) as (url, _resolver):
        r = _load(url, {"bufModule": str(module)})
    assert r.status_code == 403 and "loopback" in r.json()["message"], r.text


def test_a_dependency_host_the_proxy_refuses_is_permission_denied(tmp_path: Path) -> None:
    _buf()
    module = _module(tmp_path, "bad.rebind.test/acme/x")
    with catalog(roots=(str(tmp_path),)) as (url, resolver):
        r = _load(url, {"bufModule": str(module)})
    assert "bad.rebind.test" in resolver.names, r.text
    assert r.status_code == 403 and "--allow-target" in r.json()["message"], r.text
