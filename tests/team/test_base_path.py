"""--base-path: the catalog behind a reverse proxy at /catalog/, whether the proxy
forwards the prefix or strips it. Real servers on 127.0.0.1, real HTTP clients."""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import httpx
import pytest

from connectrpc_catalog.app import create_app
from connectrpc_catalog.config import ConfigError, load_settings
from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.settings import AuthSettings, ServerSettings, Settings
from tests.catalog_server import RunningCatalog, run_catalog

from .helpers import call

BASE = "/catalog"
TOKEN = "team-token-0123456789abcdef"


@pytest.fixture(scope="module")
def catalog() -> Iterator[RunningCatalog]:
    with run_catalog(app=create_app(Settings(server=ServerSettings(base_path=BASE)))) as c:
        yield c


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, follow_redirects=False) as c:
        yield c


@pytest.mark.parametrize(
    ("given", "kept"),
    [("/catalog", "/catalog"), ("catalog/", "/catalog"), ("/tools/catalog/", "/tools/catalog"),
     ("//catalog", "/catalog"), ("/", ""), ("", "")],
)  # fmt: skip
def test_the_base_path_is_normalised(given: str, kept: str) -> None:
    assert load_settings(["--base-path", given], env={}).server.base_path == kept


@pytest.mark.parametrize(
    "bad", ["/a/../b", "/a/./b", "/a b", "/a?x=1", "/a#b", "/%2e%2e", "/a//b", "/" + "x" * 250]
)  # fmt: skip
def test_a_base_path_that_is_not_a_plain_path_is_refused_at_start_up(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"base_path|base-path"):
        load_settings(["--base-path", bad], env={})


def test_the_page_and_its_assets_under_the_prefix(
    catalog: RunningCatalog, client: httpx.Client
) -> None:
    r = client.get(catalog.url + BASE + "?x=1")
    assert r.status_code == 308 and r.headers["location"] == BASE + "/?x=1"
    page = client.get(catalog.url + BASE + "/")
    assert page.status_code == 200 and "connectrpc-catalog" in page.text
    assets = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', page.text)
    assert assets, page.text
    for asset in assets:
        assert client.get(f"{catalog.url}{BASE}/{asset}").status_code == 200, asset


@pytest.mark.parametrize("prefix", [BASE, ""], ids=["forwarded", "stripped-by-the-proxy"])
def test_the_api_answers_with_or_without_the_prefix(
    catalog: RunningCatalog, client: httpx.Client, prefix: str
) -> None:
    r = call(client, catalog.url + prefix, "ListServices")
    assert r.status_code == 200 and isinstance(r.json(), dict), r.text
    r = client.get(catalog.url + prefix + "/healthz")
    assert r.status_code == 200


def test_a_path_outside_the_catalog_is_still_not_found(
    catalog: RunningCatalog, client: httpx.Client
) -> None:
    r = call(client, catalog.url + BASE + "/elsewhere", "ListServices")
    assert r.status_code in (404, 405)  # as at the root: no RPC lives there


def test_grpc_clients_call_at_the_root(catalog: RunningCatalog) -> None:
    """gRPC cannot put a prefix before /package.Service/Method: it is served as before."""
    with grpc.insecure_channel(catalog.url.removeprefix("http://")) as channel:
        rpc = channel.unary_unary("/catalog.v1.CatalogService/GetSession")
        reply, call_ = rpc.with_call(b"", timeout=20)
        assert dict(call_.initial_metadata()).get("x-session-id")
        assert catalog_pb.GetSessionResponse.from_binary(reply).ttl_seconds > 0


def test_sign_in_redirects_and_cookies_stay_under_the_prefix(client: httpx.Client) -> None:
    settings = Settings(
        server=ServerSettings(base_path=BASE), auth=AuthSettings(mode="token", token=TOKEN)
    )
    with run_catalog(app=create_app(settings)) as c:
        form = client.get(c.url + BASE + "/auth/login")
        assert form.status_code == 200 and 'action="login"' in form.text  # relative
        r = client.post(c.url + BASE + "/auth/login", data={"token": TOKEN})
        assert r.status_code == 302 and r.headers["location"] == BASE + "/"
        cookie = r.headers["set-cookie"]
        assert "catalog_auth=" in cookie and f"Path={BASE}/;" in cookie
        assert call(client, c.url + BASE, "GetSession").json()["identity"] == "token"
        out = client.get(c.url + BASE + "/auth/logout")
        assert out.status_code == 302 and out.headers["location"] == BASE + "/auth/login"
        assert f"Path={BASE}/;" in out.headers["set-cookie"]
        assert call(client, c.url + BASE, "GetSession").status_code == 401
