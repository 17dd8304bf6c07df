"""--auth oidc against a real OpenID provider (npm oidc-provider, installed by the fixture
into pytest's temp folder): sign-in with the code flow and PKCE, a protected call, the
session bound to the person, sign-out, an expired sign-in and a forged bearer token."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from connectrpc_catalog.app import AppConfig, create_app
from connectrpc_catalog.settings import AuthSettings, OpsSettings, ServerSettings, Settings
from tests.catalog_server import RunningCatalog, run_catalog

from .helpers import call

SCRIPT = Path(__file__).with_name("oidc_provider.mjs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def provider_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed to run the OpenID provider (oidc-provider)")
    folder = tmp_path_factory.mktemp("oidc")
    done = subprocess.run(
        ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", "oidc-provider@8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.skip(f"npm could not install oidc-provider: {done.stderr.strip()[-300:]}")
    shutil.copy(SCRIPT, folder / SCRIPT.name)
    return folder


@contextlib.contextmanager
def _provider(folder: Path, redirect: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        ["node", str(folder / SCRIPT.name), str(port), redirect],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"the OpenID provider did not start: {line} {proc.stderr}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class Clock:
    """The catalog's clock, moved forward by the test (never compared to real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="module")
def oidc(provider_dir: Path) -> Iterator[tuple[RunningCatalog, str, Clock, Path]]:
    clock = Clock()
    audit = provider_dir / "audit.jsonl"
    port = _free_port()  # the catalog's callback must be known to the provider first
    redirect = f"http://127.0.0.1:{port}/auth/callback"
    with _provider(provider_dir, redirect) as issuer:
        auth = AuthSettings(
            mode="oidc",
            oidc_issuer=issuer,
            oidc_client_id="catalog",
            oidc_client_secret="catalog-client-secret",
            oidc_redirect_url=redirect,
            oidc_scopes="openid email groups",
        )
        config = AppConfig(auth=auth, clock=clock, ops=OpsSettings(audit_log=str(audit)))
        with run_catalog(config, port=port) as catalog:
            yield catalog, issuer, clock, audit


def _sign_in(client: httpx.Client, catalog: RunningCatalog, who: str) -> None:
    url = _to_callback(client, catalog, who)
    r = client.get(url)
    assert r.status_code == 302 and r.headers["location"] == "/", r.text
    assert "catalog_auth=" in r.headers.get("set-cookie", "")


def _to_callback(client: httpx.Client, catalog: RunningCatalog, who: str, base: str = "") -> str:
    """Sign in at the provider; the callback URL it sends the browser back to."""
    r = client.get(catalog.url + base + "/auth/login")
    assert r.status_code == 302, r.text
    url = r.headers["location"]
    assert "code_challenge_method=S256" in url and "nonce=" in url
    for _ in range(12):  # follow the provider's pages: login form, then back to us
        r = client.get(url)
        if r.status_code in (302, 303):
            url = urljoin(url, r.headers["location"])
            if url.startswith(catalog.url + base + "/auth/callback"):
                break
            continue
        form = re.search(r'<form[^>]*action="([^"]+)"', r.text)
        assert form, r.text
        action = urljoin(url, html.unescape(form.group(1)))
        fields = {"login": who, "password": "any"} if 'name="login"' in r.text else {}
        fields.update(
            dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', r.text))
        )
        r = client.post(action, data=fields)
        assert r.status_code in (302, 303), r.text
        url = urljoin(action, r.headers["location"])
        if url.startswith(catalog.url + base + "/auth/callback"):
            break
    return url


def test_sign_in_call_sign_out(oidc: tuple[RunningCatalog, str, Clock, Path]) -> None:
    catalog, issuer, _clock, audit = oidc
    with httpx.Client(timeout=30) as client:
        r = call(client, catalog.url, "GetSession")
        assert r.status_code == 401 and "/auth/login" in r.json()["message"]
        ready = client.get(catalog.url + "/readyz").json()["checks"]
        assert ready["oidc_provider"] is True
        page = client.get(catalog.url + "/")
        assert page.status_code == 302 and page.headers["location"] == "/auth/login"

        _sign_in(client, catalog, "alice")
        r = call(client, catalog.url, "GetSession")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["identity"] == "alice@example.com" and body["authMode"] == "oidc"
        assert body["groups"] == ["eng", "team-alice"] and body["signOutUrl"] == "/auth/logout"
        sid = r.headers["x-session-id"]

        with httpx.Client(timeout=30) as other:  # bob presents alice's session id
            _sign_in(other, catalog, "bob")
            r = call(other, catalog.url, "GetSession", sid=sid)
            assert r.json()["identity"] == "bob@example.com"
            assert r.headers["x-session-id"] != sid and r.headers["x-session-status"] == "unknown"

        r = client.get(catalog.url + "/auth/logout")
        assert r.status_code == 302 and r.headers["location"].startswith(issuer)
        assert "catalog_auth=;" in r.headers["set-cookie"]
        r = call(client, catalog.url, "GetSession", sid=sid)
        assert r.status_code == 401
    lines = audit.read_text()
    assert '"event":"sign_in","who":"alice@example.com"' in lines
    assert '"event":"sign_out","who":"alice@example.com"' in lines
    assert "catalog-client-secret" not in lines


