"""Reading schema files from the catalog server's disk, bounded by `Limits`.

One file (`read_capped`), every `.proto` below a folder (`read_tree`), and a `.proto`
file with the files it imports (`read_closure`). Sizes are checked before reading and
at most the limit is ever read, walks stop past their entry, depth and file limits, and
FIFOs or devices are never opened blocking. All of it blocks: call it in a thread.

Folder reads go through `FILES`, a bounded cache of file contents by path and stat key
(device, inode, size, mtime and ctime in ns): a file whose stat key is unchanged is not
read again. Only the reading is skipped: every walk, limit and symlink check runs on
every load, and a file is looked up by the key of what its path leads to now (a
retargeted symlink, an edit, a replaced file: a new key, read again). A file changed
shortly before it was read is not kept: a second write within the same timestamp tick
would leave its key unchanged (`_SETTLE_NS`; two seconds where the file system keeps
whole seconds only), nor is one whose key changed while it was read.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path

from ..filefacts import import_names
from .core import LimitError, Limits, LoadError, bad_name, name_problem, too_large

__all__ = [
    "FILES",
    "FileCache",
    "FileTooLarge",
    "read_at_most",
    "read_capped",
    "read_closure",
    "read_tree",
    "stat_key",
]

StatKey = tuple[int, int, int, int, int]
"""(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns) of a file."""
_SETTLE_NS = 50_000_000
"""A file changed this shortly before it was read is not kept (see the module's text):
well above a kernel timestamp tick (1-10 ms)."""
_COARSE_SETTLE_NS = 2_000_000_000
"""The same where timestamps are whole seconds (FAT keeps two)."""



class FileTooLarge(Exception):
    """A file past the size it may have; `size` is its size, or None if it grew while read."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


def stat_key(st: os.stat_result) -> StatKey:
    """What identifies a file's version: its device, inode, size, mtime and ctime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileCache:
    """File contents by path and stat key, bounded in bytes and entries, least recently
    used evicted; shared by every load of the process (thread-safe)."""

    def __init__(self, max_bytes: int = 64 << 20, max_entries: int = 20_000) -> None:
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[StatKey, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.reads = 0
        """Files found here / read from disk (tests and benchmarks read them)."""

    def get(self, path: str, key: StatKey) -> bytes | None:
        """The content kept for `path` if it was read at this stat key, else None."""
        with self._lock:
            entry = self._entries.get(path)
            if entry is None or entry[0] != key:
                return None
            self._entries.move_to_end(path)
            self.hits += 1
            return entry[1]

    def put(self, path: str, key: StatKey, data: bytes, read_at: int) -> None:
        """Keep what was read at `key` (starting at `read_at`, `time.time_ns()`), unless
        the file changed too shortly before to trust its key."""
        newest = max(key[3], key[4])
        coarse = key[3] % 1_000_000_000 == 0 and key[4] % 1_000_000_000 == 0
        settle = _COARSE_SETTLE_NS if coarse else _SETTLE_NS
        if read_at - newest < settle or len(data) > self._max_bytes:
            return
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._entries[path] = (key, data)
            self._bytes += len(data)
            while self._bytes > self._max_bytes or len(self._entries) > self._max_entries:
                _, (_, gone) = self._entries.popitem(last=False)
                self._bytes -= len(gone)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


FILES = FileCache()
"""The folder reads' cache (see the module's text)."""


def read_at_most(path: str | Path, limit: int) -> bytes:
    """A regular file's content, refused (FileTooLarge) when it is larger than `limit`.

    The size is checked before reading, and at most `limit + 1` bytes are ever read, so a
    file that grows meanwhile is bounded too. Anything but a regular file (a FIFO, a
    device) is an OSError, as is a file that cannot be opened.
    """
    return _read_keyed(path, limit)[0]


def _read_keyed(path: str | Path, limit: int) -> tuple[bytes, StatKey | None]:
    """`read_at_most`, with the stat key of the file read (None: it changed meanwhile)."""
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
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if size > limit:
        raise FileTooLarge(None)
    key = stat_key(st)
    return b"".join(parts), (key if stat_key(after) == key and size == st.st_size else None)


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

    sized: list[tuple[str, str, os.stat_result]] = []
    real_root = os.path.realpath(root)
    start = len(os.path.join(str(root), ""))
    found = [
        (p[start:].replace(os.sep, "/"), p, linked)
        for p, linked in _walk(limits, root, shown, wanted)
    ]
    found.sort(key=lambda item: item[0].split("/"))  # the order of the paths' parts
    for rel, p, linked in found:
        # The walk never enters a symlinked folder, so only a symlinked file can lead
        # out of the folder: that is checked (resolved) on every load.
        if linked and not _contained(Path(p), real_root):
            continue
        try:
            st = os.stat(p)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sized.append((rel, p, st))
    limit = limits.max_bytes
    if sum(st.st_size for _, _, st in sized) > limit:
        rel, _, big = max(sized, key=lambda item: item[2].st_size)
        if big.st_size > limit:
            raise too_large(limits, f"{shown}: {rel}", big.st_size)
        raise too_large(limits, f"{shown}: the files below it together", None)
    files: dict[str, bytes] = {}
    budget = limit
    for rel, p, st in sized:
        try:
            data = _read_cached(p, stat_key(st), budget)
        except FileTooLarge:
            raise too_large(limits, f"{shown}: the files below it together", None) from None
        except OSError:
            continue
        budget -= len(data)
        files[rel] = data
    return files


def _read_cached(path: str, key: StatKey, limit: int) -> bytes:
    """The file's content from `FILES` when it was read at this stat key, else read (at
    most `limit` bytes, see `read_at_most`) and kept when its key held while it was read."""
    data = FILES.get(path, key)
    if data is not None:
        if len(data) > limit:
            raise FileTooLarge(None)
        return data
    started = time.time_ns()
    data, read_at = _read_keyed(path, limit)
    FILES.reads += 1
    if read_at == key:
        FILES.put(path, key, data, started)
    return data


def _walk(
    limits: Limits, root: Path, shown: str, wanted: Callable[[str], bool]
) -> list[tuple[str, bool]]:
    """The wanted files below `root` (paths), each with whether it is a symlink,
    stopping early past the walk and file limits."""
    hint = "point at the folder that holds your .proto files"
    found: list[tuple[str, bool]] = []
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
                        found.append((entry.path, entry.is_symlink()))
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
        pending.extend(import_names(data))
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
