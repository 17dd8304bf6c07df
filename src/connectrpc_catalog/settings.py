"""The one typed settings tree: every setting of the catalog, frozen, by section.

config.py builds it from flags, CONNECTRPC_CATALOG_* environment variables and the TOML
file (see `OPTIONS` there: one row per setting, which is also what --help and the
README list); the app hands each section to the components that use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .sources.core import Limits
from .startup import BaseSpec

__all__ = [
    "AuthSettings",
    "LimitSettings",
    "OpsSettings",
    "PolicySettings",
    "SavedSettings",
    "ServerSettings",
    "SessionSettings",
    "Settings",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """Where the catalog listens and whom it answers."""

    host: str = "127.0.0.1"
    port: int = 8080
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    base_path: str = ""
    """The path prefix browsers reach the catalog at behind a proxy (e.g. /catalog), or ""."""
    open_browser: bool = False
    demo: bool = False
    """Start the demo API (connectrpc_catalog.demo) in this process and load it as the base."""
    log_level: str = "info"
    log_format: str = "text"
    """text, or json (one object per line)."""
    loop: str = "auto"
    """auto (uvloop when installed) or asyncio."""
    http_server: str = "auto"
    """auto (pyvoy when importable, else hypercorn), pyvoy or hypercorn (serving/)."""
    workers: int = 0
    """Server processes on the one port; 0: the cores with a shared session store, else 1."""

    @property
    def loopback(self) -> bool:
        """Whether the catalog listens on a loopback address only."""
        import ipaddress

        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return self.host == "localhost"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    """How sessions live."""

    ttl: float = 3600.0
    cleanup_interval: float = 300.0
    max_sessions: int = 10_000
    per_identity: int = 0
    """Live sessions one identity may hold (0: no limit but max_sessions)."""
    store: str = ""
    """Where sessions live: "" = this process's memory, else a redis:// or rediss:// URL
    (shared by every process and replica that names it; see session_store.py)."""
    store_prefix: str = "catalog"
    """Prefix of the Redis keys and pub/sub channels (`--session-store-prefix`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    """What one request, call or load may take."""

    max_request_bytes: int = 96 * 1024 * 1024
    max_body_seconds: float = 60.0
    """Longest a request body may take to arrive whole (`--max-body-seconds`)."""
    max_json_depth: int = 100
    max_timeout: float = 300.0
    max_stream_messages: int = 10_000
    max_streams_per_session: int = 16
    max_loads_per_session: int = 4
    schema_cache_entries: int = 64
    max_schema_bytes: int = 8 << 20
    calls_per_minute: int = 0
    """Upstream calls one identity may start per minute (0: no limit)."""
    streams_per_identity: int = 0
    """Upstream streams one identity may have open at once (0: no limit)."""
    stream_lease: float = 30.0
    """With a shared session store: seconds a stream counts for `streams_per_identity`
    after its process last renewed it (every third of it); a dead process's streams stop
    counting after this."""
    compile_workers: int = 0
    """protoc worker processes compiling at once (0: one per core)."""
    compile_queue: int = 256
    """Compiles that may wait for a worker; past it a load is refused (resource_exhausted)."""
    compile_worker_max_rss: int = 512 << 20
    """A worker whose memory grew past this many bytes during a job is replaced after it."""
    compiled_cache_bytes: int = 256 << 20
    """Compiled files kept for incremental loads (bytes of FileDescriptorProtos)."""
    load: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthSettings:
    """Sign-in: none, token, proxy or oidc."""

    mode: str = "none"
    explicit: bool = False
    """Whether the mode was chosen (--auth none on a network address is a choice)."""
    token: str = ""
    header: str = "X-Forwarded-Email"
    groups_header: str = ""
    trusted_proxies: tuple[str, ...] = ()
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_redirect_url: str = ""
    """The callback URL registered with the provider (default: from the request's Host)."""
    oidc_scopes: str = "openid email profile"
    oidc_group_claim: str = "groups"
    cookie_secret: str = ""
    """Signs the sign-in cookie (default: random per process, so a restart signs out)."""
    admin_token: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySettings:
    """What a load may read and a call may reach (see policy.py)."""

    proto_roots: tuple[str, ...] = ()
    allow_targets: tuple[str, ...] = ()
    allow_any_target: bool = False
    group_targets: tuple[tuple[str, str], ...] = ()
    group_proto_roots: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OpsSettings:
    """Health, metrics and the audit log."""

    metrics: bool = True
    audit_log: str = ""
    """A file to append JSON lines to, "-" for stdout, "" for none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedSettings:
    """Saved requests (saved/): where they are stored and the key their secrets are
    sealed with."""

    database: str = ""
    """sqlite:///PATH or postgresql://...; "" for saved.db in the user's data folder."""
    secret_key: str = ""
    """A Fernet key or a passphrase of 16+ characters; "" refuses to store secrets."""
    max_saved_bytes_per_identity: int = 64 << 20
    """Characters of saved requests one identity may have written, and one collection
    may hold (`--max-saved-bytes-per-identity`)."""
    max_run_seconds: float = 300.0
    """The longest one RunRequests may take as a whole (`--max-run-seconds`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the command needs to start."""

    server: ServerSettings = field(default_factory=ServerSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    saved: SavedSettings = field(default_factory=SavedSettings)
    base: BaseSpec = field(default_factory=BaseSpec)
    git_base_url: str = ""
    buf: str = ""
    cache_dir: str = ""
    import_paths: tuple[str, ...] = ()
    """Folders searched for imports that a load's own files do not hold (`--import-path`)."""

    # Short names for the settings read most (the command and the tests use them).

    @property
    def host(self) -> str:
        """server.host"""
        return self.server.host

    @property
    def port(self) -> int:
        """server.port"""
        return self.server.port

    @property
    def log_level(self) -> str:
        """server.log_level"""
        return self.server.log_level

    @property
    def open_browser(self) -> bool:
        """server.open_browser"""
        return self.server.open_browser

    @property
    def session_ttl(self) -> float:
        """sessions.ttl"""
        return self.sessions.ttl
