"""Finding what `.proto` files import, so that imports "just work".

Where protoc would say `File not found`, the catalog looks first: in the folder given,
the import paths given (`importPaths`, `--import-path`), and the files it ships
(`buf/validate/validate.proto`, the googleapis protos of `googleapis-common-protos`);
then it walks up the parents of the folder given (bounded, and never out of the
`--proto-root` folders when there are any), trying first the root that the files'
`package` lines suggest, and uses the first root under which every import resolves.
Uploaded files are placed at the import path that names them (by file name and
`package`). When nothing works, the error names the missing import and the nearest
folder that has it.

The root found above a folder is kept (`_ROOTS`, by the folder, its stat key, the
import paths, the `--proto-root` folders and the names of the files), and tried first
on the next load of the folder: taken when every import still resolves under it (it is
checked again, by reading the files, every time), otherwise searched for again.

Everything here reads the disk and blocks: call it in a thread. Reads are bounded by
`Limits` (files, bytes, walk entries).
"""

from __future__ import annotations

import contextvars
import functools
import importlib.util
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..filefacts import import_names
from .core import LimitError, Limits, LoadError, SourceError, name_problem, too_large
from .disk import FileTooLarge, read_at_most

__all__ = [
    "VENDOR_DIR",
    "LoadNotes",
    "Resolved",
    "check_import_paths",
    "extra_roots",
    "notes",
    "place_uploads",
    "resolve",
]

VENDOR_DIR = Path(__file__).parent / "vendor"
"""`.proto` files the catalog ships for imports that users rarely have at hand."""

_PACKAGE = re.compile(rb"^\s*package\s+([A-Za-z0-9_.]+)\s*;", re.MULTILINE)
_MAX_LEVELS = 16
"""How many parents of the folder given are tried as the import root."""
_SEARCH_ENTRIES = 20_000
"""Directory entries looked at when searching for the folder that has a missing import."""
_MAX_ROOTS_KEPT = 256
_ROOTS: OrderedDict[Hashable, Path] = OrderedDict()
"""The import root last found for a folder (see the module's text)."""
_ROOTS_LOCK = threading.Lock()


@dataclass(slots=True)
class LoadNotes:
    """What a load did for the user, reported in `LoadProtosResponse`."""

    root: str = ""
    """The import root found above the folder given (empty: the folder given)."""
    placed: list[str] = field(default_factory=list)
    """Uploaded files placed at an import path: "geo.proto -> acme/geo/v1/geo.proto"."""


_NOTES: contextvars.ContextVar[LoadNotes | None] = contextvars.ContextVar(
    "connectrpc_catalog_load_notes", default=None
)


def notes() -> LoadNotes:
    """The notes of the load running in this task (a throwaway one outside a load)."""
    current = _NOTES.get()
    return current if current is not None else LoadNotes()


def collect() -> tuple[LoadNotes, contextvars.Token[LoadNotes | None]]:
    """Start collecting notes for a load in this task; `_NOTES.reset(token)` ends it."""
    fresh = LoadNotes()
    return fresh, _NOTES.set(fresh)


def reset(token: contextvars.Token[LoadNotes | None]) -> None:
    """Stop collecting (see `collect`)."""
    _NOTES.reset(token)


@functools.cache
def _googleapis_root() -> Path | None:
    """The folder holding googleapis-common-protos' google/api/*.proto (a dependency)."""
    try:
        spec = importlib.util.find_spec("google.api")
    except (ImportError, ValueError):  # pragma: no cover - a dependency
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        root = Path(folder).parent.parent
        if (root / "google" / "api" / "annotations.proto").is_file():
            return root
    return None


def extra_roots() -> list[tuple[Path, str]]:
    """The roots the catalog ships, each with the import prefix it serves."""
    roots = [(VENDOR_DIR, "buf/")]
    googleapis = _googleapis_root()
    if googleapis is not None:
        roots.append((googleapis, "google/"))
    return roots


def _imports(data: bytes) -> list[str]:
    return import_names(data)


def _package(data: bytes) -> str:
    match = _PACKAGE.search(data)
    return match.group(1).decode() if match else ""


def _provided(name: str) -> bool:
    """Imports protoc always finds (the well-known types it ships)."""
    return name.startswith("google/protobuf/")


