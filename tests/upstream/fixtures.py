"""Pytest fixtures: upstream servers (plaintext, TLS, mTLS, self-signed), registry, invoker.

Use from a test module with `pytest_plugins = ["tests.upstream.fixtures"]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from connectrpc_catalog.transports import Invoker

from . import tls
from .behaviour import Recorder
from .connect_server import ConnectServer, start_connect_server
from .grpc_server import GrpcServer, start_grpc_server
from .registry import StubRegistry
from .schema import TestSchema, load_schema


@pytest.fixture(scope="session")
def schema() -> TestSchema:
    """The compiled test service."""
    return load_schema()


@pytest.fixture
def registry(schema: TestSchema) -> StubRegistry:
    """A registry stand-in over the test schema."""
    return StubRegistry(schema)


@pytest.fixture
async def invoker() -> AsyncIterator[Invoker]:
    """A fresh invoker, closed after the test."""
    inv = Invoker()
    try:
        yield inv
    finally:
        await inv.close()


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    """What the shared upstream servers observed."""
    return Recorder()


@pytest.fixture(scope="session")
def grpc_upstream(recorder: Recorder) -> Iterator[GrpcServer]:
    """TestService on grpcio, plaintext."""
    server = start_grpc_server(recorder)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def connect_upstream(recorder: Recorder) -> Iterator[ConnectServer]:
    """TestService on connectrpc + hypercorn (Connect, gRPC, gRPC-Web), plaintext."""
    server = start_connect_server(recorder)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_material() -> tls.TLSMaterial:
    """A trustme CA, a server certificate and a client certificate."""
    return tls.issue(mutual=False)


@pytest.fixture(scope="session")
def mtls_material() -> tls.TLSMaterial:
    """Like tls_material, but servers using it require client certificates."""
    return tls.issue(mutual=True)


@pytest.fixture(scope="session")
def grpc_tls_upstream(recorder: Recorder, tls_material: tls.TLSMaterial) -> Iterator[GrpcServer]:
    """grpcio with TLS."""
    server = start_grpc_server(recorder, tls_material.server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def connect_tls_upstream(
    recorder: Recorder, tls_material: tls.TLSMaterial
) -> Iterator[ConnectServer]:
    """hypercorn with TLS (ALPN h2 and http/1.1)."""
    server = start_connect_server(recorder, tls_material.server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def grpc_mtls_upstream(
    recorder: Recorder, mtls_material: tls.TLSMaterial
) -> Iterator[GrpcServer]:
    """grpcio requiring a client certificate."""
    server = start_grpc_server(recorder, mtls_material.server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def connect_mtls_upstream(
    recorder: Recorder, mtls_material: tls.TLSMaterial
) -> Iterator[ConnectServer]:
    """hypercorn requiring a client certificate."""
    server = start_connect_server(recorder, mtls_material.server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def self_signed_cert() -> tls.ServerTLS:
    """A self-signed server certificate."""
    return tls.self_signed()


@pytest.fixture(scope="session")
def grpc_self_signed_upstream(
    recorder: Recorder, self_signed_cert: tls.ServerTLS
) -> Iterator[GrpcServer]:
    """grpcio with a self-signed certificate."""
    server = start_grpc_server(recorder, self_signed_cert)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def connect_self_signed_upstream(
    recorder: Recorder, self_signed_cert: tls.ServerTLS
) -> Iterator[ConnectServer]:
    """hypercorn with a self-signed certificate."""
    server = start_connect_server(recorder, self_signed_cert)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def connect_prefixed_upstream(recorder: Recorder) -> Iterator[ConnectServer]:
    """hypercorn serving TestService under the path prefix /api."""
    server = start_connect_server(recorder, prefix="/api")
    yield server
    server.stop()

