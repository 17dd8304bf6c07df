"""Schema sources are safe by default: upload names never reach protoc as options, Git
checkouts are inert and never show credentials, reads and walks are bounded before the
work, non-proto files never leak into messages, and crashed catalogs leave no temp files.

Every test uses real files in tmp_path and the real Context, Compiler or catalog."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.descriptors import EMPTY, SchemaCache
from connectrpc_catalog.loading import Loader
from connectrpc_catalog.problems import RequestError
from connectrpc_catalog.sources.buf import load_module
from connectrpc_catalog.sources.compiler import SCRATCH_PREFIX, CompileError, Compiler
from connectrpc_catalog.sources.core import TEMP_PREFIX, Context, Limits, LoadError
from connectrpc_catalog.sources.files import load_path
from connectrpc_catalog.sources.git import load_repo
from connectrpc_catalog.sources.reflection import load_reflection
from connectrpc_catalog.sources.upload import compile_files
from connectrpc_catalog.startup import BaseSpec, StartupSource, load_base

from ..sourcehelp import load_failed, load_ok, load_rejected, write_tree
from ..test_sources_git import git

GOOD = {"ok/v1/ok.proto": b'syntax = "proto3";\npackage ok.v1;\nmessage Ok { string v = 1; }\n'}
PROTO = (
    'syntax = "proto3";\npackage acme.v1;\nservice Api { rpc Get(Id) returns (Id); }\n'
    "message Id {}\n"
)
SECRET = "s3cret-pass"


@pytest.fixture
async def ctx() -> AsyncIterator[Context]:
    ctx = Context(SchemaCache(), Compiler())
    yield ctx
    await ctx.compiler.close()
    await ctx.close()


def names(folder: Path) -> list[str]:
    """The sorted names in a folder."""
    return sorted(p.name for p in folder.iterdir())


async def refused(ctx: Context, files: dict[str, bytes]) -> str:
    """from_files must refuse `files` with INVALID_ARGUMENT: the message."""
    with pytest.raises(RequestError) as info:
        await compile_files(ctx, files)
    assert info.value.code.name == "INVALID_ARGUMENT", info.value.message
    return info.value.message


async def good_load_still_works(ctx: Context) -> None:
    schema = await compile_files(ctx, GOOD)
    assert "ok/v1/ok.proto" in schema.file_names


# --- 1. upload names never reach protoc as options --------------------------------------------


def injection_names(tmp_path: Path) -> list[str]:
    return [
        f"--dependency_out={tmp_path}/dep.proto",
        f"--descriptor_set_out={tmp_path}/set.proto",
        "-I/etc.proto",
        "@argsfile.proto",
        f"--plugin=protoc-gen-x={tmp_path}/x.proto",
        "a/-x.proto",
        "a/@x.proto",
    ]


async def test_option_like_upload_names_are_refused(tmp_path: Path, ctx: Context) -> None:
    (tmp_path / "argsfile.proto").write_text(f"--dependency_out={tmp_path}/from-args.proto\n")
    for name in injection_names(tmp_path):
        message = await refused(ctx, {name: PROTO.encode(), **GOOD})
        assert repr(name[:80])[:40] in message, message
        assert "must be a relative path inside the upload" in message
    assert ctx.compiler.compiles == 0  # refused before any work
    assert names(tmp_path) == ["argsfile.proto"]  # nothing written
    await good_load_still_works(ctx)


def test_option_like_names_through_the_api(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    for name in injection_names(tmp_path):
        code, message = load_rejected(http, catalog_url, {"protoFiles": {"files": {name: PROTO}}})
        assert code == "invalid_argument", message
    assert list(tmp_path.iterdir()) == []
    data, _ = load_ok(http, catalog_url, {"protoFiles": {"files": {"acme/v1/api.proto": PROTO}}})
    assert data["loadedServices"] == ["acme.v1.Api"]


@pytest.mark.parametrize(
    "names",
    [
        ["a\0.proto"],
        ["a\n.proto"],
        ["a" * 300 + ".proto"],
        ["a/" * 2000 + "x.proto"],
        ["/".join(["d"] * 40) + "/x.proto"],
        ["a//b.proto"],
        ["./a.proto"],
        ["a/./b.proto"],
        ["a\\b.proto"],
        ["caf\u00e9.proto"],
        ["a b.proto"],
        ["a/"],
        ["A.proto", "a.proto"],
        ["a.proto", "a.proto/b.proto"],
        ["Dir", "dir/b.proto"],
    ],
    ids=[
        "nul",
        "newline",
        "300-char-part",
        "2000-deep",
        "40-deep",
        "empty-part",
        "dot",
        "inner-dot",
        "backslash",
        "non-ascii",
        "space",
        "trailing-slash",
        "case-clash",
        "file-as-folder",
        "file-as-folder-any-case",
    ],
)
async def test_odd_names_are_refused_without_killing_the_worker(
    ctx: Context, names: list[str]
) -> None:
    await ctx.compiler.warm_up()
    message = await refused(ctx, {n: PROTO.encode() for n in names})
    assert len(message) < 600  # a long name is truncated in the message
    assert "\0" not in message and "\n" not in message
    await good_load_still_works(ctx)
    assert ctx.compiler.starts == 1  # the worker was never restarted
    assert ctx.compiler.compiles == 1


async def test_the_worker_itself_refuses_odd_names_and_survives(tmp_path: Path) -> None:
    compiler = Compiler()
    try:
        dep = tmp_path / "dep.proto"
        cases = [
            ({f"--dependency_out={dep}": PROTO.encode()}, [f"--dependency_out={dep}"]),
            ({"@args.proto": PROTO.encode()}, ["@args.proto"]),
            ({"a\0.proto": PROTO.encode()}, ["a\0.proto"]),
            ({"a" * 300 + ".proto": PROTO.encode()}, ["a" * 300 + ".proto"]),
            ({"a/" * 2000 + "x.proto": PROTO.encode()}, ["a/" * 2000 + "x.proto"]),
            ({"../up.proto": PROTO.encode()}, ["../up.proto"]),
        ]
        for files, targets in cases:
            with pytest.raises(CompileError) as info:
                await compiler.compile(files, targets)
            assert "stopped unexpectedly" not in str(info.value)
            assert SCRATCH_PREFIX not in str(info.value)
        assert not dep.exists()
        assert await compiler.compile(GOOD, list(GOOD))
        assert compiler.starts == 1
    finally:
        await compiler.close()


# --- 2. Git checkouts: no executable bits, no leftovers, no credentials -------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare repository with an executable script and a proto (also executable) on main,
    and a branch `big` with a 2 MB file."""
    bare = tmp_path_factory.mktemp("sec-git") / "weather.git"
    git("init", "-q", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path_factory.mktemp("sec-work")
    git("init", "-q", "--initial-branch=main", cwd=work)
    write_tree(work, {"proto/acme/v1/api.proto": PROTO, "tools/run.sh": "#!/bin/sh\necho pwned\n"})
    (work / "tools" / "run.sh").chmod(0o755)
    (work / "proto" / "acme" / "v1" / "api.proto").chmod(0o755)
    (work / "README.md").write_text("SECRET_TOKEN=abc123\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "main", cwd=work)
    git("checkout", "-q", "-b", "big", cwd=work)
    (work / "blob.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "big", cwd=work)
    git("push", "-q", str(bare), "main", "big", cwd=work)
    return bare


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


async def test_checkout_files_lose_their_executable_bits(repo: Path, tmp_path: Path) -> None:
    ctx = Context(SchemaCache(), Compiler(), cache_dir=tmp_path / "cache")
    try:
        schema = await load_repo(ctx, f"{repo.as_uri()}//proto")
    finally:
        await ctx.compiler.close()
    assert schema.service_names == ("acme.v1.Api",)
    (checkout,) = (tmp_path / "cache" / "git").iterdir()
    files = [p for p in checkout.rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"api.proto", "run.sh", "README.md"}
    for p in files:
        assert p.stat().st_mode & 0o111 == 0, (p, oct(p.stat().st_mode))
    for p in [checkout, *(p for p in checkout.rglob("*") if p.is_dir())]:
        assert p.stat().st_mode & 0o100  # folders stay traversable


async def test_failed_checkouts_leave_nothing_and_name_no_server_path(
    repo: Path, tmp_path: Path, live_pid: int
) -> None:
    cache = tmp_path / "cache"
    stale = cache / "git" / f".tmp-{dead_pid()}-0123456789abcdef"
    alive = cache / "git" / f".tmp-{live_pid}-fedcba9876543210"
    for folder in (stale, alive):
        write_tree(folder, {"half/checked/out.proto": PROTO})
    ctx = Context(
        SchemaCache(), Compiler(), cache_dir=cache, limits=Limits(max_checkout_bytes=1024 * 1024)
    )
    try:
        with pytest.raises(RequestError) as big:
            await load_repo(ctx, f"{repo.as_uri()}@big")
        with pytest.raises(LoadError) as missing:
            await load_repo(ctx, f"{repo.as_uri()}@{'0' * 40}")
    finally:
        await ctx.compiler.close()
    assert big.value.code.name == "RESOURCE_EXHAUSTED"
    for message in (big.value.message, str(missing.value)):
        assert str(cache) not in message and ".tmp-" not in message, message
    # the stale scratch of a dead catalog and both failed checkouts are gone
    assert names(cache / "git") == [alive.name]


async def test_credentials_never_reach_a_message(ctx: Context) -> None:
    specs = [
        f"https://user:{SECRET}@127.0.0.1:1/acme/weather.git@v1",
        f"http://user:{SECRET}@127.0.0.1:1/acme/weather.git//proto@-bad",
        f"ftp://user:{SECRET}@example.com/acme/weather.git",
        f"file://user:{SECRET}@/nonexistent/weather.git",
        f"https://{SECRET}@127.0.0.1:1/acme/weather.git",
    ]
    for spec in specs:
        with pytest.raises((RequestError, LoadError)) as info:
            await load_repo(ctx, spec)
        text = str(getattr(info.value, "message", "") or info.value)
        assert SECRET not in text, text
        assert "***@" in text, text
    for call in (
        load_reflection(ctx, f"https://user:{SECRET}@localhost:443"),
        load_reflection(ctx, f"user:{SECRET}@localhost:50051"),
        load_module(ctx, f"https://user:{SECRET}@buf.build/acme/weather"),
        load_path(ctx, f"https://user:{SECRET}@example.com/x.proto"),
    ):
        with pytest.raises((RequestError, LoadError)) as info:
            await call
        text = str(getattr(info.value, "message", "") or info.value)
        assert SECRET not in text, text


async def test_credentials_never_reach_a_log_line(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    sources = [
        StartupSource(kind="proto_repo", value=f"https://u:{SECRET}@127.0.0.1:1/a/b.git"),
        StartupSource(kind="reflection_endpoint", value=f"u:{SECRET}@127.0.0.1:1"),
        StartupSource(kind="buf_module", value=f"https://u:{SECRET}@buf.build/a/b"),
    ]
    with caplog.at_level(logging.DEBUG):
        loaded = await load_base(Loader(ctx), BaseSpec(sources=sources, keep_going=True), EMPTY)
    assert len(loaded.skipped) == 3
    assert SECRET not in "\n".join(loaded.skipped)
    assert "skipped start-up source" in caplog.text
    assert SECRET not in caplog.text
    assert all(SECRET not in s.describe() for s in sources)


# --- 3. reads are bounded before they happen ------------------------------------------------


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def sparse(path: Path, size: int = 2 * 1024**3, head: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    return path


async def test_a_sparse_2gb_file_is_refused_before_it_is_read(tmp_path: Path, ctx: Context) -> None:
    folder = tmp_path / "tree"
    write_tree(folder, {"acme/v1/api.proto": PROTO})
    sparse(folder / "acme" / "v1" / "huge.proto", head=PROTO.encode())
    single = sparse(tmp_path / "one" / "huge.proto", head=PROTO.encode())
    importer = write_tree(
        tmp_path / "imp", {"main.proto": 'syntax = "proto3";\nimport "huge.proto";\n'}
    )
    sparse(importer / "huge.proto")
    as_set = sparse(tmp_path / "huge.binpb", head=b"\x0a")
    sniffed = sparse(tmp_path / "huge-no-suffix", head=b"\x0a")
    before = rss_bytes()
    for path, wanted in [
        (folder, "huge.proto is 2147483648 bytes"),
        (single, "is 2147483648 bytes"),
        (importer / "main.proto", "with the files it imports"),
        (as_set, "is 2147483648 bytes"),
        (sniffed, "is 2147483648 bytes"),
    ]:
        with pytest.raises(RequestError) as info:
            await load_path(ctx, str(path))
        assert info.value.code.name == "RESOURCE_EXHAUSTED", info.value.message
        assert wanted in info.value.message, info.value.message
        assert info.value.message.startswith(str(path)), info.value.message
    assert rss_bytes() - before < 200 * 1024 * 1024
    assert ctx.compiler.compiles == 0


async def test_size_errors_name_the_label_not_the_server_path(tmp_path: Path, ctx: Context) -> None:
    folder = tmp_path / "tree"
    sparse(folder / "huge.proto")
    with pytest.raises(RequestError) as info:
        await load_path(ctx, str(folder), label="github.com/acme/weather")
    assert info.value.message.startswith("github.com/acme/weather: huge.proto is ")
    assert str(tmp_path) not in info.value.message


async def test_fifos_and_devices_are_refused_not_waited_on(tmp_path: Path, ctx: Context) -> None:
    fifo = tmp_path / "pipe.proto"
    os.mkfifo(fifo)
    with pytest.raises(RequestError) as info:
        await load_path(ctx, str(fifo))
    assert info.value.code.name == "INVALID_ARGUMENT"
    folder = write_tree(tmp_path / "tree", {"acme/v1/api.proto": PROTO})
    os.mkfifo(folder / "acme" / "v1" / "blocked.proto")
    schema = await load_path(ctx, str(folder))  # the FIFO is skipped, not opened blocking
    assert schema.service_names == ("acme.v1.Api",)
    with pytest.raises(RequestError) as dev:
        await load_path(ctx, "/dev/zero")
    assert dev.value.code.name == "INVALID_ARGUMENT"


# --- 4. folder walks are bounded before the work --------------------------------------------


async def test_a_huge_folder_is_refused_while_walking(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    for i in range(300):
        (root / f"d{i:03}").mkdir(parents=True)
    write_tree(root, {"acme/v1/api.proto": PROTO})
    ctx = Context(SchemaCache(), Compiler(), limits=Limits(max_walk_entries=100))
    try:
        with pytest.raises(RequestError) as info:
            await load_path(ctx, str(root))
        assert info.value.code.name == "RESOURCE_EXHAUSTED"
        assert info.value.message == (
            f"the folder {root} holds more than 100 entries; point at the folder that holds "
            "your .proto files"
        )
        assert ctx.compiler.compiles == 0
        schema = await load_path(ctx, str(root / "acme"))  # a smaller folder loads
        assert schema.service_names == ("acme.v1.Api",)
    finally:
        await ctx.compiler.close()


async def test_a_deep_folder_is_refused_while_walking(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    write_tree(root, {"/".join(["d"] * 12) + "/x.proto": PROTO})
    ctx = Context(SchemaCache(), Compiler(), limits=Limits(max_walk_depth=8))
    try:
        with pytest.raises(RequestError) as info:
            await load_path(ctx, str(root))
        assert info.value.code.name == "RESOURCE_EXHAUSTED"
        assert "nested more than 8 deep" in info.value.message
        assert Limits().max_walk_entries == 100_000 and Limits().max_walk_depth == 64
    finally:
        await ctx.compiler.close()


# --- 5. protoc never shows the lines of a non-proto file, nor its own log lines ------------


async def test_a_file_that_is_neither_proto_nor_set_is_refused(
    tmp_path: Path, ctx: Context
) -> None:
    for name, content in [
        ("secret.env", b"SECRET_TOKEN=abc123\n"),
        ("notes", b"\nSECRET_TOKEN=abc123\n"),  # starts like a descriptor set, is not one
        ("id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET_TOKEN\n"),
        ("empty", b""),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(RequestError) as info:
            await load_path(ctx, str(path))
        assert info.value.code.name == "INVALID_ARGUMENT"
        assert info.value.message.startswith(
            f"{path} is neither a .proto file nor a descriptor set"
        )
        assert "SECRET" not in info.value.message
    assert ctx.compiler.compiles == 0


def test_protoc_log_lines_are_not_shown(catalog_url: str, http: httpx.Client) -> None:
    # no syntax line: protoc logs an absl warning before the real error
    files = {"nosyntax.proto": "message A { int32 a = 1 }\n"}
    for _ in range(2):
        error = load_failed(http, catalog_url, {"protoFiles": {"files": files}})
        assert error.startswith("nosyntax.proto:1:"), error
        for marker in ("WARNING:", "absl", "W0000", "parser.cc", "] "):
            assert marker not in error, error


# --- 6. a crashed catalog leaves no temp folders behind ---------------------------------------


async def test_stale_loader_temp_folders_are_removed(
    tmp_path: Path, repo: Path, live_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    stale = write_tree(temp / f"{TEMP_PREFIX}{dead_pid()}-abcd1234", {"git/x/a.proto": PROTO})
    alive = write_tree(temp / f"{TEMP_PREFIX}{live_pid}-efgh5678", {"git/x/a.proto": PROTO})
    unrelated = write_tree(temp / f"{TEMP_PREFIX}nopid", {"a.proto": PROTO})
    ctx = Context(SchemaCache(), Compiler())
    try:
        await load_repo(ctx, f"{repo.as_uri()}//proto")  # the first use of the temp folder
        assert not stale.exists()
        assert alive.is_dir() and unrelated.is_dir()
        (mine,) = (p for p in temp.iterdir() if p not in (alive, unrelated))
        assert mine.name.startswith(f"{TEMP_PREFIX}{os.getpid()}-")
    finally:
        await ctx.compiler.close()
        await ctx.close()
    assert sorted(temp.iterdir()) == sorted([alive, unrelated])


async def test_stale_worker_scratch_folders_are_removed(
    tmp_path: Path, live_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the worker process's temp folder
    stale = write_tree(temp / f"{SCRATCH_PREFIX}{dead_pid()}-abcd", {"src/a.proto": PROTO})
    alive = write_tree(temp / f"{SCRATCH_PREFIX}{live_pid}-efgh", {"src/a.proto": PROTO})
    compiler = Compiler()
    try:
        assert await compiler.compile(GOOD, list(GOOD))
    finally:
        await compiler.close()
    assert not stale.exists()
    assert sorted(temp.iterdir()) == [alive]


# --- 7. errors name what the user sent --------------------------------------------------------


async def test_git_errors_name_the_spec_not_the_checkout(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ctx = Context(SchemaCache(), Compiler(), cache_dir=cache)
    spec = f"{repo.as_uri()}//README.md"
    try:
        with pytest.raises(RequestError) as info:
            await load_repo(ctx, spec)
    finally:
        await ctx.compiler.close()
    assert info.value.code.name == "INVALID_ARGUMENT"
    assert info.value.message.startswith(f"{spec} is neither a .proto file nor a descriptor set")
    assert str(cache) not in info.value.message and "SECRET" not in info.value.message


async def test_bad_names_in_a_folder_name_the_folder_and_file(tmp_path: Path, ctx: Context) -> None:
    folder = write_tree(tmp_path / "tree", {"acme/v1/api.proto": PROTO, "-evil.proto": PROTO})
    with pytest.raises(RequestError) as info:
        await load_path(ctx, str(folder), label="my/protos")
    assert info.value.code.name == "INVALID_ARGUMENT"
    assert info.value.message.startswith("my/protos: the file '-evil.proto' is refused")
    assert str(tmp_path) not in info.value.message
    assert ctx.compiler.compiles == 0
