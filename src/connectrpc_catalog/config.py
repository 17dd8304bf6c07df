"""Settings from flags, environment variables (CONNECTRPC_CATALOG_<NAME>) and a TOML file.

Precedence: a flag beats the environment, which beats the config file, which beats the
default. List settings (sources, targets, origins) from the file and the flags add up.
"""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .gen.catalog.v1 import catalog_pb
from .loading import SOURCES, Kind
from .startup import BaseSpec, StartupSource, parse_target

__all__ = ["ConfigError", "Settings", "build_parser", "load_settings", "parse_duration"]

ENV_PREFIX = "CONNECTRPC_CATALOG_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

_SOURCE_FLAGS: dict[str, Kind] = {kind.dest: kind for kind in SOURCES.values() if kind.flag}
"""The start-up sources of the source table by flag dest (`buf_module`), which is also
their config-file key and environment suffix (CONNECTRPC_CATALOG_BUF_MODULE)."""


class ConfigError(Exception):
    """Settings that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the command needs to start."""

    host: str = "127.0.0.1"
    port: int = 8080
    session_ttl: float = 3600.0
    log_level: str = "info"
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_sessions: int = 10_000
    max_timeout: float = 300.0
    max_request_bytes: int = 96 * 1024 * 1024
    max_json_depth: int = 100
    max_stream_messages: int = 10_000
    max_streams_per_session: int = 16
    max_loads_per_session: int = 4
    base: BaseSpec = field(default_factory=BaseSpec)
    admin_token: str = ""
    git_base_url: str = ""
    buf: str = ""
    cache_dir: str = ""
    open_browser: bool = False


def parse_duration(text: str) -> float:
    """Seconds from "90s", "30m", "2h", "1.5h", "500ms" or a bare number of seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number with a unit, e.g. 90s, 30m, 2h"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
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


def _origin(text: str) -> str:
    origin = text.strip().rstrip("/")
    if origin == "*":
        return origin
    scheme, sep, rest = origin.partition("://")
    if origin.lower() == "null" or not sep or scheme not in ("http", "https") or not rest:
        raise ConfigError(
            f"--cors-origin {text!r}: expected an origin such as http://localhost:3000 "
            "(the origin 'null' is never allowed)"
        )
    if "/" in rest:
        raise ConfigError(f"--cors-origin {text!r}: an origin has no path")
    return origin


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (defaults are resolved later, see `load_settings`)."""
    p = argparse.ArgumentParser(
        prog="connectrpc-catalog",
        description="A proto-native API explorer for Connect, gRPC and gRPC-Web services.",
        epilog="Every flag can also be set with an environment variable "
        "CONNECTRPC_CATALOG_<FLAG> (e.g. CONNECTRPC_CATALOG_PORT=9090) or in --config.",
    )
    p.add_argument(
        "target",
        nargs="?",
        help="a server to explore: reflected at start-up and made the default endpoint "
        "(e.g. localhost:50051 or https://api.example.com)",
    )
    p.add_argument("--config", help="TOML file with settings and start-up sources")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, help="port to listen on, 0 = any (default 8080)")
    p.add_argument(
        "--session-ttl",
        type=parse_duration,
        help="idle time after which a session expires, e.g. 90s, 30m, 2h (default 1h)",
    )
    p.add_argument("--log-level", type=str.lower, choices=["debug", "info", "warning", "error"])
    sec = p.add_argument_group("security and limits (see the README's Security section)")
    sec.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="a browser origin besides the catalog's own page that may call the API, e.g. "
        "http://localhost:3000 (repeatable; '*' for any; default: none, same-origin only)",
    )
    sec.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a host name the catalog answers to besides localhost, IP addresses and --host "
        "(repeatable; '*' for any); other Host headers are refused (DNS rebinding)",
    )
    sec.add_argument(
        "--max-sessions", type=_positive, metavar="N", help="live sessions at most (10000)"
    )
    sec.add_argument(
        "--max-timeout",
        type=parse_duration,
        metavar="DURATION",
        help="longest deadline a call may ask for, e.g. 5m (default 5m)",
    )
    sec.add_argument(
        "--max-request-bytes",
        type=_positive,
        metavar="N",
        help="largest request body in bytes (default 100663296, 96 MiB)",
    )
    sec.add_argument(
        "--max-json-depth",
        type=_positive,
        metavar="N",
        help="deepest nesting of JSON in a request (default 100)",
    )
    sec.add_argument(
        "--max-stream-messages",
        type=_positive,
        metavar="N",
        help="request messages one stream may send (default 10000)",
    )
    sec.add_argument(
        "--max-streams-per-session",
        type=_positive,
        metavar="N",
        help="InvokeStream calls one session may have open at once (default 16)",
    )
    sec.add_argument(
        "--max-loads-per-session",
        type=_positive,
        metavar="N",
        help="LoadProtos calls one session may have in progress at once (default 4)",
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
    p.add_argument("--admin-token", help="bearer token that authorizes ReloadBase")
    p.add_argument("--git-base-url", help="replaces https:// for short-form Git repositories")
    p.add_argument("--buf", help="path of the Buf CLI (default: buf on PATH)")
    p.add_argument("--cache-dir", help="where Git checkouts are kept (default: a temp folder)")
    p.add_argument("--open", action="store_true", default=None, help="open the UI in a browser")
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

    plaintext = pick("plaintext", None, _bool)
    tls = pick("tls", None, _bool)
    use_tls = True if tls else (False if plaintext else None)
    server_name = pick("server_name", "")
    target = pick("target", "")
    sources: list[StartupSource] = []
    if target:
        sources.append(
            StartupSource(
                kind="reflection_endpoint",
                value=_strip_scheme(target),
                use_tls=_url_tls(target, use_tls),
                server_name=server_name,
                default_target=_target(target, use_tls, server_name),
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
    origins = tuple(_origin(o) for o in many("cors_origin"))
    return Settings(
        host=pick("host", "127.0.0.1"),
        port=pick("port", 8080, _port),
        session_ttl=pick("session_ttl", 3600.0, parse_duration),
        log_level=str(pick("log_level", "info")).lower(),
        cors_origins=origins,
        allowed_hosts=tuple(h.strip() for h in many("allowed_host") if h.strip()),
        max_sessions=pick("max_sessions", 10_000, _positive),
        max_timeout=pick("max_timeout", 300.0, parse_duration),
        max_request_bytes=pick("max_request_bytes", 96 * 1024 * 1024, _positive),
        max_json_depth=pick("max_json_depth", 100, _positive),
        max_stream_messages=pick("max_stream_messages", 10_000, _positive),
        max_streams_per_session=pick("max_streams_per_session", 16, _positive),
        max_loads_per_session=pick("max_loads_per_session", 4, _positive),
        base=BaseSpec(
            sources=tuple(sources), targets=targets, keep_going=pick("keep_going", False, _bool)
        ),
        admin_token=pick("admin_token", ""),
        git_base_url=pick("git_base_url", ""),
        buf=pick("buf", ""),
        cache_dir=pick("cache_dir", ""),
        open_browser=pick("open", False, _bool),
    )


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


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    normalized: dict[str, Any] = {k.replace("-", "_"): v for k, v in data.items()}
    known = {f for f in Settings.__dataclass_fields__} | {
        "target",
        "plaintext",
        "tls",
        "server_name",
        "keep_going",
        "targets",
        "target_for",
        "cors_origin",
        "allowed_host",
        "open",
        *_SOURCE_FLAGS,
    }
    unknown = sorted(set(normalized) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return normalized
