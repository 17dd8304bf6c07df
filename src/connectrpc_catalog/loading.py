"""The one table of schema sources: kind → the module that loads it, and how the API,
start-up, the config file and `--help` name it.

Each module under `sources/` is a `Source` (an `async def load(ctx, given)`); this table
is the only place that lists them. `LoadProtos` (api/service.py) dispatches on its
`source` oneof field through it, start-up (startup.py) on `StartupSource.kind`, and
config.py builds the start-up flags, their help and their config-file keys from it.
Adding a source: a module under `sources/` and a row here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .descriptors import Schema
from .problems import RequestError
from .sources import buf, descriptor_set, files, git, imports, reflection, upload
from .sources.core import Context, Given, Source, SourceError
from .sources.imports import LoadNotes

__all__ = ["SOURCES", "SOURCE_FIELDS", "Kind", "Loader"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """One kind of source: its name, the module that loads it, and how it is asked for."""

    name: str
    """`LoadProtosRequest`'s oneof field, or a start-up-only kind (`descriptor_set_path`)."""
    source: Source
    field: str = ""
    """The field's JSON name in `LoadProtosRequest`; empty when the API does not offer it."""
    flag: str = ""
    """The start-up flag (repeatable); empty when it is no start-up source."""
    metavar: str = ""
    help: str = ""
    """The flag's `--help` text."""

    @property
    def dest(self) -> str:
        """The flag's name in settings, the config file and the environment: `buf_module`."""
        return self.flag.removeprefix("--").replace("-", "_")


SOURCES: Mapping[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="proto_path",
            source=files,
            field="protoPath",
            flag="--proto",
            metavar="PATH",
            help=".proto folder or file, or a descriptor-set file, on this machine",
        ),
        Kind(
            name="descriptor_set_path",
            source=files,
            flag="--descriptor-set",
            metavar="FILE",
            help="a serialized FileDescriptorSet file (e.g. from buf build -o x.binpb or "
            "protoc --descriptor_set_out)",
        ),
        Kind(name="proto_files", source=upload, field="protoFiles"),
        Kind(name="descriptor_set", source=descriptor_set, field="descriptorSet"),
        Kind(
            name="buf_module",
            source=buf,
            field="bufModule",
            flag="--buf-module",
            metavar="REF",
            help="a Buf module or workspace folder, or a BSR reference like "
            "buf.build/owner/module[:ref] (needs the Buf CLI, see --buf)",
        ),
        Kind(
            name="proto_repo",
            source=git,
            field="protoRepo",
            flag="--proto-repo",
            metavar="REF",
            help="a Git repository: host/owner/repo[//sub/dir][@ref] or a clone URL "
            "(needs git; see --git-base-url)",
        ),
        Kind(
            name="reflection_endpoint",
            source=reflection,
            field="reflectionEndpoint",
            flag="--reflect",
            metavar="ENDPOINT",
            help="a server to read schemas from by gRPC server reflection, e.g. "
            "localhost:50051 (TLS per --tls/--plaintext, else for https:// and port 443)",
        ),
    )
}
"""Every kind of source, in the order the API names them and `--help` lists them."""

_FIELDS = [kind.field for kind in SOURCES.values() if kind.field]
SOURCE_FIELDS = ", ".join(_FIELDS[:-1]) + " or " + _FIELDS[-1]
"""The API's source fields for messages: "protoPath, protoFiles, … or reflectionEndpoint"."""


class Loader:
    """Loads a source of any kind through the table, in one shared `Context`."""

    def __init__(self, context: Context, kinds: Mapping[str, Kind] = SOURCES) -> None:
        self.context = context
        self.kinds = kinds

    async def load(self, kind: str, given: Given) -> Schema:
        """The schema of a source: LoadError when it fails, RequestError when refused.

        A `RequestError` that names no field is given the kind's (`protoRepo`, …).
        """
        row = self.kinds.get(kind)
        if row is None:
            raise SourceError(f"unknown source {kind}: set one of {SOURCE_FIELDS}")
        try:
            return await row.source.load(self.context, given)
        except RequestError as exc:
            exc.field = exc.field or row.field
            raise

    async def load_noted(self, kind: str, given: Given) -> tuple[Schema, LoadNotes]:
        """Like `load`, with what the load did for the user (the import root it found,
        the uploads it placed)."""
        collected, token = imports.collect()
        try:
            return await self.load(kind, given), collected
        finally:
            imports.reset(token)

    async def close(self) -> None:
        """Remove the context's temporary work folder."""
        await self.context.close()