def complete(
    limits: Limits, files: dict[str, bytes], roots: Sequence[tuple[Path, str]], shown: str
) -> dict[str, str]:
    """Add every import the files need (transitively) from the first root that has it;
    the imports still missing, each with a file that imports it."""
    budget = limits.max_bytes - sum(len(d) for d in files.values())
    pending = [(imp, name) for name, data in files.items() for imp in _imports(data)]
    missing: dict[str, str] = {}
    while pending:
        name, importer = pending.pop()
        if name in files or name in missing or _provided(name):
            continue
        if name_problem(limits, name) is not None:
            missing[name] = importer
            continue
        for root, prefix in roots:
            if prefix and not name.startswith(prefix):
                continue
            try:
                data = read_at_most(root / name, max(budget, 0))
            except FileTooLarge:
                raise too_large(limits, f"{shown} with the files it imports", None) from None
            except OSError:
                continue
            if len(files) >= limits.max_files:
                raise LimitError(
                    f"{shown} imports more than {limits.max_files} files; the limit is "
                    f"{limits.max_files} files per load",
                )
            files[name] = data
            budget -= len(data)
            pending.extend((imp, name) for imp in _imports(data))
            break
        else:
            missing[name] = importer
    return missing


@dataclass(frozen=True, slots=True)
class Resolved:
    """Files ready for protoc: every import among them, the targets renamed to match."""

    files: dict[str, bytes]
    targets: list[str]
    root: Path | None
    """The import root found above the folder given; None when the folder was right."""


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    if not roots:
        return True
    real = Path(os.path.realpath(path))
    return any(real == r or real.is_relative_to(r) for r in roots)


def check_import_paths(paths: Sequence[str], proto_roots: Sequence[Path]) -> None:
    """SourceError unless every import path given is inside the `--proto-root` folders
    (when there are any)."""
    real_roots = [Path(os.path.realpath(r)) for r in proto_roots]
    for path in paths:
        if not path.strip():
            raise SourceError("importPaths holds an empty path", field="importPaths")
        if not _inside(Path(path).expanduser(), real_roots):
            raise SourceError(
                f"importPaths: {path!r} is outside the folders this catalog may read "
                "(--proto-root)",
                field="importPaths",
            )


def _serves(root: Path, prefix: str, name: str) -> bool:
    return name.startswith(prefix) and (root / name).is_file()


def _candidates(
    folder: Path, files: Mapping[str, bytes], proto_roots: Sequence[Path]
) -> tuple[list[Path], list[Path]]:
    """Parents of `folder` to try as the root: those the `package` lines suggest, and
    the others nearest first; none outside `proto_roots` (when given)."""
    parents = list(folder.parents)[:_MAX_LEVELS]
    suggested: list[Path] = []
    for name, data in files.items():
        package = _package(data)
        if not package:
            continue
        where = (folder / name).parent
        parts = package.split(".")
        for cut in range(len(parts), 0, -1):  # acme.weather.v1 in .../acme/weather/v1/
            tail = parts[:cut]
            if list(where.parts[-len(tail) :]) == tail:
                root = Path(*where.parts[: -len(tail)])
                if root in parents and root not in suggested:
                    suggested.append(root)
                break
    inside = [p for p in suggested if _inside(p, proto_roots)]
    others = [p for p in parents if p not in suggested and _inside(p, proto_roots)]
    return inside, others


def resolve(
    limits: Limits,
    folder: Path,
    files: Mapping[str, bytes],
    targets: Sequence[str],
    *,
    import_paths: Sequence[str | Path] = (),
    proto_roots: Sequence[Path] = (),
    shown: str,
) -> Resolved:
    """The files with everything they import, from `folder` or the root found above it.

    `files` are named relative to `folder`; LoadError names a missing import and the
    nearest folder that has it when no root works.
    """
    folder = Path(os.path.abspath(folder))
    user = [(Path(p).expanduser(), "") for p in import_paths]
    shipped = extra_roots()
    work = dict(files)
    missing = complete(limits, work, [(folder, ""), *user], shown)
    if not missing:
        return Resolved(work, list(targets), None)
    real_roots = [Path(os.path.realpath(r)) for r in proto_roots]
    kept = _root_key(folder, user, real_roots, files)
    with _ROOTS_LOCK:
        before = _ROOTS.get(kept) if kept is not None else None
    if before is not None and _inside(before, real_roots):  # --proto-root: checked again
        found = _under(limits, folder, before, files, targets, [*user, *shipped], shown)
        if found is not None:
            return found
    suggested, parents = _candidates(folder, files, real_roots)
    need = [m for m in missing if not any(_serves(r, p, m) for r, p in shipped)]
    for root in [*suggested, *(p for p in parents if need)]:
        here = [m for m in missing if (root / m).is_file()]
        if not here or (root not in suggested and len(here) < len(need)):
            continue
        found = _under(limits, folder, root, files, targets, [*user, *shipped], shown)
        if found is not None:
            if kept is not None:
                _keep_root(kept, root)
            return found
    work = dict(files)
    missing = complete(limits, work, [(folder, ""), *user, *shipped], shown)
    if not missing:
        return Resolved(work, list(targets), None)
    raise LoadError(_missing_message(folder, missing, shown, real_roots))


