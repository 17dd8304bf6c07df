"""mTLS material per environment: the client certificate and its key (sealed at rest)
come from the environment and reach the call; without them the same saved request
fails against a server that requires a client certificate."""

from __future__ import annotations

from pathlib import Path

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import ANONYMOUS
from connectrpc_catalog.invocation import CallLimits
from connectrpc_catalog.saved.authhelpers import TokenCache
from connectrpc_catalog.saved.run import Runner
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import Store
from connectrpc_catalog.transports import Invoker
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.registry import StubRegistry
from tests.upstream.schema import SERVICE
from tests.upstream.tls import TLSMaterial

pytest_plugins = ["tests.upstream.fixtures"]


async def test_client_certificate_from_the_environment(
    registry: StubRegistry,
    invoker: Invoker,
    mtls_material: TLSMaterial,
    grpc_mtls_upstream: GrpcServer,
    tmp_path: Path,
) -> None:
    m = mtls_material
    store = await Store.open(f"sqlite:///{tmp_path / 'saved.db'}", Sealer("mtls test passphrase"))
    try:
        coll = await store.save_collection(ANONYMOUS, pb.SaveCollectionRequest(name="mtls"))
        for name, tls in (
            (
                "with-cert",
                pb.EnvironmentTls(
                    client_cert_pem=m.client_cert_pem,
                    client_key_pem=m.client_key_pem,
                    ca_cert_pem=m.ca_pem,
                ),
            ),
            ("without", pb.EnvironmentTls(ca_cert_pem=m.ca_pem)),
        ):
            saved = await store.save_environment(
                ANONYMOUS, pb.Environment(collection_id=coll.id, name=name, tls=tls)
            )
            assert saved.tls is not None and saved.tls.client_key_pem == ""  # never sent back
        req = await store.save_request(
            ANONYMOUS,
            pb.SavedRequest(
                collection_id=coll.id,
                name="echo",
                service=SERVICE,
                method="Echo",
                endpoint=grpc_mtls_upstream.address,
                transport=catalog_pb.Transport.GRPC,
                tls=pb.TlsChoice(use_tls=True),
                request_messages_json=['{"message": "mtls"}'],
                assertions=[pb.Assertion(kind="field", path="$.message", op="eq", value='"mtls"')],
            ),
        )
        runner = Runner(
            registry=registry, invoker=invoker, limits=CallLimits(), tokens=TokenCache()
        )
        good = await runner.run(
            req, await store.resolve_environment(ANONYMOUS, coll.id, "with-cert")
        )
        assert good.passed, good.to_json()
        bad = await runner.run(req, await store.resolve_environment(ANONYMOUS, coll.id, "without"))
        assert not bad.passed and bad.status_code != 0
        assert "PRIVATE KEY" not in good.to_json() + bad.to_json()
    finally:
        await store.close()
