"""Settings from flags, environment variables (CONNECTRPC_CATALOG_<NAME>) and a TOML file.

Precedence: a flag beats the environment, which beats the config file, which beats the
default. List settings (sources, targets, origins) from the file and the flags add up.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .gen.catalog.v1 import catalog_pb
from .loading import SOURCES, Kind
from .policy import TargetRule
from .settings import (
    AuthSettings,
    LimitSettings,
    OpsSettings,
    PolicySettings,
    SavedSettings,
    ServerSettings,
    SessionSettings,
    Settings,
)
from .sources.core import Limits
from .startup import BaseSpec, StartupSource, parse_target

__all__ = [
    "OPTIONS",
    "ConfigError",
    "Option",
    "Settings",
    "build_parser",
    "load_settings",
    "parse_duration",
]

ENV_PREFIX = "CONNECTRPC_CATALOG_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

_SOURCE_FLAGS: dict[str, Kind] = {kind.dest: kind for kind in SOURCES.values() if kind.flag}
"""The start-up sources of the source table by flag dest (`buf_module`), which is also
their config-file key and environment suffix (CONNECTRPC_CATALOG_BUF_MODULE)."""


class ConfigError(Exception):
    """Settings that cannot be used; the message says which and why."""


def parse_duration(text: str) -> float:
    """Seconds from "90s", "30m", "2h", "1h30m", "1.5h", "500ms" or a bare number of seconds."""
    raw = str(text).strip()
    match = _DURATION.match(raw)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    elif raw and _DURATION_PART.sub("", raw.replace(" ", "")) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(raw))
    else:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number with a unit, e.g. 90s, 30m, 2h, 1h30m"
        )
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be greater than zero")
    return seconds


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _compile_workers(text: str) -> int:
    """--compile-workers: 0 (one per core) to 64 protoc worker processes."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{value}: use 1 to 64 (0 = one per core)")
    return value


def _origin(text: str) -> str:
    origin = text.strip().rstrip("/")
    if origin == "*":
        return origin
    scheme, sep, rest = origin.partition("://")
    if origin.lower() == "null" or not sep or scheme not in ("http", "https") or not rest:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected an origin such as http://localhost:3000 "
            "(the origin 'null' is never allowed)"
        )
    if "/" in rest:
        raise argparse.ArgumentTypeError(f"{text!r}: an origin has no path")
    return origin


def _base_path(text: str) -> str:
    """--base-path: "" or /segment[/segment...] of URL-safe characters, no dot segments."""
    value = str(text).strip()
    if value in ("", "/"):
        return ""
    path = "/" + value.strip("/")
    segments = path.split("/")[1:]
    if (
        len(path) > 200
        or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path)
        or any(seg in (".", "..") for seg in segments)
    ):
        raise argparse.ArgumentTypeError(
            f"{value[:80]!r}: expected a path such as /catalog or /tools/catalog (letters, "
            "digits, '.', '_', '~', '-' between slashes; no '.' or '..' segments; at most "
            "200 characters)"
        )
    return path


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _count(text: str) -> int:
    """A whole number ≥ 0 (0 turns a limit off)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def _choice(*names: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in names:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(names)}")
        return value

    return parse


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address or a CIDR such as 10.0.0.0/8"
        ) from None


def _target_pattern(text: str) -> str:
    try:
        return TargetRule.parse(text).text
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _folder(text: str) -> str:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder on this machine")
    return str(path)


def _pair(convert: Callable[[str], str]) -> Callable[[str], tuple[str, str]]:
    def parse(text: str) -> tuple[str, str]:
        group, sep, value = str(text).partition("=")
        if not sep or not group.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"{text!r}: expected GROUP=VALUE")
        return group.strip(), convert(value.strip())

    return parse


def _url(text: str) -> str:
    value = str(text).strip().rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s):// URL")
    return value


_STORE_QUERY = frozenset(
    {
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
        "socket_timeout",
        "socket_connect_timeout",
        "health_check_interval",
        "protocol",
    }
)
"""Connection settings a --session-store URL may carry in its query (redis-py's names)."""


def _session_store(text: str) -> str:
    """ "" (in memory) or a redis:// / rediss:// URL: host, port, /DB, user:password, TLS options.

    Messages never repeat the password.
    """
    from urllib.parse import parse_qsl, urlsplit

    value = str(text).strip()
    if not value:
        return ""
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        raise argparse.ArgumentTypeError(
            "not a URL such as redis://127.0.0.1:6379/0 (the port must be a number 0-65535)"
        ) from None
    shown = f"{url.scheme}://{url.hostname or ''}{f':{port}' if port else ''}{url.path}"
    if url.scheme not in ("redis", "rediss"):
        raise argparse.ArgumentTypeError(
            f"{url.scheme or value.partition(':')[0]!r} is not a store: use redis://HOST:PORT/DB "
            "(rediss:// for TLS), or leave it empty to keep sessions in memory"
        )
    if not url.hostname:
        raise argparse.ArgumentTypeError(f"{shown!r} names no host, e.g. redis://127.0.0.1:6379/0")
    db = url.path.strip("/")
    if db and (not db.isdigit() or int(db) > 1_000_000):
        raise argparse.ArgumentTypeError(f"{shown!r}: the path is the database number, e.g. /0")
    unknown = sorted({k for k, _ in parse_qsl(url.query, keep_blank_values=True)} - _STORE_QUERY)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"{shown!r}: unknown option(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_STORE_QUERY))})"
        )
    return value


