"""Reading schema files from the catalog server's disk, bounded by `Limits`.

One file (`read_capped`), every `.proto` below a folder (`read_tree`), and a `.proto`
file with the files it imports (`read_closure`). Sizes are checked before reading and
at most the limit is ever read, walks stop past their entry, depth and file limits, and
FIFOs or devices are never opened blocking. All of it blocks: call it in a thread.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Collection
from pathlib import Path

from .core import LimitError, Limits, LoadError, bad_name, name_problem, too_large

__all__ = ["FileTooLarge", "read_at_most", "read_capped", "read_closure", "read_tree"]

_IMPORT = re.compile(rb'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)


class FileTooLarge(Exception):
    """A file past the size it may have; `size` is its size, or None if it grew while read."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


def read_at_most(path: Path, limit: int) -> bytes:
    """A regular file's content, refused (FileTooLarge) when it is larger than `limit`.

    The size is checked before reading, and at most `limit + 1` bytes are ever read, so a
    file that grows meanwhile is bounded too. Anything but a regular file (a FIFO, a
    device) is an OSError, as is a file that cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if st.st_size > limit:
            raise FileTooLarge(st.st_size)
        parts: list[bytes] = []
        size = 0
        step = min(limit, st.st_size) + 1
        while size <= limit:
            chunk = os.read(fd, min(step, limit + 1 - size))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            step = 1 << 20  # a short read, or the file grew: go on in bounded steps
    finally:
        os.close(fd)
    if size > limit:
        raise FileTooLarge(None)
    return b"".join(parts)


def read_capped(limits: Limits, path: Path, shown: str) -> bytes:
    """A whole file of at most `max_bytes`, refused before reading when larger."""
    try:
        return read_at_most(path, limits.max_bytes)
    except FileTooLarge as exc:
        raise too_large(limits, shown, exc.size) from None
    except OSError as exc:
        raise unreadable(shown, exc) from None


def read_tree(
    limits: Limits, root: Path, *, also: Collection[str] = (), label: str | None = None
) -> dict[str, bytes]:
    """Every .proto below `root` (and files named in `also`) by relative path.

    Hidden folders (`.git`, ...) are skipped; symlinked folders are not followed. The
    walk, the number of files and their total size are bounded (see `Limits`) before
    anything is read; `label` names `root` in messages (default: the path).
    """
    shown = label or str(root)

    def wanted(name: str) -> bool:
        return name.endswith(".proto") or name in also

    sized: list[tuple[str, Path, int]] = []
    real_root = os.path.realpath(root)
    for p in sorted(_walk(limits, root, shown, wanted)):
        if not _contained(p, real_root):
            continue  # a symlinked file that leads out of the folder is not followed
        try:
            st = p.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sized.append((p.relative_to(root).as_posix(), p, st.st_size))
    limit = limits.max_bytes
    if sum(size for _, _, size in sized) > limit:
        rel, _, size = max(sized, key=lambda item: item[2])
        if size > limit:
            raise too_large(limits, f"{shown}: {rel}", size)
        raise too_large(limits, f"{shown}: the files below it together", None)
    files: dict[str, bytes] = {}
    budget = limit
    for rel, p, _ in sized:
        try:
            data = read_at_most(p, budget)
        except FileTooLarge:
            raise too_large(limits, f"{shown}: the files below it together", None) from None
        except OSError:
            continue
        budget -= len(data)
        files[rel] = data
    return files


def _walk(limits: Limits, root: Path, shown: str, wanted: Callable[[str], bool]) -> list[Path]:
    """The wanted files below `root`, stopping early past the walk and file limits."""
    hint = "point at the folder that holds your .proto files"
    found: list[Path] = []
    entries = 0
    stack: list[tuple[str, int]] = [(str(root), 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    entries += 1
                    if entries > limits.max_walk_entries:
                        raise LimitError(
                            f"the folder {shown} holds more than {limits.max_walk_entries} "
                            f"entries; {hint}",
                        )
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if depth >= limits.max_walk_depth:
                            raise LimitError(
                                f"the folder {shown} has folders nested more than "
                                f"{limits.max_walk_depth} deep; {hint}",
                            )
                        stack.append((entry.path, depth + 1))
                    elif wanted(entry.name):
                        found.append(Path(entry.path))
                        if len(found) > limits.max_files:
                            raise LimitError(
                                f"{shown}: more than {limits.max_files} .proto files below "
                                "the folder; point at a smaller folder",
                            )
        except OSError:
            continue  # an unreadable folder is skipped, as os.walk does
    return found


def read_closure(limits: Limits, file: Path, shown: str) -> dict[str, bytes]:
    """The file and every file it imports that exists below its folder."""
    problem = name_problem(limits, file.name)
    if problem is not None:
        raise bad_name(shown, file.name, problem)
    root = file.parent
    real_root = os.path.realpath(root)
    files: dict[str, bytes] = {}
    budget = limits.max_bytes
    pending = [file.name]
    while pending:
        name = pending.pop()
        if name in files or name_problem(limits, name) is not None:
            continue  # an import that is no safe path is reported by protoc as missing
        if len(files) >= limits.max_files:
            raise LimitError(
                f"{shown} imports more than {limits.max_files} files; the limit is "
                f"{limits.max_files} files per load",
            )
        if name != file.name and not _contained(root / name, real_root):
            continue  # through a symlink out of the folder: not read (protoc: missing)
        try:
            data = read_at_most(root / name, budget)
        except FileTooLarge as exc:
            if name == file.name:
                raise too_large(limits, shown, exc.size) from None
            raise too_large(limits, f"{shown} with the files it imports", None) from None
        except OSError as exc:
            if name == file.name:
                raise unreadable(shown, exc) from None
            continue  # a well-known type, or missing: protoc says which
        files[name] = data
        budget -= len(data)
        pending.extend(m.decode(errors="replace") for m in _IMPORT.findall(data))
    return files


def _contained(path: Path, real_root: str) -> bool:
    """Whether `path`, symlinks resolved, is still below the folder `real_root` (resolved)."""
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def unreadable(shown: str, exc: OSError) -> LoadError:
    """The failed load for a file that exists but cannot be read."""
    reason = os.strerror(exc.errno) if exc.errno else "it could not be read"
    if exc.errno == errno.EINVAL:
        reason = "not a regular file"
    return LoadError(f"{shown}: cannot be read on the catalog server ({reason.lower()})")
