"""Shared helpers for the benchmarks: free ports, servers as subprocesses, percentiles."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "tests" / "fixtures" / "protos"


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
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


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


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
