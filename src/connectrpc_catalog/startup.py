"""Start-up sources: what the catalog loads before serving, forming the shared base schema.

A `StartupSource` names a kind of the source table (`loading.SOURCES`) and its value;
`load_base` loads each through the same `Loader` as LoadProtos does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .descriptors import MergeConflict, Schema, SchemaError
from .gen.catalog.v1 import catalog_pb
from .loading import SOURCES, Loader
from .problems import RequestError
from .sources.core import Given, LoadError, redact

__all__ = [
    "BaseLoadError",
    "BaseSpec",
    "StartupSource",
    "load_base",
    "parse_target",
]

_log = logging.getLogger(__name__)

_TRANSPORTS = {
    "connect": catalog_pb.Transport.CONNECT,
    "grpc": catalog_pb.Transport.GRPC,
    "grpc-web": catalog_pb.Transport.GRPC_WEB,
    "grpcweb": catalog_pb.Transport.GRPC_WEB,
}


class BaseLoadError(Exception):
    """One or more start-up sources failed to load."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StartupSource:
    """One source loaded at start-up; `default_target` makes it the target of its services.

    `kind` is a start-up kind of `loading.SOURCES` (one with a flag).
    """

    kind: str
    value: str
    use_tls: bool | None = None
    server_name: str = ""
    default_target: catalog_pb.Target | None = None
    label: str = ""
    """How the command line gave it, when not by its flag (the positional `TARGET`)."""

    def describe(self) -> str:
        """How the source is named in messages, e.g. "--reflect localhost:50051".

        Credentials in it (`https://user:token@host/...`) are replaced by `***`.
        """
        row = SOURCES.get(self.kind)
        flag = self.label or (row.flag if row is not None and row.flag else self.kind)
        return f"{flag} {redact(self.value)}"

    def given(self) -> Given:
        """The source as its module takes it; TLS by default for https:// and port 443."""
        use_tls = _tls_default(self.value) if self.use_tls is None else self.use_tls
        return Given(value=self.value, use_tls=use_tls, server_name=self.server_name)


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseSpec:
    """Everything that forms the base: its sources and explicit per-service targets."""

    sources: Sequence[StartupSource] = ()
    targets: dict[str, catalog_pb.Target] = field(default_factory=dict)
    keep_going: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedBase:
    """A freshly loaded base, ready to swap in."""

    schema: Schema
    targets: dict[str, catalog_pb.Target]
    skipped: tuple[str, ...]
    origins: dict[str, str] = field(default_factory=dict)
    """File name → the start-up source that brought it ("--proto ./protos")."""


async def load_base(loader: Loader, spec: BaseSpec, empty: Schema) -> LoadedBase:
    """Load every start-up source into one schema; raise BaseLoadError unless keep_going."""
    parts: list[Schema] = []  # each source's own schema: merges always start from these
    merged: Schema = empty
    targets: dict[str, catalog_pb.Target] = {}
    origins: dict[str, str] = {}
    failures: list[str] = []
    for source in spec.sources:
        try:
            schema = await loader.load(source.kind, source.given())
            together = await asyncio.to_thread(loader.context.cache.merge, [*parts, schema])
        except MergeConflict as exc:
            failures.append(_conflict(exc, origins, source))
            continue
        except (LoadError, SchemaError, RequestError) as exc:  # RequestError: e.g. an empty path
            failures.append(f"{source.describe()}: {redact(str(exc))}")
            continue
        except Exception as exc:  # unexpected: named by its type (its text may hold secrets)
            failures.append(f"{source.describe()}: {type(exc).__name__}")
            continue
        parts.append(schema)
        merged = together
        for name in schema.files:
            origins.setdefault(name, source.describe())
        if source.default_target is not None:
            for name in schema.service_names:
                targets.setdefault(name, source.default_target)
    if failures and not spec.keep_going:
        raise BaseLoadError("\n".join(failures))
    for failure in failures:
        _log.warning("skipped start-up source (--keep-going): %s", failure)
    targets.update(spec.targets)  # explicit --target-for wins over a reflected server
    return LoadedBase(
        schema=merged,
        targets=targets,
        skipped=tuple(failures),
        origins=origins,
    )


def _conflict(exc: MergeConflict, origins: dict[str, str], source: StartupSource) -> str:
    """A start-up conflict in words, with the flags that brought both versions."""
    first = origins.get(exc.first_file, "an earlier source")
    second = source.describe()
    first_flag, second_flag = first.partition(" ")[0], second.partition(" ")[0]
    flags = f"{first_flag} or {second_flag}" if first_flag != second_flag else first_flag
    hint = (
        f"start the catalog with only one of them (drop one {flags}), or point both at the "
        "same version of the file"
    )
    return redact("conflict: " + exc.describe(lambda i: first if i == 0 else second, hint))


def parse_target(
    text: str, *, use_tls: bool | None = None, server_name: str = ""
) -> catalog_pb.Target:
    """A target from `ENDPOINT` or `TRANSPORT+URL` (e.g. `connect+http://host:8080`).

    A bare `host:port` defaults to gRPC; an `http(s)://` URL without a transport to Connect.
    """
    endpoint = text.strip()
    if not endpoint:
        raise ValueError("empty endpoint")
    transport = catalog_pb.Transport.GRPC
    scheme, sep, rest = endpoint.partition("+")
    if sep and scheme.lower() in _TRANSPORTS and "://" in rest:
        transport, endpoint = _TRANSPORTS[scheme.lower()], rest
    elif "://" in endpoint:
        transport = catalog_pb.Transport.CONNECT
    tls = _tls_default(endpoint) if use_tls is None else use_tls
    return catalog_pb.Target(
        endpoint=endpoint, transport=transport, use_tls=tls, server_name=server_name
    )


def _tls_default(endpoint: str) -> bool:
    """TLS for https:// URLs and port 443, plaintext otherwise (like grpcurl without flags)."""
    if endpoint.startswith("https://"):
        return True
    if endpoint.startswith("http://"):
        return False
    try:
        return urlsplit(f"//{endpoint}").port == 443
    except ValueError:
        return False
