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
from collections.abc import Callable, Sequence

from .app import App, AppConfig, create_app
from .config import ENV_PREFIX, ConfigError, Settings, load_settings, parse_duration
from .startup import BaseLoadError

__all__ = ["main", "parse_duration", "serve"]

_log = logging.getLogger("connectrpc_catalog")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse settings, load the start-up sources, serve until Ctrl+C or SIGTERM."""
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        print(f"connectrpc-catalog: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(
        AppConfig(
            session_ttl=settings.session_ttl,
            cors_origins=settings.cors_origins,
            bind_host=settings.host,
            allowed_hosts=settings.allowed_hosts,
            max_sessions=settings.max_sessions,
            max_timeout=settings.max_timeout,
            max_request_bytes=settings.max_request_bytes,
            max_json_depth=settings.max_json_depth,
            max_stream_messages=settings.max_stream_messages,
            max_streams_per_session=settings.max_streams_per_session,
            max_loads_per_session=settings.max_loads_per_session,
            base=settings.base,
            admin_token=settings.admin_token,
            git_base_url=settings.git_base_url,
            buf=settings.buf,
            cache_dir=settings.cache_dir,
        )
    )
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(serve(app, settings))
    except KeyboardInterrupt:
        return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (faster I/O for every request), else the standard loop."""
    if os.environ.get(ENV_PREFIX + "LOOP", "auto") == "asyncio":
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
            "listening on a network address (%s): anyone who can reach it can read what this "
            "server can read and call what it can reach; put it behind an authenticating "
            "proxy, and name the hosts people use with --allowed-host",
            addr[0],
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
    print("connectrpc-catalog stopped", flush=True)
    return 0


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


async def _reload(app: App) -> None:
    """SIGHUP: reload the start-up sources, keeping the old base if that fails."""
    try:
        loaded = await app.reload_base()
    except BaseLoadError as exc:
        _log.error("reload failed; the previous base stays in place:\n%s", exc)
        return
    _log.info("reloaded the base: %d services", len(loaded.schema.service_names))