def _key_prefix(text: str) -> str:
    value = str(text).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise argparse.ArgumentTypeError(
            f"{value[:80]!r}: use 1-64 letters, digits, '_', '.', ':' or '-'"
        )
    return value


def _database(text: str) -> str:
    """--database: sqlite:///PATH or postgresql://... (checked, never echoed)."""
    from .saved.db import DatabaseError, engine_url

    try:
        engine_url(text)
    except DatabaseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def _workers(text: str) -> int:
    """--workers: 0 (automatic) to 256 server processes."""
    value = int(text)
    if not 0 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{text!r}: use 1 to 256 (0 = automatic)")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """One setting: its flag, environment variable, config key, place in the tree,
    default, parser and help."""

    key: str
    """The config-file key and environment suffix: `session_ttl`."""
    path: str
    """Where it goes in `Settings`: `sessions.ttl`."""
    default: Any
    help: str
    group: str
    parse: Callable[[str], Any] = str
    flag: str = ""
    metavar: str | None = None
    many: bool = False
    switch: bool = False
    """A flag without a value (`--open`); `--no-…` too when the default is true."""
    secret: bool = False
    """Never shown in messages."""
    shown_default: str = ""

    @property
    def flag_name(self) -> str:
        """The command-line flag."""
        return self.flag or "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable."""
        return ENV_PREFIX + self.key.upper()


_G_SERVER = "listening"
_G_SEC = "security and limits (see the README's Security section)"
_G_AUTH = "sign-in (see the README's Running for a team section)"
_G_POLICY = "access policy"
_G_OPS = "operations"
_G_SAVED = "saved requests (see the README's Saved requests section)"
_G_LOAD = "load limits"
_L = Limits()

