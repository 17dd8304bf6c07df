"""`.proto` sources given as import path → content: the `protoFiles` source, and the one
way any source compiles `.proto` files (folders read from disk end here too).

Every name is checked before anything else happens (see `core.name_problem`); the
files then go to the protoc workers (`compiler`), and the result is memoized by the
content of the files, so the same files loaded again never compile twice; a load with
some files changed compiles only those and their importers (`incremental`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from ..descriptors import Schema, SchemaError
from ..identity import session_tag
from .compiler import Compiled, CompileError, CompilerBusy
from .core import (
    Context,
    Given,
    LimitError,
    Limits,
    LoadError,
    SourceError,
    check_names,
    check_size,
    content_key,
)
from .imports import check_import_paths, complete, extra_roots, notes, place_uploads
from .incremental import Plan

__all__ = ["compile_files", "load"]


async def load(ctx: Context, given: Given) -> Schema:
    """The `protoFiles` of a request: import path → .proto text, all of them compiled."""
    files = given.value
    if not isinstance(files, Mapping):
        raise SourceError("protoFiles must map file names to contents", field="protoFiles")
    limits = ctx.limits
    raw = {name: text.encode() for name, text in files.items()}
    if not raw:
        raise SourceError("no .proto files were given")
    check_size(limits, raw)
    check_names(limits, raw)
    await asyncio.to_thread(check_import_paths, given.import_paths, ctx.proto_roots)
    placed, moves = await asyncio.to_thread(place_uploads, limits, raw)
    if moves:
        notes().placed.extend(moves)
    targets = sorted(n for n in placed if n.endswith(".proto"))
    if not targets:
        raise LoadError("none of the given files ends in .proto")
    folders: list[str | Path] = [*given.import_paths, *ctx.import_paths]
    missing = await asyncio.to_thread(_missing, limits, placed, folders)
    if missing:
        name, importer = sorted(missing.items())[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise LoadError(
            f"{importer} imports {name!r}{more}, which is not among the uploaded files; "
            f"upload it too (named {name}, or under its own name with its package line), "
            "or give the folder that holds it as an import path (importPaths)"
        )
    return await compile_files(ctx, placed, targets=targets)


async def compile_files(
    ctx: Context,
    files: Mapping[str, bytes],
    targets: list[str] | None = None,
    *,
    label: str | None = None,
) -> Schema:
    """Compile `targets` (default: every .proto among the files) given all they may import.

    `label` names the folder the files come from in messages (default: they were uploaded).
    """
    limits = ctx.limits
    if not files:
        raise SourceError("no .proto files were given")
    if len(files) > limits.max_files:
        check_size(limits, files)
    check_names(limits, files, label=label)
    clean = dict(files)
    check_size(limits, clean)
    wanted = sorted(targets or [n for n in clean if n.endswith(".proto")])
    if not wanted:
        raise LoadError("none of the given files ends in .proto")
    if any(t not in clean for t in wanted):
        raise SourceError("a file to compile is not among the files")

    key = await asyncio.to_thread(content_key, clean, wanted)

    async def build() -> Schema:
        compiled = await _compile(ctx, clean, wanted)
        try:
            return await asyncio.to_thread(
                ctx.cache.get, compiled.files, compiled.facts, compiled.bare
            )
        except SchemaError as exc:  # e.g. two files, neither importing the other, define one name
            raise LoadError(f"compiled sources: {exc}") from None

    return await ctx.memo.get("protoc:" + key, build)


async def _compile(ctx: Context, files: dict[str, bytes], targets: list[str]) -> Compiled:
    """The compiled targets and all they import: only the files that changed since files
    of the same names were compiled, and their importers, go to protoc (`incremental`)."""
    memo = ctx.compiled
    plan = await asyncio.to_thread(memo.plan, files, targets)
    result: Compiled | None = None
    if plan.reuse:
        result = await _incremental(ctx, plan, targets)
    if result is None:  # nothing to reuse, or the partial compile could not stand alone
        result = await _run(ctx, files, targets, None)
    await asyncio.to_thread(memo.store, files, plan.digests, result)
    return result


async def _incremental(ctx: Context, plan: Plan, targets: list[str]) -> Compiled | None:
    """The sources compiled against the reused files; None when that fails (a full
    compile then gives the result, or protoc's own error, as if none were reused)."""
    partial = _NOTHING
    if plan.targets:
        given = await asyncio.to_thread(plan.given)
        try:
            partial = await _run(ctx, plan.sources, plan.targets, given)
        except LoadError:
            return None
    return await asyncio.to_thread(ctx.compiled.close_over, targets, partial, plan.reuse)


_NOTHING = Compiled({}, {}, frozenset())


async def _run(
    ctx: Context,
    files: Mapping[str, bytes],
    targets: list[str],
    reuse: Mapping[str, bytes] | None,
) -> Compiled:
    try:
        return await ctx.compiler.compile(files, targets, reuse=reuse, owner=session_tag())
    except CompileError as exc:
        raise LoadError(str(exc)) from None
    except CompilerBusy as exc:
        raise LimitError(
            f"the catalog is busy compiling ({exc}); try again shortly, or raise "
            "--compile-queue (and --compile-workers) on the catalog"
        ) from None


def _missing(limits: Limits, files: dict[str, bytes], folders: list[str | Path]) -> dict[str, str]:
    """Read what the uploads import from the import paths and the shipped roots; the
    imports still missing (blocking: in a thread)."""
    roots = [*((Path(f).expanduser(), "") for f in folders), *extra_roots()]
    return complete(limits, files, roots, "the uploaded files")
