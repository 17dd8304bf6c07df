"""OAuth 2 client credentials against a real token endpoint (npm oidc-provider, the
OpenID provider of the team tests, with its client-credentials grant): the catalog
fetches a token (checked by the provider's introspection), keeps it until shortly before
it expires, then fetches a new one; a wrong secret is refused without repeating it; and a
saved request run with the helper carries the token without showing it."""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.saved.authhelpers import TokenCache, auth_headers
from tests.team.test_oidc import _free_port
from tests.team.test_oidc import provider_dir as provider_dir  # the npm install, once

SCRIPT = Path(__file__).with_name("oauth_provider.mjs")
TTL = 120


@contextlib.contextmanager
def _server(folder: Path) -> Iterator[str]:
    shutil.copy(SCRIPT, folder / SCRIPT.name)
    port = _free_port()
    proc = subprocess.Popen(
        ["node", str(folder / SCRIPT.name), str(port), str(TTL)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"the token endpoint did not start: {line!r}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def issuer(provider_dir: Path) -> Iterator[str]:
    with _server(provider_dir) as url:
        yield url


def _helper(issuer: str, secret: str = "ci-runner-secret-value") -> pb.AuthHelper:
    return pb.AuthHelper(
        kind="oauth2_client_credentials",
        token_url=f"{issuer}/token",
        client_id="ci-runner",
        client_secret=secret,
        scopes="weather:read",
    )


def _introspect(issuer: str, token: str) -> dict[str, object]:
    basic = base64.b64encode(b"ci-runner:ci-runner-secret-value").decode()
    r = httpx.post(
        f"{issuer}/token/introspection",
        data={"token": token},
        headers={"authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_token_fetched_cached_and_refreshed(issuer: str) -> None:
    clock = Clock()
    tokens = TokenCache(clock=clock)
    first = await auth_headers(_helper(issuer), tokens)
    scheme, _, token = first["authorization"].partition(" ")
    assert scheme == "Bearer" and token
    info = _introspect(issuer, token)
    assert info["active"] is True and info["client_id"] == "ci-runner"
    assert info["scope"] == "weather:read"
    # Cached: the endpoint is not asked again while the token is fresh.
    clock.now += TTL / 2
    assert await tokens.token(_helper(issuer)) == token
    assert tokens.fetches == 1
    # Shortly before it expires (TTL minus the margin), a new one is fetched.
    clock.now += TTL / 2 - 5
    renewed = await tokens.token(_helper(issuer))
    assert tokens.fetches == 2 and renewed != token
    assert _introspect(issuer, renewed)["active"] is True


async def test_wrong_secret_refused_without_echo(issuer: str) -> None:
    tokens = TokenCache()
    with pytest.raises(RequestError) as refused:
        await tokens.token(_helper(issuer, secret="not-the-secret-at-all"))
    assert refused.value.code is Code.UNAUTHENTICATED
    assert "invalid_client" in refused.value.message
    assert "not-the-secret-at-all" not in refused.value.message


async def test_policy_checks_the_token_endpoint(issuer: str) -> None:
    asked: list[tuple[str, int]] = []

    async def check(host: str, port: int) -> None:
        asked.append((host, port))
        raise RequestError("not allowed here", code=Code.PERMISSION_DENIED)

    with pytest.raises(RequestError) as refused:
        await TokenCache().token(_helper(issuer), check)
    assert refused.value.code is Code.PERMISSION_DENIED
    assert asked == [("127.0.0.1", int(issuer.rsplit(":", 1)[1]))]
    # A token someone else fetched is no way around the caller's policy.
    tokens = TokenCache()
    await tokens.token(_helper(issuer))
    with pytest.raises(RequestError):
        await tokens.token(_helper(issuer), check)
    assert tokens.fetches == 1 and len(asked) == 2


async def test_a_run_sends_the_token_without_showing_it(issuer: str) -> None:
    """A saved request run with the helper: the call passes, the token was fetched once
    for two requests, and neither the token nor the client secret is in the results."""
    from connectrpc_catalog.base import Base
    from connectrpc_catalog.demo import demo_source
    from connectrpc_catalog.demo.weather import start
    from connectrpc_catalog.descriptors import SchemaCache
    from connectrpc_catalog.gen.catalog.v1 import catalog_pb
    from connectrpc_catalog.invocation import CallLimits
    from connectrpc_catalog.loading import Loader
    from connectrpc_catalog.registry import Registry
    from connectrpc_catalog.saved.run import Runner
    from connectrpc_catalog.saved.variables import Resolved
    from connectrpc_catalog.sources.compiler import Compiler
    from connectrpc_catalog.sources.core import Context
    from connectrpc_catalog.transports import Invoker

    demo = start("127.0.0.1", 0)
    cache, compiler = SchemaCache(), Compiler()
    loader = Loader(Context(cache, compiler))
    invoker = Invoker()
    try:
        source = demo_source(demo)
        schema = await loader.load(source.kind, source.given())
        tokens = TokenCache()
        runner = Runner(
            registry=Registry(Base(schema), cache),
            invoker=invoker,
            limits=CallLimits(),
            tokens=tokens,
        )
        req = pb.SavedRequest(
            name="with a token",
            service="weather.v1.WeatherService",
            method="GetCurrentConditions",
            endpoint=demo.address,
            transport=catalog_pb.Transport.GRPC,
            request_messages_json=['{"location": {"city": "Lisbon"}}'],
            assertions=[pb.Assertion(kind="status", op="eq", value="OK")],
        )
        env = Resolved(name="ci", auth=_helper(issuer))
        done = await runner.run_all([req, req], env)
        assert done.passed == 2, done.to_json()
        assert tokens.fetches == 1
        token = await tokens.token(_helper(issuer))
        shown = done.to_json()
        assert token not in shown and "ci-runner-secret-value" not in shown
    finally:
        await invoker.close()
        await loader.close()
        await compiler.close()
        demo.stop()
