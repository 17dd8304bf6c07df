"""Helpers for the schema-source tests: catalog calls, catalogs with custom loaders, files."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectrpc_catalog.app import AppConfig, create_app
from connectrpc_catalog.loading import Loader
from connectrpc_catalog.sources.buf import BUF_ENV
from connectrpc_catalog.sources.core import Context

from .catalog_server import RunningCatalog, run_catalog

API = "/catalog.v1.CatalogService/"


def call(
    client: httpx.Client, url: str, method: str, body: Mapping[str, Any], sid: str | None = None
) -> httpx.Response:
    """A Connect JSON call to the catalog API."""
    headers = {"content-type": "application/json"}
    if sid:
        headers["x-session-id"] = sid
    return client.post(url + API + method, json=dict(body), headers=headers)


def load_ok(
    client: httpx.Client, url: str, body: Mapping[str, Any], sid: str | None = None
) -> tuple[dict[str, Any], str]:
    """LoadProtos that must succeed: (response body, session id)."""
    r = call(client, url, "LoadProtos", body, sid)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    assert data.get("success") is True, data
    return data, r.headers["x-session-id"]


def load_failed(client: httpx.Client, url: str, body: Mapping[str, Any]) -> str:
    """LoadProtos that must fail as a load (HTTP 200, success=false): the error text."""
    r = call(client, url, "LoadProtos", body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert not data.get("success"), data
    error: str = data["error"]
    assert error
    return error


def load_rejected(client: httpx.Client, url: str, body: Mapping[str, Any]) -> tuple[str, str]:
    """LoadProtos that must fail with a Connect error: (code, message)."""
    r = call(client, url, "LoadProtos", body)
    assert r.status_code != 200, r.text
    data = r.json()
    return data["code"], data.get("message", "")


@contextlib.contextmanager
def catalog_with(**context_options: Any) -> Iterator[RunningCatalog]:
    """An in-process catalog whose sources' Context was built with `context_options`."""
    app = create_app(AppConfig())
    loader = Loader(Context(app.schemas, app.compiler, **context_options))
    app.loader = loader
    app.service.loader = loader
    with run_catalog(app=app) as running:
        yield running


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write relative path → text under `root`; returns `root`."""
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def find_buf() -> str | None:
    """The Buf CLI for tests: $CONNECTRPC_CATALOG_BUF, else `buf` on PATH."""
    configured = os.environ.get(BUF_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("buf")


requires_buf = pytest.mark.skipif(
    find_buf() is None,
    reason=f"the Buf CLI is not installed: `npm install -g @bufbuild/buf`, or set {BUF_ENV} "
    "to its path (e.g. after `npm install --prefix /tmp/bufcli @bufbuild/buf`, "
    "/tmp/bufcli/node_modules/.bin/buf)",
)


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A TCP port that accepts connections and never says anything."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conns.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for c in conns:
            c.close()
        sock.close()
