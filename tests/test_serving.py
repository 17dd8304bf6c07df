"""The server stacks and the worker supervisor, through the real command.

Each test runs on every server stack installed here (pyvoy, hypercorn): start-up errors,
workers sharing one port (connections land in different processes), a dead worker started
again, SIGHUP reaching the workers, a graceful stop with a call in flight, and workers
that stop when their supervisor is killed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.serving import choose
from connectrpc_catalog.serving.servers import ServingError

from .catalog_server import run_cli

API = "/catalog.v1.CatalogService/"
PROTOS = Path(__file__).parent / "fixtures" / "protos"
REDIS = "redis://127.0.0.1:6379/9"
STACKS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(name) is None, reason=f"{name} is not installed here"
        ),
    )
    for name in ("pyvoy", "hypercorn")
]


def _redis() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 6379), 1):
        return True
    return False


needs_redis = pytest.mark.skipif(not _redis(), reason="no Redis at 127.0.0.1:6379")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _workers(supervisor: int) -> list[int]:
    """The supervisor's direct children: its workers."""
    out = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True)
    return sorted(int(p) for p in out.stdout.split())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _socket_owners(port: int) -> set[int]:
    """Pids holding an established TCP socket whose local port is `port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(fields[9])
    owners = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    owners.add(int(proc.name))
    return owners


def test_several_workers_need_a_shared_session_store() -> None:
    done = _cli("--workers", "2")
    assert done.returncode == 2
    assert "--workers 2 needs --session-store" in done.stderr and "Traceback" not in done.stderr


def test_unknown_server_and_bad_worker_counts_are_refused() -> None:
    bogus = _cli("--server", "uvicorn")
    assert bogus.returncode == 2 and "server" in bogus.stderr and "uvicorn" in bogus.stderr
    many = _cli("--workers", "1000")
    assert many.returncode == 2 and "workers" in many.stderr


def test_auto_prefers_pyvoy_when_it_is_installed() -> None:
    want = "pyvoy" if importlib.util.find_spec("pyvoy") else "hypercorn"
    assert choose("auto").name == want
    if importlib.util.find_spec("pyvoy") is None:
        with pytest.raises(ServingError, match="--server pyvoy"):
            choose("pyvoy")


@pytest.mark.parametrize("stack", STACKS)
def test_a_start_up_source_that_fails_stops_the_start(stack: str, tmp_path: Path) -> None:
    done = _cli("--server", stack, "--proto", str(tmp_path / "missing"))
    assert done.returncode == 1, done.stderr
    assert "a start-up source failed to load" in done.stderr and "--keep-going" in done.stderr
    assert "Traceback" not in done.stderr


@needs_redis
@pytest.mark.parametrize("stack", STACKS)
def test_two_workers_share_the_port_and_a_dead_one_is_replaced(stack: str) -> None:
    args = ("--server", stack, "--workers", "2", "--session-store", REDIS)
    with run_cli(*args) as (url, proc):
        port = int(url.rsplit(":", 1)[1])
        workers = _workers(proc.pid)
        assert len(workers) == 2
        clients = [httpx.Client(timeout=30) for _ in range(24)]  # one connection each
        try:
            for client in clients:
                r = client.post(url + API + "GetSession", json={})
                assert r.status_code == 200
            owners = _socket_owners(port) & set(workers)
        finally:
            for client in clients:
                client.close()
        assert len(owners) == 2, f"connections landed in {owners} of {workers}"

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _workers(proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and workers[0] not in now and workers[1] in now
        for _ in range(10):
            with httpx.Client(timeout=30) as client:
                assert client.post(url + API + "GetSession", json={}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "exited with code" in err  # the supervisor said what happened
        assert all(not _alive(pid) for pid in now)


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=needs_redis)])
@pytest.mark.parametrize("stack", STACKS)
def test_sighup_reloads_the_base_in_every_worker(stack: str, workers: int, tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(PROTOS, protos)
    store = ("--session-store", REDIS) if workers > 1 else ()
    args = ("--server", stack, "--workers", str(workers), *store, "--proto", str(protos))
    with run_cli(*args) as (url, proc):
        names = _services(url)
        (protos / "extra.proto").write_text(
            'syntax = "proto3";\npackage extra.v1;\nmessage Ping {}\n'
            "service ExtraService { rpc Ping(extra.v1.Ping) returns (extra.v1.Ping); }\n"
        )
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        seen: list[bool] = []
        while time.monotonic() < deadline:
            # fresh connections: the kernel spreads them over the workers
            seen = ["extra.v1.ExtraService" in _services(url) for _ in range(12)]
            if all(seen):
                break
            time.sleep(0.2)
        assert seen and all(seen), seen
        assert "extra.v1.ExtraService" not in names


def _services(url: str) -> set[str]:
    r = httpx.post(url + API + "ListServices", json={}, timeout=30)
    return {s["name"] for s in r.json()["services"]}


@contextlib.contextmanager
def _silent_upstream() -> Iterator[str]:
    """A TCP server that accepts and never answers (a call to it waits for its deadline)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for s in held:
            s.close()
        server.close()


