"""HTTP edge cases on each server stack (`--server pyvoy`, `--server hypercorn`), found
by the fuzz of every RPC:

- an empty request body (a valid protobuf message: every field at its default) was never
  answered on pyvoy: after the body pyvoy hands the last body message to every receive()
  at once, so connectrpc's disconnect watch spun and the call hung;
- a HEAD refused by the API carried the error body, so on a kept-alive HTTP/1.1
  connection the next answer began with those bytes (a corrupt status line).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.catalog_server import _wait_listening, run_cli

SERVERS = [
    pytest.param(
        "pyvoy",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("pyvoy") is None, reason="pyvoy is not installed"
        ),
    ),
    "hypercorn",
]


@pytest.fixture(scope="module", params=SERVERS)
def catalog(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("http-security")
    args = ("--server", request.param, "--database", f"sqlite:///{folder / 'saved.db'}")
    with run_cli(*args) as (url, _proc):
        _wait_listening(int(urllib.parse.urlsplit(url).port or 0))
        yield url


@pytest.mark.parametrize(
    "path",
    [
        "/catalog.v1.CatalogService/ListServices",
        "/catalog.v1.CatalogService/GetSession",
        "/catalog.v1.CollectionService/ListCollections",
        "/catalog.v1.CollectionService/GetCollection",
    ],
)
def test_an_empty_protobuf_body_is_answered(catalog: str, path: str) -> None:
    with httpx.Client(timeout=10) as client:
        r = client.post(catalog + path, content=b"", headers={"content-type": "application/proto"})
        assert r.status_code in (200, 404), r.text
        if r.status_code == 404:
            assert r.json()["code"] == "not_found"
        again = client.post(
            catalog + path, content=b"{}", headers={"content-type": "application/json"}
        )
        assert again.status_code in (200, 404)


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed"
        data += chunk
    return data


def test_a_refused_head_has_no_body_and_the_connection_stays_usable(catalog: str) -> None:
    parts = urllib.parse.urlsplit(catalog)
    host, path = parts.netloc, "/catalog.v1.CatalogService/ListServices"
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    with socket.create_connection(address, timeout=10) as sock:
        head = _exchange(sock, f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert head.startswith(b"HTTP/1.1 405"), head[:200]
        body = b"{}"
        post = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        answer = _exchange(sock, post)
        leftover = head.partition(b"\r\n\r\n")[2]
        assert not leftover, f"the HEAD answer had a body: {leftover[:200]!r}"
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


@pytest.mark.skipif(importlib.util.find_spec("pyvoy") is None, reason="pyvoy is not installed")
def test_pyvoy_bounds_the_time_a_request_takes_to_arrive(tmp_path: Path) -> None:
    """Envoy's stream idle cut is off (calls are bounded by their deadlines), so a client
    that sent part of a request and then nothing held it forever: headers must now arrive
    within 10 s and the whole request within 300 s (disarmed once the answer starts)."""
    from connectrpc_catalog.serving.servers import Pyvoy, WorkerSpec

    spec = WorkerSpec(
        host="127.0.0.1", port=1, loop="asyncio", log_level="warning", log_format="text",
        scratch=tmp_path,
    )  # fmt: skip
    argv = Pyvoy().command(spec).argv
    config = json.loads(argv[argv.index("--config-yaml") + 1])
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for net in chain["filters"]:
                manager = net["typed_config"]
                assert manager["request_headers_timeout"] == "10s"
                assert manager["request_timeout"] == "300s"
    with run_cli("--server", "pyvoy") as (url, _proc):
        parts = urllib.parse.urlsplit(url)
        _wait_listening(parts.port or 0)
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=30) as s:
            s.sendall(b"POST /catalog.v1.CatalogService/ListServices HTTP/1.1\r\n")
            answer = s.recv(200)  # headers never finished: cut after 10 s
        assert answer.startswith(b"HTTP/1.1 408"), answer