OPTIONS: tuple[Option, ...] = (
    Option(
        key="host",
        path="server.host",
        default="127.0.0.1",
        group=_G_SERVER,
        help="address to listen on; a non-loopback address needs --auth",
    ),
    Option(
        key="port",
        path="server.port",
        default=8080,
        parse=_port,
        group=_G_SERVER,
        help="port to listen on, 0 = any",
    ),
    Option(
        key="log_level",
        path="server.log_level",
        default="info",
        group=_G_SERVER,
        parse=_choice("debug", "info", "warning", "error"),
        help="debug, info, warning or error",
    ),
    Option(
        key="log_format",
        path="server.log_format",
        default="text",
        group=_G_SERVER,
        parse=_choice("text", "json"),
        help="text, or json: one JSON object per log line",
    ),
    Option(
        key="loop",
        path="server.loop",
        default="auto",
        group=_G_SERVER,
        parse=_choice("auto", "asyncio"),
        help="event loop: auto (uvloop when installed) or asyncio",
    ),
    Option(
        key="server",
        path="server.http_server",
        default="auto",
        group=_G_SERVER,
        parse=_choice("auto", "pyvoy", "hypercorn"),
        help="HTTP server: auto (pyvoy when installed, else hypercorn), pyvoy (Envoy-based, "
        "fastest) or hypercorn (pure Python)",
    ),
    Option(
        key="workers",
        path="server.workers",
        default=0,
        parse=_workers,
        metavar="N",
        group=_G_SERVER,
        shown_default="the number of cores with --session-store, else 1",
        help="server processes on the one port; more than 1 needs --session-store",
    ),
    Option(
        key="open",
        path="server.open_browser",
        default=False,
        switch=True,
        parse=_bool,
        group=_G_SERVER,
        help="open the UI in a browser",
    ),
    Option(
        key="demo",
        path="server.demo",
        default=False,
        switch=True,
        parse=_bool,
        group=_G_SERVER,
        help="also start the example weather API in this process, loaded and ready to call",
    ),
    Option(
        key="cors_origin",
        path="server.cors_origins",
        default=(),
        many=True,
        parse=_origin,
        metavar="ORIGIN",
        group=_G_SEC,
        help="a browser origin besides the catalog's own page that may call the API, e.g. "
        "http://localhost:3000 (repeatable; '*' for any; default: none, same-origin only)",
    ),
    Option(
        key="base_path",
        path="server.base_path",
        default="",
        parse=_base_path,
        metavar="PATH",
        group=_G_SERVER,
        help="the path prefix browsers reach the catalog at behind a reverse proxy, e.g. "
        "/catalog: pages, sign-in redirects and cookies use it; requests are answered with "
        "or without it (for proxies that strip it); default: none",
    ),
    Option(
        key="allowed_host",
        path="server.allowed_hosts",
        default=(),
        many=True,
        metavar="NAME",
        group=_G_SEC,
        help="a host name the catalog answers to besides localhost, IP addresses and --host "
        "(repeatable; '*' for any); other Host headers are refused (DNS rebinding)",
    ),
    Option(
        key="session_ttl",
        path="sessions.ttl",
        default=3600.0,
        parse=parse_duration,
        metavar="DURATION",
        group=_G_SEC,
        shown_default="1h",
        help="idle time after which a session expires, e.g. 90s, 30m, 2h",
    ),
    Option(
        key="session_sweep_interval",
        path="sessions.cleanup_interval",
        default=300.0,
        parse=parse_duration,
        metavar="DURATION",
        group=_G_SEC,
        shown_default="5m",
        help="time between two sweeps of expired sessions",
    ),
    Option(
        key="max_sessions",
        path="sessions.max_sessions",
        default=10_000,
        parse=_positive,
        metavar="N",
        group=_G_SEC,
        help="live sessions at most",
    ),
    Option(
        key="sessions_per_identity",
        path="sessions.per_identity",
        default=0,
        parse=_count,
        metavar="N",
        group=_G_SEC,
        help="live sessions one signed-in identity may hold (0: no limit)",
    ),
    Option(
        key="session_store",
        path="sessions.store",
        default="",
        parse=_session_store,
        metavar="URL",
        group=_G_SEC,
        shown_default="in memory",
        help="where sessions live: empty = this process's memory; redis://HOST:PORT/DB "
        "(rediss:// for TLS, user:password@ for auth) shares them between processes and "
        "replicas (see the README's Running several replicas)",
    ),
    Option(
        key="session_store_prefix",
        path="sessions.store_prefix",
        default="catalog",
        parse=_key_prefix,
        metavar="NAME",
        group=_G_SEC,
        help="prefix of the catalog's Redis keys and channels (catalogs that share one Redis "
        "share sessions only with the same prefix)",
    ),
    Option(
        key="max_timeout",
        path="limits.max_timeout",
        default=300.0,
        parse=parse_duration,
        metavar="DURATION",
        group=_G_SEC,
        shown_default="5m",
        help="longest deadline a call may ask for, e.g. 5m",
    ),
    Option(
        key="max_request_bytes",
        path="limits.max_request_bytes",
        default=96 * 1024 * 1024,
        parse=_positive,
        metavar="N",
        group=_G_SEC,
        shown_default="100663296, 96 MiB",
        help="largest request body in bytes",
    ),
    Option(
        key="max_body_seconds",
        path="limits.max_body_seconds",
        default=60.0,
        parse=parse_duration,
        metavar="DURATION",
        group=_G_SEC,
        shown_default="1m",
        help="longest a request body may take to arrive whole; a slower one is refused "
        "(deadline_exceeded, HTTP 408)",
    ),
    Option(
        key="max_json_depth",
        path="limits.max_json_depth",
        default=100,
        parse=_positive,
        metavar="N",
        group=_G_SEC,
        help="deepest nesting of JSON in a request",
    ),
    Option(
        key="max_stream_messages",
        path="limits.max_stream_messages",
        default=10_000,
        parse=_positive,
        metavar="N",
        group=_G_SEC,
        help="request messages one stream may send",
    ),
    Option(
        key="max_streams_per_session",
        path="limits.max_streams_per_session",
        default=16,
        parse=_positive,
        metavar="N",
        group=_G_SEC,
        help="InvokeStream calls one session may have open at once",
    ),
    Option(
        key="max_loads_per_session",
        path="limits.max_loads_per_session",
        default=4,
        parse=_positive,
        metavar="N",
        group=_G_SEC,
        help="LoadProtos calls one session may have in progress at once",
    ),
    Option(
        key="calls_per_minute",
        path="limits.calls_per_minute",
        default=0,
        parse=_count,
        metavar="N",
        group=_G_SEC,
        help="upstream calls one identity may start per minute (0: no limit)",
    ),
    Option(
        key="streams_per_identity",
        path="limits.streams_per_identity",
        default=0,
        parse=_count,
        metavar="N",
        group=_G_SEC,
        help="upstream streams one identity may have open at once (0: no limit)",
    ),
    Option(
        key="stream_lease",
        path="limits.stream_lease",
        default=30.0,
        parse=parse_duration,
        metavar="DURATION",
        group=_G_SEC,
        shown_default="30s",
        help="with --session-store: how long a stream still counts for "
        "--streams-per-identity once its process stops renewing it (a crashed process's "
        "streams stop counting after this)",
    ),
    Option(
        key="schema_cache_entries",
        path="limits.schema_cache_entries",
        default=64,
        parse=_positive,
        metavar="N",
        group=_G_SEC,
        help="schemas kept in the shared cache",
    ),
    Option(
        key="max_schema_bytes",
        path="limits.max_schema_bytes",
        default=8 << 20,
        parse=_positive,
        metavar="N",
        group=_G_SEC,
        help="most JSON Schema bytes one GetServiceSchema answer carries",
    ),
    Option(
        key="compile_workers",
        path="limits.compile_workers",
        default=0,
        parse=_compile_workers,
        metavar="N",
        group=_G_LOAD,
        shown_default="0, one per core",
        help="protoc worker processes compiling at once",
    ),
    Option(
        key="compile_queue",
        path="limits.compile_queue",
        default=256,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="compiles that may wait for a worker (past it: resource_exhausted)",
    ),
    Option(
        key="compile_worker_max_rss",
        path="limits.compile_worker_max_rss",
        default=512 << 20,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        shown_default="536870912, 512 MiB",
        help="bytes of memory past which a compile worker is replaced after its job",
    ),
    Option(
        key="compiled_cache_bytes",
        path="limits.compiled_cache_bytes",
        default=256 << 20,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        shown_default="268435456, 256 MiB",
        help="compiled files kept so a reload compiles only what changed",
    ),
    Option(
        key="max_load_files",
        path="limits.load.max_files",
        default=_L.max_files,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="files one load may hold",
    ),
    Option(
        key="max_load_bytes",
        path="limits.load.max_bytes",
        default=_L.max_bytes,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="bytes one load may read",
    ),
    Option(
        key="max_checkout_bytes",
        path="limits.load.max_checkout_bytes",
        default=_L.max_checkout_bytes,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="size a Git checkout may reach",
    ),
    Option(
        key="git_timeout",
        path="limits.load.git_timeout",
        default=_L.git_timeout,
        parse=parse_duration,
        metavar="DURATION",
        group=_G_LOAD,
        shown_default="2m",
        help="longest a git step may run",
    ),
    Option(
        key="buf_timeout",
        path="limits.load.buf_timeout",
        default=_L.buf_timeout,
        parse=parse_duration,
        metavar="DURATION",
        group=_G_LOAD,
        shown_default="2m",
        help="longest a buf step may run",
    ),
    Option(
        key="max_walk_entries",
        path="limits.load.max_walk_entries",
        default=_L.max_walk_entries,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="directory entries a folder load may look at",
    ),
    Option(
        key="max_walk_depth",
        path="limits.load.max_walk_depth",
        default=_L.max_walk_depth,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="folders deep a folder load may go",
    ),
    Option(
        key="max_name_chars",
        path="limits.load.max_name_chars",
        default=_L.max_name_chars,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="longest import path",
    ),
    Option(
        key="max_name_part_chars",
        path="limits.load.max_name_part_chars",
        default=_L.max_name_part_chars,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="longest folder or file name in an import path",
    ),
    Option(
        key="max_name_depth",
        path="limits.load.max_name_depth",
        default=_L.max_name_depth,
        parse=_positive,
        metavar="N",
        group=_G_LOAD,
        help="most '/'-separated parts of an import path",
    ),
    Option(
        key="auth",
        path="auth.mode",
        default="none",
        group=_G_AUTH,
        parse=_choice("none", "token", "proxy", "oidc"),
        help="sign-in: token (a bearer token), proxy (an identity header from "
        "--trusted-proxy), oidc (OpenID Connect) or none; required on a non-loopback --host",
    ),
    Option(
        key="auth_token",
        path="auth.token",
        default="",
        secret=True,
        group=_G_AUTH,
        metavar="TOKEN",
        help="the bearer token everyone signs in with (implies --auth token)",
    ),
    Option(
        key="auth_token_file",
        path="",
        default="",
        group=_G_AUTH,
        metavar="FILE",
        help="a file holding the bearer token (implies --auth token)",
    ),
    Option(
        key="auth_header",
        path="auth.header",
        default="X-Forwarded-Email",
        group=_G_AUTH,
        metavar="NAME",
        help="--auth proxy: the header naming the signed-in person",
    ),
    Option(
        key="auth_groups_header",
        path="auth.groups_header",
        default="",
        group=_G_AUTH,
        metavar="NAME",
        help="--auth proxy: a header with the person's groups, comma-separated (e.g. "
        "X-Forwarded-Groups)",
    ),
    Option(
        key="trusted_proxy",
        path="auth.trusted_proxies",
        default=(),
        many=True,
        parse=_cidr,
        metavar="CIDR",
        group=_G_AUTH,
        help="--auth proxy: an address or CIDR of the proxy whose identity header is "
        "trusted (repeatable)",
    ),
    Option(
        key="oidc_issuer",
        path="auth.oidc_issuer",
        default="",
        parse=_url,
        metavar="URL",
        group=_G_AUTH,
        help="--auth oidc: the OpenID provider's issuer URL",
    ),
    Option(
        key="oidc_client_id",
        path="auth.oidc_client_id",
        default="",
        metavar="ID",
        group=_G_AUTH,
        help="--auth oidc: the client id registered with the provider",
    ),
    Option(
        key="oidc_client_secret",
        path="auth.oidc_client_secret",
        default="",
        secret=True,
        metavar="SECRET",
        group=_G_AUTH,
        help="--auth oidc: the client secret (empty: a public client, PKCE only)",
    ),
    Option(
        key="oidc_client_secret_file",
        path="",
        default="",
        metavar="FILE",
        group=_G_AUTH,
        help="--auth oidc: a file holding the client secret",
    ),
    Option(
        key="oidc_redirect_url",
        path="auth.oidc_redirect_url",
        default="",
        parse=_url,
        metavar="URL",
        group=_G_AUTH,
        help="--auth oidc: the callback URL registered with the provider, ending in "
        "/auth/callback (default: from the request's Host)",
    ),
    Option(
        key="oidc_scopes",
        path="auth.oidc_scopes",
        default="openid email profile",
        metavar="SCOPES",
        group=_G_AUTH,
        help="--auth oidc: scopes to ask for",
    ),
    Option(
        key="oidc_group_claim",
        path="auth.oidc_group_claim",
        default="groups",
        metavar="CLAIM",
        group=_G_AUTH,
        help="--auth oidc: the ID token claim listing groups",
    ),
    Option(
        key="cookie_secret",
        path="auth.cookie_secret",
        default="",
        secret=True,
        metavar="SECRET",
        group=_G_AUTH,
        help="--auth oidc: signs the sign-in cookie (default: random, so a restart signs "
        "everyone out)",
    ),
    Option(
        key="admin_token",
        path="auth.admin_token",
        default="",
        secret=True,
        group=_G_AUTH,
        metavar="TOKEN",
        help="bearer token that authorizes ReloadBase",
    ),
    Option(
        key="database",
        path="saved.database",
        default="",
        parse=_database,
        secret=True,
        metavar="URL",
        group=_G_SAVED,
        shown_default="sqlite:///<your data folder>/connectrpc-catalog/saved.db",
        help="where saved requests live: sqlite:///PATH, or postgresql://USER@HOST/DB for a "
        "team (migrations run at start-up)",
    ),
    Option(
        key="secret_key",
        path="saved.secret_key",
        default="",
        secret=True,
        metavar="KEY",
        group=_G_SAVED,
        help="encrypts saved secrets (variables, auth helpers, client keys): a Fernet key "
        "or a passphrase of 16+ characters; without it secrets are not stored",
    ),
    Option(
        key="secret_key_file",
        path="",
        default="",
        metavar="FILE",
        group=_G_SAVED,
        help="a file holding the --secret-key",
    ),
    Option(
        key="max_saved_bytes_per_identity",
        path="saved.max_saved_bytes_per_identity",
        default=64 << 20,
        parse=_positive,
        metavar="N",
        group=_G_SAVED,
        shown_default="67108864, 64 MiB",
        help="bytes of saved requests one identity may have written, and one collection "
        "may hold (which bounds a GetCollection answer); past it a save is "
        "resource_exhausted",
    ),
    Option(
        key="max_run_seconds",
        path="saved.max_run_seconds",
        default=300.0,
        parse=parse_duration,
        metavar="DURATION",
        group=_G_SAVED,
        shown_default="5m",
        help="longest one RunRequests may take as a whole; the requests not run by then "
        "are reported as deadline_exceeded",
    ),
    Option(
        key="proto_root",
        path="policy.proto_roots",
        default=(),
        many=True,
        parse=_folder,
        metavar="DIR",
        group=_G_POLICY,
        help="a folder of this machine that loads may read (repeatable; symlinks and '..' "
        "are resolved first); default: every folder on loopback, none otherwise",
    ),
    Option(
        key="allow_target",
        path="policy.allow_targets",
        default=(),
        many=True,
        parse=_target_pattern,
        metavar="PATTERN",
        group=_G_POLICY,
        help="hosts calls and reflections may reach: a host glob, IP or CIDR, optionally "
        ":PORT or :LOW-HIGH, e.g. '*.staging.internal:443' (repeatable; the name is "
        "resolved and each address checked); default: any on loopback, none otherwise",
    ),
    Option(
        key="allow_any_target",
        path="policy.allow_any_target",
        default=False,
        switch=True,
        parse=_bool,
        group=_G_POLICY,
        help="let calls reach any host the server can reach",
    ),
    Option(
        key="group_allow_target",
        path="policy.group_targets",
        default=(),
        many=True,
        parse=_pair(_target_pattern),
        metavar="GROUP=PATTERN",
        group=_G_POLICY,
        help="a target pattern only members of GROUP may reach (repeatable)",
    ),
    Option(
        key="group_proto_root",
        path="policy.group_proto_roots",
        default=(),
        many=True,
        parse=_pair(_folder),
        metavar="GROUP=DIR",
        group=_G_POLICY,
        help="a folder only members of GROUP may load from (repeatable)",
    ),
    Option(
        key="metrics",
        path="ops.metrics",
        default=True,
        switch=True,
        parse=_bool,
        group=_G_OPS,
        help="serve Prometheus metrics at /metrics (--no-metrics to turn off)",
    ),
    Option(
        key="audit_log",
        path="ops.audit_log",
        default="",
        metavar="FILE",
        group=_G_OPS,
        help="append an audit log (JSON lines) to FILE, or '-' for stdout",
    ),
    Option(
        key="import_path",
        path="import_paths",
        default=(),
        many=True,
        parse=_folder,
        metavar="DIR",
        group=_G_OPS,
        help="a folder searched for imports that a load's own files do not hold, like "
        "protoc -I (repeatable; e.g. a checkout of googleapis)",
    ),
    Option(
        key="git_base_url",
        path="git_base_url",
        default="",
        group=_G_OPS,
        help="replaces https:// for short-form Git repositories",
    ),
    Option(
        key="buf",
        path="buf",
        default="",
        group=_G_OPS,
        help="path of the Buf CLI (default: buf on PATH)",
    ),
    Option(
        key="cache_dir",
        path="cache_dir",
        default="",
        group=_G_OPS,
        help="where Git checkouts are kept (default: a temp folder)",
    ),
)
"""Every setting, once: --help, the environment, the config file and the README's
Options table all come from (or are checked against) this table."""

