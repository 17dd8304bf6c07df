"""The `connectrpc-catalog` command."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
import webbrowser
from collections.abc import Sequence
from dataclasses import replace

from .config import ConfigError, Settings, load_settings, parse_duration
from .serving import Server, ServingError, StartupFailed, Supervisor, choose, worker_count
from .serving.logs import JSONFormatter, setup_logging

__all__ = ["JSONFormatter", "main", "parse_duration", "serve"]

_log = logging.getLogger("connectrpc_catalog")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse settings, start the workers (each loads the base), serve until Ctrl+C or SIGTERM."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:  # `connectrpc-catalog run COLLECTION`: saved requests, for CI
        from .saved.runner import main as run_main

        return run_main(args[1:])
    try:
        settings = load_settings(argv)
        server = choose(settings.server.http_server)
    except (ConfigError, ServingError) as exc:
        print(f"connectrpc-catalog: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    if settings.auth.mode == "none" and not settings.server.loopback:
        _log.warning(
            "--auth none on the network address %s: anyone who can reach it signs in as "
            "'anonymous' (an explicit choice)",
            settings.host,
        )
    demo = None
    if settings.server.demo:
        from .demo import start, with_demo

        try:
            demo = start()
        except OSError as exc:
            print(f"connectrpc-catalog: cannot start the demo API: {exc}", file=sys.stderr)
            return 2
        settings = replace(settings, base=with_demo(settings.base, demo))
        print(f"demo API (Skylark Weather, gRPC) listening on {demo.address}", flush=True)
    try:
        try:
            with asyncio.Runner() as runner:
                return runner.run(serve(settings, server))
        except KeyboardInterrupt:
            return 0
    finally:
        if demo is not None:
            demo.stop()


async def serve(settings: Settings, server: Server) -> int:
    """Start the workers (HTTP/1.1 and HTTP/2 cleartext on one port), supervise them until
    stopped; 1 when the catalog cannot start."""
    try:
        supervisor = Supervisor(server, settings, worker_count(settings))
        await supervisor.start()
    except (StartupFailed, ServingError) as exc:
        print(f"connectrpc-catalog: {exc}", file=sys.stderr)
        return 1
    if supervisor.summary is not None:
        print(
            f"loaded {supervisor.summary['services']} services from "
            f"{supervisor.summary['sources']} start-up source(s)",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, supervisor.reload)
    shown = f"[{supervisor.host}]" if ":" in supervisor.host else supervisor.host
    url = f"http://{shown}:{supervisor.port}"
    print(f"connectrpc-catalog listening on {url}", flush=True)
    if settings.server.base_path:
        url += settings.server.base_path + "/"
        print(f"the web UI is at {url} (--base-path)", flush=True)
    if supervisor.count > 1:
        _log.info("%d %s workers: pids %s", supervisor.count, server.name, supervisor.pids)
    if not _is_loopback(supervisor.host):
        _log.warning(
            "listening on a network address (%s) with sign-in %s; name the hosts people "
            "use with --allowed-host, and bound loads and calls with --proto-root and "
            "--allow-target",
            supervisor.host,
            settings.auth.mode,
        )
    if settings.open_browser and not os.environ.get("CI"):
        loop.call_later(0.5, webbrowser.open, url)
    await supervisor.run(stop)
    with contextlib.suppress(BrokenPipeError):  # stdout may be a pipe closed already
        print("connectrpc-catalog stopped", flush=True)
    return 0


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"