@pytest.mark.parametrize("stack", STACKS)
def test_sigterm_lets_a_call_in_flight_finish(stack: str) -> None:
    with _silent_upstream() as upstream, run_cli("--server", stack) as (url, proc):
        sid = httpx.post(url + API + "LoadProtos", json={"protoPath": str(PROTOS)}, timeout=60)
        body = {
            "endpoint": upstream,
            "service": "acme.weather.v1.WeatherService",
            "method": "GetCurrent",
            "requestJson": "{}",
            "timeoutSeconds": 2,
        }
        answer: list[httpx.Response] = []

        def call() -> None:
            headers = {"x-session-id": sid.headers["x-session-id"]}
            answer.append(httpx.post(url + API + "InvokeGRPC", json=body, headers=headers,
                                     timeout=30))  # fmt: skip

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.7)  # the call waits on the silent upstream
        proc.send_signal(signal.SIGTERM)
        caller.join(30)
        _out, err = proc.communicate(timeout=60)
    assert answer and answer[0].status_code == 200, err
    assert answer[0].json().get("success") is not True  # the deadline, answered in full
    assert proc.returncode == 0 and "Traceback" not in err


@pytest.mark.parametrize("stack", STACKS)
def test_workers_stop_when_the_supervisor_is_killed(stack: str) -> None:
    with run_cli("--server", stack) as (_url, proc):
        workers = _workers(proc.pid)
        assert workers
        proc.kill()
        proc.wait(15)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers)
    left = list(Path(tempfile.gettempdir()).glob(f"connectrpc-catalog-serving-{proc.pid}-*"))
    assert left  # the killed supervisor could not remove its folder ...
    with run_cli("--server", stack):
        assert not any(p.exists() for p in left)  # ... the next one did


@pytest.mark.parametrize("stack", STACKS)
def test_big_bodies_over_http1_and_http2(stack: str) -> None:
    """A body near the limit is read whole; one past it is refused with a Connect error,
    over HTTP/1.1 and HTTP/2 alike (Envoy's buffers and flow control, or hypercorn's)."""
    limit = 4 * 1024 * 1024
    with run_cli("--server", stack, "--max-request-bytes", str(limit)) as (url, _proc):
        under = b"{" + b" " * (limit - 1024) + b"}"
        over = b"{" + b" " * (limit + 1024) + b"}"
        headers = {"content-type": "application/json"}
        for http2 in (False, True):
            with httpx.Client(http1=not http2, http2=http2, timeout=60) as client:
                ok = client.post(url + API + "GetSession", content=under, headers=headers)
                assert ok.status_code == 200 and "ttlSeconds" in ok.json()
                assert ok.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
                refused = client.post(url + API + "GetSession", content=over, headers=headers)
                assert refused.json()["code"] == "resource_exhausted"
                assert str(limit) in refused.json()["message"]
                again = client.post(url + API + "GetSession", json={})  # connection still good
                assert again.status_code == 200


def test_worker_count_follows_the_session_store() -> None:
    from dataclasses import replace

    from connectrpc_catalog.serving import worker_count
    from connectrpc_catalog.settings import Settings

    plain = Settings()
    shared = replace(plain, sessions=replace(plain.sessions, store=REDIS))
    assert worker_count(plain) == 1
    assert worker_count(shared) == len(os.sched_getaffinity(0))
    assert worker_count(replace(shared, server=replace(shared.server, workers=3))) == 3


def test_each_worker_gets_its_share_of_the_compile_pool() -> None:
    from dataclasses import replace

    from connectrpc_catalog.serving.supervisor import _share
    from connectrpc_catalog.settings import Settings

    cores = len(os.sched_getaffinity(0))
    auto = Settings()
    assert _share(auto, 1) is auto  # one worker: the pool sizes itself to the cores
    assert _share(auto, cores).limits.compile_workers == 1
    assert _share(auto, 2 * cores).limits.compile_workers == 1
    assert _share(auto, 2).limits.compile_workers == max(1, -(-cores // 2))
    fixed = replace(auto, limits=replace(auto.limits, compile_workers=3))
    assert _share(fixed, 4).limits.compile_workers == 3  # --compile-workers is kept


async def test_channel_frames_and_their_bound() -> None:
    import asyncio
    import struct

    from connectrpc_catalog.serving.channel import ChannelClosed, frame, read_frame

    reader = asyncio.StreamReader()
    reader.feed_data(frame(b"reload") + frame(b""))
    assert await read_frame(reader) == b"reload"
    assert await read_frame(reader) == b""
    reader.feed_data(struct.pack(">I", 1 << 30))  # a length past the bound: no allocation
    with pytest.raises(ChannelClosed):
        await read_frame(reader)
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x00\x00")
    reader.feed_eof()
    with pytest.raises(ChannelClosed):
        await read_frame(reader)
