"""The `connectrpc-catalog` command."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import os
import signal
import sys
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import replace

from .app import App, create_app
from .config import ConfigError, Settings, load_settings, parse_duration
from .startup import BaseLoadError

__all__ = ["main", "parse_duration", "serve"]

_log = logging.getLogger("connectrpc_catalog")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse settings, load the start-up sources, serve until Ctrl+C or SIGTERM."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:  # `connectrpc-catalog run COLLECTION`: saved requests, for CI
        from .saved.runner import main as run_main

        return run_main(args[1:])
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        print(f"connectrpc-catalog: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings)
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
            app = create_app(settings)
        except OSError as exc:
            print(f"connectrpc-catalog: cannot start: {exc}", file=sys.stderr)
            return 2
        try:
            with asyncio.Runner(loop_factory=_loop_factory(settings)) as runner:
                return runner.run(serve(app, settings))
        except KeyboardInterrupt:
            return 0
    finally:
        if demo is not None:
            demo.stop()


def _setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    if settings.server.log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (faster I/O for every request), else the standard loop."""
    if settings.server.loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(app: App, settings: Settings) -> int:
    """Load the base, then serve HTTP/1.1 and HTTP/2 cleartext on one port until stopped."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    if settings.base.sources:
        try:
            loaded = await app.reload_base()
        except BaseLoadError as exc:
            print(f"connectrpc-catalog: a start-up source failed to load:\n{exc}", file=sys.stderr)
            print("(use --keep-going to start without it)", file=sys.stderr)
            await app.shutdown()
            return 1
        print(
            f"loaded {len(loaded.schema.service_names)} services from "
            f"{len(settings.base.sources) - len(loaded.skipped)} start-up source(s)",
            flush=True,
        )

    config = Config()
    host, port = settings.host, settings.port
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.keep_alive_max_requests = 1 << 62  # hypercorn's default of 1,000 breaks gRPC clients
    config.loglevel = "WARNING" if settings.log_level == "info" else settings.log_level.upper()
    config.accesslog = None
    # hypercorn's own lines go through our handler: one format (time, level) for all.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.errorlog.setLevel(config.loglevel)  # its start-up chatter only at debug
    config.graceful_timeout = 5.0
    try:
        sockets = config.create_sockets()
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)  # before "listening on" is printed: clients may connect
    except OSError as exc:
        print(f"connectrpc-catalog: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        await app.shutdown()
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload(app)))

    addr = sockets.insecure_sockets[0].getsockname()
    shown = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    url = f"http://{shown}:{addr[1]}"
    print(f"connectrpc-catalog listening on {url}", flush=True)
    if not _is_loopback(addr[0]):
        _log.warning(
            "listening on a network address (%s) with sign-in %s; name the hosts people "
            "use with --allowed-host, and bound loads and calls with --proto-root and "
            "--allow-target",
            addr[0],
            settings.auth.mode,
        )
    if settings.open_browser and not os.environ.get("CI"):
        loop.call_later(0.5, webbrowser.open, url)
    config.bind = [f"fd://{s.fileno()}" for s in sockets.insecure_sockets]
    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        for s in sockets.insecure_sockets:
            with contextlib.suppress(OSError):  # hypercorn may have closed it already
                s.close()
    with contextlib.suppress(BrokenPipeError):  # stdout may be a pipe closed already
        print("connectrpc-catalog stopped", flush=True)
    return 0


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


async def _reload(app: App) -> None:
    """SIGHUP: reopen the audit log; reload the start-up sources, keeping the old base if
    that fails."""
    if app.audit is not None:
        app.audit.reopen()
    try:
        loaded = await app.reload_base()
    except BaseLoadError as exc:
        _log.error("reload failed; the previous base stays in place:\n%s", exc)
        return
    _log.info("reloaded the base: %d services", len(loaded.schema.service_names))