_BY_KEY = {o.key: o for o in OPTIONS}


def _help(option: Option) -> str:
    if option.many or (option.switch and option.default is False):
        return option.help
    if option.secret or option.default in ("", ()):
        return option.help
    shown = option.shown_default or str(option.default)
    return f"{option.help} (default {shown})"


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (values are parsed and defaults applied in `load_settings`)."""
    p = argparse.ArgumentParser(
        prog="connectrpc-catalog",
        description="A proto-native API explorer for Connect, gRPC and gRPC-Web services.",
        epilog="Every flag can also be set with an environment variable "
        "CONNECTRPC_CATALOG_<FLAG> (e.g. CONNECTRPC_CATALOG_PORT=9090; lists comma-separated) "
        "or in --config.",
    )
    p.add_argument(
        "target",
        nargs="?",
        help="a server to explore: reflected at start-up and made the default endpoint "
        "(e.g. localhost:50051 or https://api.example.com)",
    )
    p.add_argument("--config", help="TOML file with settings and start-up sources")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in OPTIONS:
        group = groups.get(option.group)
        if group is None:
            group = groups[option.group] = p.add_argument_group(option.group)
        if option.switch:
            action: Any = argparse.BooleanOptionalAction if option.default else "store_true"
            group.add_argument(
                option.flag_name, dest=option.key, action=action, default=None, help=_help(option)
            )
        else:
            group.add_argument(
                option.flag_name,
                dest=option.key,
                action="append" if option.many else "store",
                metavar=option.metavar,
                help=_help(option),
            )
    src = p.add_argument_group("start-up sources (repeatable; shared by every session)")
    for kind in _SOURCE_FLAGS.values():
        src.add_argument(kind.flag, action="append", metavar=kind.metavar, help=kind.help)
    tls = src.add_mutually_exclusive_group()
    tls.add_argument("--plaintext", action="store_true", default=None, help="no TLS to targets")
    tls.add_argument("--tls", action="store_true", default=None, help="TLS to targets")
    src.add_argument("--server-name", help="TLS server name (SNI) for targets")
    src.add_argument(
        "--target-for",
        action="append",
        metavar="NAME=ENDPOINT",
        help="default endpoint of a service or package; prefix the URL with connect+, grpc+ "
        "or grpc-web+ to pick the transport (default gRPC)",
    )
    src.add_argument(
        "--keep-going",
        action="store_true",
        default=None,
        help="log start-up sources that fail and start without them",
    )
    return p


def load_settings(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Parse flags, read the environment and the config file; raise ConfigError if unusable."""
    parser = build_parser()
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    config_path = args.config or env.get(ENV_PREFIX + "CONFIG")
    file = _read_config(Path(config_path)) if config_path else {}

    def pick(name: str, default: Any, convert: Any = str) -> Any:
        value = getattr(args, name, None)
        if value is not None:
            return value
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None:
            raw = file.get(name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise ConfigError(f"{name}: {exc}") from None

    def many(name: str) -> list[str]:
        from_file = file.get(name, [])
        if isinstance(from_file, str):
            from_file = [from_file]
        from_env = [v for v in env.get(ENV_PREFIX + name.upper(), "").split(",") if v]
        return [*map(str, from_file), *from_env, *(getattr(args, name, None) or [])]

    values = {option.key: _value(option, args, env, file) for option in OPTIONS}
    plaintext = pick("plaintext", None, _bool)
    tls = pick("tls", None, _bool)
    use_tls = True if tls else (False if plaintext else None)
    server_name = pick("server_name", "")
    target = pick("target", "")
    sources: list[StartupSource] = []
    extra_targets: list[str] = []
    if target:
        sources.append(
            StartupSource(
                kind="reflection_endpoint",
                value=_strip_scheme(target),
                use_tls=_url_tls(target, use_tls),
                server_name=server_name,
                default_target=_target(target, use_tls, server_name),
                label="TARGET",
            )
        )
    for dest, kind in _SOURCE_FLAGS.items():
        for value in many(dest):
            sources.append(
                StartupSource(kind=kind.name, value=value, use_tls=use_tls, server_name=server_name)
            )
    targets = {}
    file_targets = file.get("targets", {})
    if not isinstance(file_targets, dict):
        raise ConfigError("targets: expected a table of NAME = ENDPOINT")
    pairs = [f"{k}={v}" for k, v in file_targets.items()] + many("target_for")
    for pair in pairs:
        name, sep, endpoint = pair.partition("=")
        if not sep or not name.strip() or not endpoint.strip():
            raise ConfigError(f"--target-for {pair!r}: expected NAME=ENDPOINT")
        targets[name.strip().lstrip(".")] = _target(endpoint, use_tls, server_name)
    del extra_targets
    values["auth_token"] = values["auth_token"] or _secret_file(
        _BY_KEY["auth_token_file"], values["auth_token_file"]
    )
    values["oidc_client_secret"] = values["oidc_client_secret"] or _secret_file(
        _BY_KEY["oidc_client_secret_file"], values["oidc_client_secret_file"]
    )
    values["secret_key"] = values["secret_key"] or _secret_file(
        _BY_KEY["secret_key_file"], values["secret_key_file"]
    )
    explicit = _given(_BY_KEY["auth"], args, env, file)
    if not explicit and values["auth_token"]:
        values["auth"] = "token"
    tree: dict[str, Any] = {}
    for option in OPTIONS:
        if option.path:
            _put(tree, option.path, values[option.key])
    load = tree["limits"].pop("load")
    settings = Settings(
        server=ServerSettings(**tree["server"]),
        sessions=SessionSettings(**tree["sessions"]),
        limits=LimitSettings(**tree["limits"], load=replace(Limits(), **load)),
        auth=AuthSettings(**tree["auth"], explicit=explicit),
        policy=PolicySettings(**tree["policy"]),
        ops=OpsSettings(**tree["ops"]),
        saved=SavedSettings(**tree["saved"]),
        base=BaseSpec(
            sources=tuple(sources), targets=targets, keep_going=pick("keep_going", False, _bool)
        ),
        git_base_url=tree["git_base_url"],
        buf=tree["buf"],
        cache_dir=tree["cache_dir"],
        import_paths=tuple(tree["import_paths"]),
    )
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """The rules that tie settings together; ConfigError naming the settings involved."""
    auth = settings.auth
    if auth.mode == "token" and not auth.token:
        raise ConfigError(
            "--auth token needs the token: --auth-token TOKEN, --auth-token-file FILE or "
            "CONNECTRPC_CATALOG_AUTH_TOKEN"
        )
    if auth.token and auth.mode != "token":
        raise ConfigError(f"--auth-token is set but --auth is {auth.mode}: drop one of them")
    if auth.mode == "token" and len(auth.token) < 16:
        raise ConfigError("--auth-token is too short: use at least 16 characters")
    if auth.mode == "proxy" and not auth.trusted_proxies:
        raise ConfigError(
            "--auth proxy needs --trusted-proxy CIDR: the addresses of the proxy whose "
            f"{auth.header} header is trusted"
        )
    if auth.mode == "proxy" and not auth.header.strip():
        raise ConfigError("--auth proxy needs --auth-header NAME")
    if auth.mode == "oidc":
        missing = [
            flag
            for flag, value in (
                ("--oidc-issuer", auth.oidc_issuer),
                ("--oidc-client-id", auth.oidc_client_id),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"--auth oidc needs {' and '.join(missing)}")
        if auth.oidc_issuer.startswith("http://") and not _loopback_url(auth.oidc_issuer):
            raise ConfigError("--oidc-issuer must be an https:// URL (http:// only on loopback)")
    if not settings.server.loopback and auth.mode == "none" and not auth.explicit:
        raise ConfigError(
            f"--host {settings.server.host} is a network address, so sign-in is required: "
            "start with --auth token (with --auth-token or --auth-token-file), --auth proxy "
            "(with --trusted-proxy), or --auth oidc (with --oidc-issuer and --oidc-client-id); "
            "--auth none runs it open to anyone who can reach it"
        )
    if settings.server.workers > 1 and not settings.sessions.store:
        raise ConfigError(
            f"--workers {settings.server.workers} needs --session-store redis://HOST:PORT/DB: "
            "sessions in memory live in one process, so another worker would not know them"
        )
    if settings.saved.secret_key:
        from .saved.secrets import key_from

        try:
            key_from(settings.saved.secret_key)
        except ValueError as exc:
            raise ConfigError(f"--secret-key: {exc}") from None
    audit = settings.ops.audit_log
    if audit and audit != "-":
        parent = Path(audit).expanduser().parent
        if not parent.is_dir():
            raise ConfigError(f"--audit-log {audit!r}: the folder {str(parent)!r} does not exist")


def _loopback_url(url: str) -> bool:
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _given(
    option: Option, args: argparse.Namespace, env: Mapping[str, str], file: Mapping[str, Any]
) -> bool:
    return getattr(args, option.key, None) is not None or option.env in env or option.key in file


def _value(
    option: Option, args: argparse.Namespace, env: Mapping[str, str], file: Mapping[str, Any]
) -> Any:
    """The option's value: flag, else environment, else config file, else default (lists
    from the file, the environment and the flags add up)."""
    flag = getattr(args, option.key, None)
    if option.many:
        from_file = file.get(option.key, [])
        raw: list[tuple[str, Any]] = [
            (f"config key {option.key}", v)
            for v in ([from_file] if isinstance(from_file, str) else from_file)
        ]
        raw += [(option.env, v) for v in env.get(option.env, "").split(",") if v.strip()]
        raw += [(option.flag_name, v) for v in flag or ()]
        return tuple(_convert(option, where, v) for where, v in raw)
    if flag is not None:
        if option.switch:
            return bool(flag)
        return _convert(option, option.flag_name, flag)
    if option.env in env:
        return _convert(option, option.env, env[option.env])
    if option.key in file:
        return _convert(option, f"config key {option.key}", file[option.key])
    return option.default


def _convert(option: Option, where: str, raw: Any) -> Any:
    try:
        if isinstance(raw, bool) and option.parse is not _bool:
            raise ValueError(f"expected a value, got {raw!r}")
        parse: Callable[[Any], Any] = option.parse
        return parse(raw if isinstance(raw, bool) else str(raw))
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        text = "a value that is not accepted" if option.secret else str(exc)
        named = (
            option.flag_name if where == option.flag_name else f"{option.flag_name} (from {where})"
        )
        raise ConfigError(f"{named}: {text} [setting {option.key}]") from None


def _secret_file(option: Option, path: str) -> str:
    if not path:
        return ""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{option.flag_name} {path!r}: cannot read it ({exc})") from None
    if not text:
        raise ConfigError(f"{option.flag_name} {path!r}: the file is empty")
    return text


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = tree
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = value


def _target(text: str, use_tls: bool | None, server_name: str) -> catalog_pb.Target:
    try:
        return parse_target(text, use_tls=use_tls, server_name=server_name)
    except ValueError as exc:
        raise ConfigError(f"endpoint {text!r}: {exc}") from None


def _strip_scheme(target: str) -> str:
    for prefix in ("https://", "http://"):
        if target.startswith(prefix):
            return target[len(prefix) :].rstrip("/")
    return target


def _url_tls(target: str, use_tls: bool | None) -> bool | None:
    if target.startswith("https://"):
        return True
    if target.startswith("http://"):
        return False
    return use_tls


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    normalized: dict[str, Any] = {k.replace("-", "_"): v for k, v in data.items()}
    known = {o.key for o in OPTIONS} | {
        "target",
        "plaintext",
        "tls",
        "server_name",
        "keep_going",
        "targets",
        "target_for",
        *_SOURCE_FLAGS,
    }
    unknown = sorted(set(normalized) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return normalized