def _under(
    limits: Limits,
    folder: Path,
    root: Path,
    files: Mapping[str, bytes],
    targets: Sequence[str],
    roots: Sequence[tuple[Path, str]],
    shown: str,
) -> Resolved | None:
    """The files renamed below `root` with all they import, or None if one is missing."""
    prefix = folder.relative_to(root).as_posix()
    moved = {f"{prefix}/{n}": d for n, d in files.items()}
    if complete(limits, moved, [(root, ""), *roots], shown):
        return None
    return Resolved(moved, [f"{prefix}/{t}" for t in targets], root)


def _root_key(
    folder: Path,
    user: Sequence[tuple[Path, str]],
    proto_roots: Sequence[Path],
    files: Mapping[str, bytes],
) -> Hashable | None:
    """What the root found for these files below `folder` is kept by (None: the folder
    cannot be looked at)."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (
        str(folder),
        (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns),
        tuple(str(p) for p, _ in user),
        tuple(str(r) for r in proto_roots),
        tuple(sorted(files)),
    )


def _keep_root(key: Hashable, root: Path) -> None:
    with _ROOTS_LOCK:
        _ROOTS[key] = root
        _ROOTS.move_to_end(key)
        while len(_ROOTS) > _MAX_ROOTS_KEPT:
            _ROOTS.popitem(last=False)


def _missing_message(
    folder: Path, missing: Mapping[str, str], shown: str, proto_roots: Sequence[Path]
) -> str:
    name, importer = sorted(missing.items())[0]
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    where = " inside the --proto-root folders" if proto_roots else ""
    found = _nearest_with(folder, name, proto_roots)
    if found is not None:
        hint = (
            f"the nearest folder that has it is {found}: add it as an import path "
            "(importPaths, or --import-path at start-up)"
        )
    else:
        hint = (
            "add the folder that holds it as an import path (importPaths, or --import-path "
            "at start-up), or upload it with the other files"
        )
    return (
        f"{shown}: {importer} imports {name!r}{more}, which is not in this folder, the "
        f"import paths, or any folder above it{where}; {hint}"
    )


def _nearest_with(folder: Path, name: str, proto_roots: Sequence[Path]) -> Path | None:
    """The folder nearest to `folder` (below it, then below its parents) holding `name`,
    searched breadth first within a bounded number of directory entries, and never
    outside `proto_roots` (when given): the answer names no folder the caller may not read."""
    seen = 0
    starts = [p for p in [folder, *list(folder.parents)[:3]] if _inside(p, proto_roots)]
    for start in starts:
        queue = [start]
        while queue:
            current = queue.pop(0)
            if (current / name).is_file():
                return current
            try:
                with os.scandir(current) as listing:
                    for entry in listing:
                        seen += 1
                        if seen > _SEARCH_ENTRIES:
                            return None
                        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                            queue.append(Path(entry.path))
            except OSError:
                continue
    return None


def place_uploads(limits: Limits, files: Mapping[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """Uploaded files renamed to the import paths that other uploaded files use for them.

    An import `google/api/http.proto` that no upload is named is matched to an upload
    named `http.proto` (or `.../http.proto`) whose `package` fits the import's folder
    (`google.api`), or that is the only upload with that file name. Returns the files
    and what was moved ("http.proto -> google/api/http.proto").
    """
    out = dict(files)
    placed: list[str] = []
    changed = True
    rounds = 0
    while changed and rounds < 8:
        changed = False
        rounds += 1
        wanted = sorted({i for d in out.values() for i in _imports(d)} - set(out))
        for imp in wanted:
            if _provided(imp) or name_problem(limits, imp) is not None:
                continue
            base = imp.rpartition("/")[2]
            folder = imp.rpartition("/")[0].replace("/", ".")
            same = [n for n in out if n.rpartition("/")[2] == base and n != imp]
            fits = [n for n in same if _package(out[n]) == folder]
            pick = fits[0] if len(fits) == 1 else (same[0] if len(same) == 1 else None)
            if pick is None or any(imp in _imports(d) for n, d in out.items() if n == pick):
                continue
            if any(pick in _imports(d) for d in out.values()):
                continue  # another file imports it by its uploaded name: keep that
            out[imp] = out.pop(pick)
            placed.append(f"{pick} -> {imp}")
            changed = True
    return out, placed
