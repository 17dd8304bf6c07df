"""Files on the catalog server's disk: the `protoPath` source (and `--descriptor-set`).

A path names a folder of `.proto` files (compiled together), one `.proto` file
(compiled with the files it imports from its folder), or a descriptor-set file (known
by its suffix, or sniffed). A folder holding `buf.yaml` (or `buf.work.yaml`) is built
with the Buf CLI when it is installed, and compiled as a plain folder otherwise.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from ..descriptors import Schema
from . import buf
from .core import (
    Context,
    Given,
    LoadError,
    SourceError,
    bad_name,
    given_text,
    name_problem,
    redact,
)
from .descriptor_set import SUFFIXES, load_set, looks_like_set
from .disk import read_capped, read_tree
from .imports import check_import_paths, notes, resolve
from .upload import compile_files

__all__ = ["load", "load_path"]

_NOT_A_SCHEMA = "is neither a .proto file nor a descriptor set"


async def load(ctx: Context, given: Given) -> Schema:
    """The `protoPath` source: a folder, a .proto file or a descriptor-set file."""
    return await load_path(ctx, given_text(given, "protoPath"), given=given)


async def load_path(
    ctx: Context, path: str, *, label: str | None = None, given: Given | None = None
) -> Schema:
    """A directory of .proto files, one .proto file, or a descriptor-set file.

    `label` names the path in error messages (default: the path itself).
    """
    if not path.strip():
        raise SourceError("proto_path is empty", field="protoPath")
    limits = ctx.limits
    shown = redact(label or path)
    p = await asyncio.to_thread(Path(path).expanduser)
    kind = await asyncio.to_thread(_kind, p)
    if kind == "missing":
        raise LoadError(f"{shown}: no such file or directory on the catalog server")
    if kind == "dir":
        return await _load_dir(ctx, p, shown, given)
    if kind == "proto":
        problem = name_problem(limits, p.name)
        if problem is not None:
            raise bad_name(shown, p.name, problem)
        data = await asyncio.to_thread(read_capped, limits, p, shown)
        return await _compile_found(ctx, given, p.parent, {p.name: data}, shown)
    if kind == "other":
        raise SourceError(f"{shown} {_NOT_A_SCHEMA}")
    data = await asyncio.to_thread(read_capped, limits, p, shown)
    if kind == "unknown" and not await asyncio.to_thread(looks_like_set, data):
        raise SourceError(
            f"{shown} {_NOT_A_SCHEMA}; give a .proto file (its name ends in .proto), a "
            "folder of them, or a serialized FileDescriptorSet",
        )
    return await load_set(ctx, data, origin=shown)


async def _compile_found(
    ctx: Context, given: Given | None, folder: Path, files: dict[str, bytes], shown: str
) -> Schema:
    """Compile files read below `folder` with every import found for them (see imports)."""
    import_paths = given.import_paths if given else ()
    await asyncio.to_thread(check_import_paths, import_paths, ctx.proto_roots)
    resolved = await asyncio.to_thread(
        resolve,
        ctx.limits,
        folder,
        files,
        sorted(files),
        import_paths=[*import_paths, *ctx.import_paths],
        proto_roots=_bound(ctx, given),
        shown=shown,
    )
    if resolved.root is not None:
        notes().root = str(resolved.root)
    return await compile_files(ctx, resolved.files, targets=resolved.targets, label=shown)


def _bound(ctx: Context, given: Given | None) -> tuple[Path, ...]:
    """Where the search for an import root may look: the caller's folders, else the
    catalog's `--proto-root` ones (none: anywhere, within the level limit)."""
    if given is not None and given.read_roots is not None:
        return tuple(Path(r) for r in given.read_roots) or (Path("/nonexistent"),)
    return ctx.proto_roots


async def _load_dir(ctx: Context, p: Path, shown: str, given: Given | None) -> Schema:
    is_buf = await asyncio.to_thread(buf.is_buf_dir, p)
    if is_buf and await asyncio.to_thread(buf.cli(ctx).locate) is not None:
        return await buf.load_dir(ctx, p, label=shown)
    files = await asyncio.to_thread(read_tree, ctx.limits, p, label=shown)
    if not files:
        raise LoadError(f"{shown}: no .proto files in this directory")
    if not is_buf:
        return await _compile_found(ctx, given, p, files, shown)
    try:
        return await _compile_found(ctx, given, p, files, shown)
    except LoadError as exc:
        raise LoadError(
            f"{exc}\n({shown} is a Buf module, compiled as a plain folder because the "
            "Buf CLI is not installed; install it with `npm install -g @bufbuild/buf`)"
        ) from None


def _kind(p: Path) -> str:
    """dir, proto, set (by its suffix), unknown (a file to sniff), other, or missing."""
    try:
        mode = p.stat().st_mode
    except OSError:
        return "missing"
    if stat.S_ISDIR(mode):
        return "dir"
    if not stat.S_ISREG(mode):
        return "other"
    if p.suffix in SUFFIXES:
        return "set"
    if p.suffix == ".proto":
        return "proto"
    return "unknown"
