"""Failures that come from choosing the wrong transport, TLS setting or host get hints."""

from __future__ import annotations

import asyncio

import pytest

from connectrpc_catalog.transports import CallTarget, Invoker, MethodRef, WireProtocol
from connectrpc_catalog.transports.diagnose import Speaks, probe
from tests.upstream.connect_server import ConnectServer
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.schema import SERVICE

pytest_plugins = ["tests.upstream.fixtures"]

ECHO = MethodRef(path=f"/{SERVICE}/Echo")
SERVER_STREAM = MethodRef(path=f"/{SERVICE}/ServerStream", server_streaming=True)
ALL = [WireProtocol.GRPC, WireProtocol.CONNECT, WireProtocol.GRPC_WEB]


def _server(protocol: WireProtocol, grpc_up: GrpcServer, connect_up: ConnectServer) -> str:
    return grpc_up.address if protocol is WireProtocol.GRPC else connect_up.address


@pytest.mark.parametrize("protocol", ALL, ids=str)
async def test_plaintext_against_a_tls_server(
    invoker: Invoker, grpc_tls_upstream: GrpcServer, connect_tls_upstream: ConnectServer,
    protocol: WireProtocol,
) -> None:
    target = CallTarget.parse(_server(protocol, grpc_tls_upstream, connect_tls_upstream),
                              protocol=protocol)
    result = await invoker.unary(target, ECHO, b"", timeout_s=10)
    assert result.status.name == "UNAVAILABLE"
    assert "expects TLS on this port" in result.status.error, result.status.error
    events = [e async for e in invoker.stream(target, SERVER_STREAM, [b""], timeout_s=10)]
    assert "expects TLS on this port" in events[-1].error  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", ALL, ids=str)
async def test_tls_against_a_plaintext_server(
    invoker: Invoker, grpc_upstream: GrpcServer, connect_upstream: ConnectServer,
    protocol: WireProtocol,
) -> None:
    target = CallTarget.parse(_server(protocol, grpc_upstream, connect_upstream),
                              protocol=protocol, use_tls=True)
    result = await invoker.unary(target, ECHO, b"", timeout_s=10)
    assert result.status.name == "UNAVAILABLE"
    assert "does not speak TLS on this port" in result.status.error, result.status.error


@pytest.mark.parametrize("protocol", ALL, ids=str)
async def test_a_host_that_does_not_resolve(invoker: Invoker, protocol: WireProtocol) -> None:
    target = CallTarget.parse("no-such-host.invalid:50051", protocol=protocol)
    result = await invoker.unary(target, ECHO, b"", timeout_s=10)
    assert result.status.name == "UNAVAILABLE"
    assert "'no-such-host.invalid' does not resolve" in result.status.error, result.status.error


async def test_probe_tells_the_servers_apart(
    connect_upstream: ConnectServer, connect_tls_upstream: ConnectServer,
) -> None:
    for server, speaks in ((connect_upstream, Speaks.HTTP2), (connect_tls_upstream, Speaks.TLS)):
        host, port = server.address.rsplit(":", 1)
        assert await probe(host, int(port), connect_timeout=5, read_timeout=5) is speaks


async def test_concurrent_first_calls_share_one_probe(connect_upstream: ConnectServer) -> None:
    """Many first calls to a new plaintext endpoint wait for one answer and all succeed."""
    invoker = Invoker()
    try:
        target = CallTarget.parse(connect_upstream.address, protocol=WireProtocol.CONNECT)
        results = await asyncio.gather(
            *(invoker.unary(target, ECHO, b"", timeout_s=10) for _ in range(10)))
        assert all(r.status.ok for r in results), results[0].status
        assert invoker.opened == 1
    finally:
        await invoker.close()
