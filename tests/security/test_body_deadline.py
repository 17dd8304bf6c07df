"""A request body must arrive whole within `--max-body-seconds`: the security review
found a body trickled in a byte at a time held a connection and its handler for ever on
hypercorn (which times out idle reads only). Raw sockets against a real server: the
in-process hypercorn one (or the one CATALOG_TEST_SERVER names)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from connectrpc_catalog.app import create_app
from connectrpc_catalog.config import ConfigError, load_settings
from connectrpc_catalog.settings import LimitSettings, Settings
from tests.catalog_server import RunningCatalog, run_catalog

PATH = "/catalog.v1.CatalogService/ListServices"
BODY = b"{" + b" " * 15 + b"}"  # 17 bytes of valid JSON


@pytest.fixture(scope="module")
def catalog() -> Iterator[RunningCatalog]:
    app = create_app(Settings(limits=LimitSettings(max_body_seconds=1.0)))
    with run_catalog(app=app) as c:
        yield c


def _head(c: RunningCatalog, length: int) -> bytes:
    host = c.url.removeprefix("http://")
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _connect(c: RunningCatalog) -> socket.socket:
    host, _, port = c.url.removeprefix("http://").rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    return sock


def _complete(data: bytes) -> bool:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return rest.endswith(b"0\r\n\r\n")  # chunked: its last chunk


def _answer(sock: socket.socket, data: bytes = b"") -> bytes:
    """The rest of an HTTP/1.1 answer begun with `data` (to its Content-Length or EOF)."""
    while not _complete(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_trickled_body_is_refused_at_the_deadline(catalog: RunningCatalog) -> None:
    sock = _connect(catalog)
    started = time.monotonic()
    sock.sendall(_head(catalog, len(BODY)))
    answered = b""
    sock.settimeout(0.25)
    for byte in BODY:  # 17 bytes x 0.25 s: 4 s, past the 1 s deadline
        try:
            sock.sendall(bytes((byte,)))
        except OSError:
            break  # the server closed the connection after its answer
        try:
            answered += sock.recv(65536)
        except TimeoutError:
            continue
        if answered:
            break
    sock.settimeout(15)
    answered = _answer(sock, answered)
    took = time.monotonic() - started
    sock.close()
    head, _, body = answered.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answered[:200]
    problem = json.loads(body)
    assert problem["code"] == "deadline_exceeded"
    assert "--max-body-seconds" in problem["message"]
    assert took < len(BODY) * 0.25  # answered before the whole body could have come


def test_a_prompt_body_still_passes(catalog: RunningCatalog) -> None:
    sock = _connect(catalog)
    sock.sendall(_head(catalog, len(BODY)) + BODY)
    head, _, _ = _answer(sock).partition(b"\r\n\r\n")
    sock.close()
    assert head.startswith(b"HTTP/1.1 200"), head


def test_max_body_seconds_is_a_setting_checked_at_start_up() -> None:
    assert load_settings([], env={}).limits.max_body_seconds == 60.0
    env = {"CONNECTRPC_CATALOG_MAX_BODY_SECONDS": "5s"}
    assert load_settings([], env=env).limits.max_body_seconds == 5.0
    with pytest.raises(ConfigError, match="max_body_seconds"):
        load_settings([], env={"CONNECTRPC_CATALOG_MAX_BODY_SECONDS": "never"})
