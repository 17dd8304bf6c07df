"""Catalog processes sharing one Redis (`--session-store`): the real Redis at
127.0.0.1:6379, or a redis-server a test starts itself. Every test gets its own key
prefix (`--session-store-prefix`) on database 9, and its keys are deleted afterwards."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.catalog_server import run_cli
from tests.connect_stream import stream_frames

API = "/catalog.v1.CatalogService/"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 9


def _answers(host: str, port: int) -> bool:
    """Whether a Redis answers PING there (no client library: a raw RESP exchange)."""
    try:
        with socket.create_connection((host, port), 1.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis (skipped with the reason when it does not answer)."""
    if not _answers(REDIS_HOST, REDIS_PORT):
        pytest.skip(f"no Redis answers at {REDIS_HOST}:{REDIS_PORT} (start one to run these)")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"test-{secrets.token_hex(4)}"
    yield name
    _delete_prefix(REDIS_PORT, name)


def _delete_prefix(port: int, name: str) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=port, db=REDIS_DB)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


def store_args(url: str, prefix: str, *more: str) -> tuple[str, ...]:
    """The flags of one catalog process of a test (one worker: the test starts several)."""
    return ("--session-store", url, "--session-store-prefix", prefix, "--workers", "1", *more)


@contextlib.contextmanager
def catalogs(n: int, *args: str) -> Iterator[list[str]]:
    """`n` catalog processes (the real CLI) started with the same flags; their URLs."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(run_cli(*args))[0] for _ in range(n)]


@dataclass
class Client:
    """Catalog API calls over HTTP/1.1, as a browser makes them."""

    http: httpx.AsyncClient

    async def post(
        self, url: str, method: str, body: dict[str, Any], sid: str = ""
    ) -> httpx.Response:
        headers = {"x-session-id": sid} if sid else {}
        return await self.http.post(url + API + method, json=body, headers=headers)

    async def ok(self, url: str, method: str, body: dict[str, Any], sid: str) -> dict[str, Any]:
        r = await self.post(url, method, body, sid)
        assert r.status_code == 200, (method, r.status_code, r.text)
        assert r.headers["x-session-id"] == sid, (method, r.headers.get("x-session-status"))
        out: dict[str, Any] = r.json()
        return out

    async def watch(self, url: str, call_id: str, sid: str) -> AsyncIterator[dict[str, Any]]:
        data = json.dumps({"callId": call_id}).encode()
        async with self.http.stream(
            "POST",
            url + API + "WatchCall",
            content=struct.pack(">BI", 0, len(data)) + data,
            headers={"content-type": "application/connect+json", "x-session-id": sid},
        ) as r:
            assert r.status_code == 200
            async for frame in stream_frames(r):
                yield frame


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield Client(http)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class OwnRedis:
    """A redis-server this test started on a free port (no persistence but an explicit
    SHUTDOWN SAVE, so a restart finds what it held)."""

    port: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()
    """More redis-server flags (a password, TLS)."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{REDIS_DB}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (needed to stop and restart a Redis)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _listens(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """SHUTDOWN SAVE: it writes what it holds to its folder, then exits."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)) as s:
            s.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$4\r\nSAVE\r\n")
            s.recv(16)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(port=free_port(), folder=tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.proc.kill()
            server.proc.wait()