def test_an_expired_sign_in_and_a_forged_token_are_refused(
    oidc: tuple[RunningCatalog, str, Clock, Path],
) -> None:
    catalog, _issuer, clock, _audit = oidc
    with httpx.Client(timeout=30) as client:
        _sign_in(client, catalog, "carol")
        assert call(client, catalog.url, "GetSession").status_code == 200
        clock.offset = 2 * 3600.0  # past the ID token's lifetime (1 h)
        try:
            r = call(client, catalog.url, "GetSession")
            assert r.status_code == 401 and "expired" in r.json()["message"]
        finally:
            clock.offset = 0.0
    forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl"
    with httpx.Client(timeout=30) as client:
        r = call(client, catalog.url, "GetSession", headers={"authorization": f"Bearer {forged}"})
        assert r.status_code == 401 and "not a valid" in r.json()["message"]


def test_api_clients_send_an_id_token(oidc: tuple[RunningCatalog, str, Clock, Path]) -> None:
    """A client that ran the code flow itself (here: with the catalog's own request, whose
    PKCE verifier the signed flow cookie carries) calls with its ID token."""
    catalog, issuer, clock, _audit = oidc
    with httpx.Client(timeout=30) as browser:
        callback = _to_callback(browser, catalog, "dave")
        flow = browser.cookies.get("catalog_oidc") or ""
        verifier = json.loads(base64.urlsafe_b64decode(flow.split(".")[0] + "=="))["v"]
        code = parse_qs(urlsplit(callback).query)["code"][0]
        meta = browser.get(issuer + "/.well-known/openid-configuration").json()
        token = browser.post(
            meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": callback.split("?")[0],
            },
            auth=("catalog", "catalog-client-secret"),
        ).json()["id_token"]
    with httpx.Client(timeout=30) as client:
        bearer = {"authorization": f"Bearer {token}"}
        r = call(client, catalog.url, "GetSession", headers=bearer)
        assert r.status_code == 200 and r.json()["identity"] == "dave@example.com", r.text
        clock.offset = 2 * 3600.0
        try:
            r = call(client, catalog.url, "GetSession", headers=bearer)
            assert r.status_code == 401 and "unexpired" in r.json()["message"]
        finally:
            clock.offset = 0.0


def test_sign_in_behind_a_path_prefix(provider_dir: Path) -> None:
    """--base-path /catalog without --oidc-redirect-url: the redirect URL given to the
    provider, the cookies and every redirect are under the prefix."""
    port = _free_port()
    redirect = f"http://127.0.0.1:{port}/catalog/auth/callback"  # what the provider allows
    with _provider(provider_dir, redirect) as issuer:
        auth = AuthSettings(
            mode="oidc",
            oidc_issuer=issuer,
            oidc_client_id="catalog",
            oidc_client_secret="catalog-client-secret",
            oidc_scopes="openid email groups",
        )
        settings = Settings(server=ServerSettings(base_path="/catalog"), auth=auth)
        with (
            run_catalog(app=create_app(settings), port=port) as catalog,
            httpx.Client(timeout=30) as client,
        ):
            page = client.get(catalog.url + "/catalog/")
            assert page.status_code == 302 and page.headers["location"] == "/catalog/auth/login"
            login = client.get(catalog.url + "/catalog/auth/login")
            query = parse_qs(urlsplit(login.headers["location"]).query)
            assert query["redirect_uri"] == [redirect]
            assert "Path=/catalog/auth/;" in login.headers["set-cookie"]
            r = client.get(_to_callback(client, catalog, "alice", "/catalog"))
            assert r.status_code == 302 and r.headers["location"] == "/catalog/", r.text
            assert "Path=/catalog/;" in r.headers["set-cookie"]
            body = call(client, catalog.url + "/catalog", "GetSession").json()
            assert body["identity"] == "alice@example.com"
            assert body["signOutUrl"] == "/catalog/auth/logout"
