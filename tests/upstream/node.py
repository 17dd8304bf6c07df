"""connect-es test servers on Node: one HTTP/2-only (h2c), one HTTP/1.1-only.

The npm packages are installed per test session into a pytest temporary folder (never
into the checkout); without node or npm, or when the install fails, the fixtures skip
with the reason. The fixtures are in tests/transports/conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from .schema import TestSchema, compile_schema

HERE = Path(__file__).parent / "connect_es"
SERVICE = "ces.v1.ChatService"
PACKAGES = (
    "@connectrpc/connect@2.2.0",
    "@connectrpc/connect-node@2.2.0",
    "@bufbuild/protobuf@2.17.0",
)
_INSTALL_TIMEOUT = 300
_START_TIMEOUT = 30


@dataclass(frozen=True, slots=True)
class NodeServer:
    """A running connect-es server."""

    proc: subprocess.Popen[str]
    port: int

    @property
    def address(self) -> str:
        """host:port."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Close its stdin (it exits), or kill it."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def install(prefix: Path) -> Path:
    """npm-install the connect-es packages under `prefix`; their node_modules folder.

    Skips the test (with npm's complaint) when node or npm is missing or npm fails.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("connect-es tests need node and npm on PATH")
    try:
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
             "--prefix", str(prefix), *PACKAGES],
            capture_output=True, text=True, timeout=_INSTALL_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install of {' '.join(PACKAGES)} timed out")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        pytest.skip(f"npm install of the connect-es packages failed: {' / '.join(tail)}")
    return prefix / "node_modules"


def start(mode: str, modules: Path, descriptor_set: Path) -> NodeServer:
    """Start `server.cjs` in mode "h2" or "h1" and wait for its port."""
    env = {**os.environ, "NODE_PATH": str(modules)}
    proc = subprocess.Popen(
        ["node", str(HERE / "server.cjs"), mode, str(descriptor_set)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server prints its port once it listens
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        proc.wait(timeout=_START_TIMEOUT)
        raise RuntimeError(f"the connect-es server did not start: {err.strip()[-2000:]}")
    return NodeServer(proc=proc, port=int(json.loads(line)["port"]))


def chat_schema() -> TestSchema:
    """ChatService compiled into a pool (and the descriptor set the servers load)."""
    return compile_schema(HERE, "chat.proto", SERVICE)


def serve(mode: str, modules: Path, schema: TestSchema, folder: Path) -> NodeServer:
    """Write the schema's descriptor set into `folder` and start a server on it."""
    path = folder / "chat.binpb"
    path.write_bytes(schema.descriptor_set)
    return start(mode, modules, path)
