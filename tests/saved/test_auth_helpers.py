"""Auth helpers reach the upstream as headers (echoed back by the test server's
EchoMetadata), a header the saved request names itself wins, and the helper's secret
is masked wherever the upstream echoes it into a result."""

from __future__ import annotations

import base64

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.invocation import CallLimits
from connectrpc_catalog.saved.authhelpers import TokenCache, auth_headers
from connectrpc_catalog.saved.run import Runner
from connectrpc_catalog.saved.secrets import MASK
from connectrpc_catalog.saved.variables import Resolved
from connectrpc_catalog.transports import Invoker
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.registry import StubRegistry
from tests.upstream.schema import SERVICE

pytest_plugins = ["tests.upstream.fixtures"]


async def test_headers_of_each_kind() -> None:
    tokens = TokenCache()
    assert await auth_headers(pb.AuthHelper(kind="bearer", token="t0k"), tokens) == {
        "authorization": "Bearer t0k"
    }
    basic = await auth_headers(pb.AuthHelper(kind="basic", username="ann", password="pw"), tokens)
    assert base64.b64decode(basic["authorization"].split()[1]) == b"ann:pw"
    key = await auth_headers(
        pb.AuthHelper(kind="api_key", header_name="X-Api-Key", api_key="k"), tokens
    )
    assert key == {"x-api-key": "k"}
    assert await auth_headers(pb.AuthHelper(), tokens) == {}


async def test_api_key_reaches_the_upstream_masked_in_results(
    registry: StubRegistry, invoker: Invoker, grpc_upstream: GrpcServer
) -> None:
    runner = Runner(registry=registry, invoker=invoker, limits=CallLimits(), tokens=TokenCache())
    req = pb.SavedRequest(
        name="echo metadata",
        service=SERVICE,
        method="EchoMetadata",
        endpoint=grpc_upstream.address,
        transport=catalog_pb.Transport.GRPC,
        metadata={"x-echo-plain": "{{who}}"},
        assertions=[
            pb.Assertion(kind="header", path="x-header-apikey", op="eq", value="key-0123456789"),
            pb.Assertion(kind="trailer", path="x-trailer-plain", op="eq", value="ann"),
        ],
    )
    env = Resolved(
        variables={"who": "ann"},
        auth=pb.AuthHelper(kind="api_key", header_name="x-echo-apikey", api_key="key-0123456789"),
    )
    done = await runner.run(req, env)
    assert done.passed, done.to_json()
    echoed = {h.key: h.value for h in done.response_headers}
    assert echoed["x-header-apikey"] == MASK and echoed["x-header-plain"] == "ann"
    shown = [h.value for h in (*done.response_headers, *done.response_trailers)]
    shown += [a.actual for a in done.assertions]  # (the assertion's own text is the user's)
    assert MASK in shown and not any("key-0123456789" in v for v in shown)
    # A header the request names itself wins over the helper's.
    req.metadata["x-echo-apikey"] = "mine"
    req.assertions = [pb.Assertion(kind="header", path="x-header-apikey", op="eq", value="mine")]
    assert (await runner.run(req, env)).passed
