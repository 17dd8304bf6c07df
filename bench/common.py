"""Shared helpers for the benchmarks, and the one interface `bench/run.py` drives.

The interface (every scenario module follows it):

    async def scenario(ctx: Ctx, quick: bool) -> list[Row]

`bench/run.py` calls it once per round (round 0 is the warm-up and is thrown away), every
registered scenario taking its turn in each round, so drift in machine load hits all of
them alike. One call measures once and returns a `Row` per row key the module owns (the
keys are listed in run.py's `SCENARIOS` table), each with its value and, where the row
has one, its baseline measured in the same call. The runner takes medians and spreads
over the rounds, the ratios, and checks the targets: a scenario never asserts on times.
A row that cannot be measured here is returned with `value=None` and a `note` saying why.
Heavy scenarios are listed with `once=True` and called in round 1 only (no warm-up call);
rows a module returns that the table does not list are shown too, as info rows.

Long-lived things (servers, upstreams, built schemas) live in the context: `ctx.catalog`,
`ctx.upstream`, `ctx.demo` and `ctx.start` start a server once and keep it for every
round; `ctx.state` is a dict where a module keeps its own objects between rounds;
`ctx.at_exit` registers clean-up. Blocking work goes through `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PROTOS = ROOT / "tests" / "fixtures" / "protos"
CLI = Path(sys.executable).parent / "connectrpc-catalog"


@dataclass
class Row:
    """One measurement of one table row, from one round.

    `value` is in the row's unit (see run.py's table; `unit` here only labels rows the
    table does not list). `baseline` is the same-run baseline the row's ratio divides by.
    `lo`/`hi` give a spread within this one measurement, for rows measured once.
    """

    key: str
    value: float | None
    baseline: float | None = None
    note: str = ""
    unit: str = ""
    label: str = ""
    lo: float | None = None
    hi: float | None = None


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Ctx:
    """What every scenario gets: the run's settings, its servers and a scratch folder."""

    quick: bool
    rounds: int
    tmp: Path
    round: int = 0
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    state: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    servers: dict[str, Server] = field(default_factory=dict)
    _exits: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _help: str = ""

    @property
    def warmup(self) -> bool:
        return self.round == 0

    def note(self, text: str) -> None:
        """A line printed under the table (once, however often it is noted)."""
        if text not in self.notes:
            self.notes.append(text)

    def at_exit(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._exits.append(fn)

    async def start(
        self, name: str, args: list[str], port: int, env: dict[str, str] | None = None
    ) -> Server:
        """Start `args` (listening on `port`) once under `name`; later calls return it."""
        if name in self.servers and self.servers[name].proc.poll() is None:
            return self.servers[name]
        proc = await asyncio.to_thread(self._popen, name, args, env or {})
        server = Server(name, port, proc)
        self.servers[name] = server
        try:
            await wait_port_async(port, proc)
        except RuntimeError as exc:
            log = (self.tmp / f"{name}.log").read_text(errors="replace")[-800:]
            raise RuntimeError(f"{name} did not start: {exc}\n{log}") from None
        return server

    def _popen(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, **env}, cwd=ROOT
            )

    async def catalog(self, *args: str, name: str = "catalog") -> Server:
        """The catalog started by its real CLI (`connectrpc-catalog`) with `args`."""
        port = free_port()
        cli = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "connectrpc_catalog"]
        cmd = [*cli, "--port", str(port), "--log-level", "warning", *args]
        return await self.start(name, cmd, port)

    async def catalog_help(self) -> str:
        """The CLI's --help text (to see which flags this version has)."""
        if not self._help:
            cli = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "connectrpc_catalog"]
            proc = await asyncio.create_subprocess_exec(
                *cli, "--help", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            out, _ = await proc.communicate()
            self._help = out.decode()
        return self._help

    async def upstream(self) -> Server:
        """bench/upstream.py: a grpcio server whose unary GetCurrent answers fixed bytes."""
        port = free_port()
        cmd = [sys.executable, str(BENCH / "upstream.py"), str(port)]
        return await self.start("upstream", cmd, port)

    async def demo(self) -> Server:
        """The package's demo weather API (grpcio, reflection, all four kinds of method)."""
        port = free_port()
        cmd = [sys.executable, "-m", "connectrpc_catalog.demo.weather", "--port", str(port)]
        return await self.start("demo", cmd, port)

    async def close(self) -> None:
        for fn in reversed(self._exits):
            with contextlib.suppress(Exception):
                await fn()
        for server in self.servers.values():
            stop(server.proc)


class Http1:
    """One keep-alive HTTP/1.1 connection: a light client for many at once in one process
    (httpx with 200 connections in one process did ~300 req/s against a hello-world, so
    it measured itself)."""

    def __init__(self, url: str) -> None:
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        method = "POST" if body else "GET"
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += f"Content-Length: {len(body)}\r\n{extra}\r\n"
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        got: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            got[name.strip().lower()] = value.strip()
        return status, got, await self._body(got)

    async def _body(self, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() != "chunked":
            return await self.reader.read()
        chunks = []
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readline()
        await self.reader.readline()
        return b"".join(chunks)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def wait_port_async(
    port: int, proc: subprocess.Popen[bytes] | None = None, within: float = 60
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {within:.0f} s")


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc; just `pid` elsewhere)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def rss_bytes(pid: int) -> int | None:
    """Resident memory of `pid` and its children, in bytes (None where /proc is missing)."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total or None


def open_fds(pid: int) -> int | None:
    """Open file descriptors of `pid` and its children (None where /proc is missing)."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{p}/fd"))
    return total or None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid` and its children so far (Linux)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for p in tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total or None


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


# Helpers of the stand-alone scripts (they predate the runner and still work alone).


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def process(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, env={**os.environ})
    try:
        wait_port(port)
        yield proc
    finally:
        stop(proc)


@contextlib.contextmanager
def catalog(*args: str) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "connectrpc_catalog", "--port", str(port), *args]
    with process(cmd, port):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def hello() -> Iterator[str]:
    port = free_port()
    with process([sys.executable, str(Path(__file__).parent / "hello.py"), str(port)], port):
        yield f"http://127.0.0.1:{port}"


def keepalive_post(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[http.client.HTTPResponse, bytes]:
    """POST on a keep-alive connection: the response and its whole body; connected again
    once if the server closed it while idle (its keep-alive timeout passed meanwhile)."""
    for attempt in (1, 2):
        try:
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            return resp, resp.read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            conn.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
