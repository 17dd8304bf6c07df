"""The protoc worker pool (parallel, bounded, fair, restarted, recycled, in /metrics),
incremental loads (a reload compiles only what changed, with the same result as a full
compile, and protoc is given only what the changed files import), folder reads (a file
whose stat key is unchanged is not read again; edits, kept mtimes and retargeted links
are), and the schema built from what the workers ship (facts off the wire, comments per
file)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import descriptor_pb2

from connectrpc_catalog.app import App
from connectrpc_catalog.comments import index_comments
from connectrpc_catalog.config import ConfigError, load_settings
from connectrpc_catalog.descriptors import Schema, SchemaCache
from connectrpc_catalog.filefacts import import_names, scan, split_set, without_source_info
from connectrpc_catalog.problems import Code
from connectrpc_catalog.settings import LimitSettings, Settings
from connectrpc_catalog.sources.compiler import CompileError, Compiler, CompilerBusy
from connectrpc_catalog.sources.core import Context, LimitError, Limits, LoadError
from connectrpc_catalog.sources.disk import FILES, FileCache, read_tree
from connectrpc_catalog.sources.files import load_path
from connectrpc_catalog.sources.upload import compile_files
from connectrpc_catalog.startup import BaseSpec, StartupSource

from .catalog_server import run_catalog
from .sourcehelp import write_tree

PACKAGES = 4
PER_PACKAGE = 5


def package_files(tag: str = "t", packages: int = PACKAGES) -> dict[str, str]:
    """Packages of chained files: p0 is common, every other package's first file imports
    p0's last; each package's last file has a service; comments and a well-known type."""
    files: dict[str, str] = {}
    for k in range(packages):
        for f in range(PER_PACKAGE):
            pkg = f"{tag}.p{k}.v1"
            imports = ['import "google/protobuf/timestamp.proto";']
            parent = ""
            if f:
                imports.append(f'import "{tag}/p{k}/v1/f{f - 1}.proto";')
                parent = f".{pkg}.M{f - 1}"
            elif k:
                imports.append(f'import "{tag}/p0/v1/f{PER_PACKAGE - 1}.proto";')
                parent = f".{tag}.p0.v1.M{PER_PACKAGE - 1}"
            field = f"  {parent} parent = 3;\n" if parent else ""
            text = (
                f'syntax = "proto3";\npackage {pkg};\n' + "\n".join(imports) + "\n"
                f"// M{f} is message {f} of package {k}.\n"
                f"message M{f} {{\n  // Its name.\n  string name = 1;\n"
                f"  google.protobuf.Timestamp at = 2;\n{field}}}\n"
                f"// S{f} is a state.\nenum S{f} {{\n  // Unknown.\n  S{f}_UNSPECIFIED = 0;\n}}\n"
            )
            if f == PER_PACKAGE - 1:
                text += (
                    f"// Svc serves package {k}.\nservice Svc {{\n  // Get gets.\n"
                    f"  rpc Get(M{f}) returns (M{f});\n}}\n"
                )
            files[f"{tag}/p{k}/v1/f{f}.proto"] = text
    return files


@pytest.fixture
async def ctx() -> AsyncIterator[Context]:
    ctx = Context(SchemaCache(), Compiler())
    yield ctx
    await ctx.compiler.close()
    await ctx.close()


async def fresh_load(folder: Path) -> Schema:
    """The folder compiled from scratch (a new context: nothing to reuse)."""
    other = Context(SchemaCache(), Compiler())
    try:
        return await load_path(other, str(folder))
    finally:
        await other.compiler.close()


def encoded(files: dict[str, str]) -> dict[str, bytes]:
    return {k: v.encode() for k, v in files.items()}


# --- the pool ---------------------------------------------------------------------------


async def test_workers_compile_at_once_up_to_the_pool_size() -> None:
    compiler = Compiler(workers=2)
    busiest = 0

    async def watch() -> None:
        nonlocal busiest
        while True:
            busiest = max(busiest, compiler.stats()["busy"])
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    try:
        jobs = [encoded(package_files(f"par{i}", packages=6)) for i in range(4)]
        results = await asyncio.gather(*(compiler.compile(j, sorted(j)) for j in jobs))
        assert all(len(r.compiled) == 6 * PER_PACKAGE + 1 for r in results)  # + timestamp.proto
        assert busiest == 2  # two at once, never more
        assert compiler.starts == 2
        assert compiler.stats()["running"] == 2
    finally:
        watcher.cancel()
        await compiler.close()
    assert compiler.stats()["running"] == 0


async def test_the_queue_takes_sessions_in_turn() -> None:
    compiler = Compiler(workers=1)
    done: list[str] = []

    async def one(owner: str, i: int) -> None:
        files = encoded(package_files(f"{owner}{i}", packages=1))
        await compiler.compile(files, sorted(files), owner=owner)
        done.append(owner)

    try:
        await compiler.warm_up()
        burst = [one("a", i) for i in range(5)]
        await asyncio.gather(*burst, one("b", 0), one("c", 0))
        # a's first job was running when b and c asked; they come next, not after a's burst
        assert done[:3] == ["a", "b", "c"]
        assert done.count("a") == 5
    finally:
        await compiler.close()


async def test_a_full_queue_is_refused_naming_the_setting(ctx: Context) -> None:
    ctx.compiler.size = 1
    ctx.compiler._free = 1
    ctx.compiler.max_queue = 2
    uploads = [encoded(package_files(f"q{i}", packages=2)) for i in range(5)]
    results = await asyncio.gather(
        *(compile_files(ctx, u) for u in uploads), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, LimitError)]
    assert len(refused) == 2  # one running, two waiting, two refused
    assert refused[0].code == Code.RESOURCE_EXHAUSTED
    assert "--compile-queue" in refused[0].message
    assert all(isinstance(r, Schema) for r in results if r not in refused)


async def test_a_killed_worker_fails_its_job_and_is_replaced() -> None:
    compiler = Compiler(workers=1)
    try:
        await compiler.warm_up()
        (pid,) = compiler.stats()["pids"]
        big = encoded(package_files("kill", packages=40))
        job = asyncio.create_task(compiler.compile(big, sorted(big)))
        while compiler.stats()["busy"] == 0:  # noqa: ASYNC110 (the pool has no event for it)
            await asyncio.sleep(0.001)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(CompileError, match="stopped unexpectedly"):
            await job
        small = encoded(package_files("after", packages=1))
        assert await compiler.compile(small, sorted(small))
        assert compiler.starts == 2
        assert pid not in compiler.stats()["pids"]
    finally:
        await compiler.close()


async def test_a_job_past_the_timeout_is_stopped_and_the_next_one_runs() -> None:
    compiler = Compiler(workers=1, timeout=0.001)
    try:
        big = encoded(package_files("slow", packages=20))
        with pytest.raises(CompileError, match="longer than"):
            await compiler.compile(big, sorted(big))
        compiler.timeout = 120
        assert await compiler.compile(big, sorted(big))
        assert compiler.starts == 2
    finally:
        await compiler.close()


async def test_a_worker_grown_past_its_memory_limit_is_replaced_after_the_job() -> None:
    compiler = Compiler(workers=1, max_worker_rss=1)  # every worker is past 1 byte
    kept = Compiler(workers=1)
    try:
        files = encoded(package_files("rss"))
        for c in (compiler, kept):
            assert await c.compile(files, sorted(files))
            assert await c.compile(files, sorted(files))
        assert (compiler.recycled, compiler.starts) == (2, 2)
        assert (kept.recycled, kept.starts) == (0, 1)
        (rss,) = kept.stats()["worker_rss"]
        assert rss > 0  # measured by the worker itself after the job
    finally:
        await compiler.close()
        await kept.close()


async def test_a_caller_that_goes_away_leaves_the_queue() -> None:
    compiler = Compiler(workers=1)
    try:
        first = encoded(package_files("first", packages=10))
        running = asyncio.create_task(compiler.compile(first, sorted(first)))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(compiler.compile(first, sorted(first)))
        await asyncio.sleep(0)
        assert compiler.stats()["queued"] == 1
        waiting.cancel()
        await asyncio.sleep(0)
        assert compiler.stats()["queued"] == 0
        assert await running
        assert compiler.compiles == 1
    finally:
        await compiler.close()


def test_pool_settings_are_checked_at_start_up() -> None:
    limits = load_settings(["--compile-workers", "3", "--compile-queue", "9"], env={}).limits
    assert (limits.compile_workers, limits.compile_queue) == (3, 9)
    assert load_settings([], env={}).limits.compile_workers == 0  # one per core
    for bad in (["--compile-workers", "-1"], ["--compile-workers", "65"], ["--compile-queue", "0"]):
        with pytest.raises((ConfigError, SystemExit)):
            load_settings(bad, env={})
    assert Compiler().size == (os.cpu_count() or 1)


async def test_busy_is_its_own_error() -> None:
    compiler = Compiler(workers=1, max_queue=0)
    try:
        files = encoded(package_files("busy", packages=1))
        with pytest.raises(CompilerBusy):
            await compiler.compile(files, sorted(files))
    finally:
        await compiler.close()


# --- incremental loads --------------------------------------------------------------------


def edit(path: Path, n: int) -> None:
    path.write_text(path.read_text() + f"// edited\nmessage Edited{n} {{ string note = 1; }}\n")


async def test_a_leaf_edit_compiles_one_file_and_equals_a_full_compile(
    ctx: Context, tmp_path: Path
) -> None:
    files = package_files()
    write_tree(tmp_path, files)
    first = await load_path(ctx, str(tmp_path))
    edit(tmp_path / f"t/p{PACKAGES - 1}/v1/f{PER_PACKAGE - 1}.proto", 1)
    reused = ctx.compiled.reused
    again = await load_path(ctx, str(tmp_path))
    assert ctx.compiled.reused - reused == len(files) - 1  # all but the leaf
    assert ctx.compiler.compiles == 2  # no fallback to a full compile
    full = await fresh_load(tmp_path)
    assert again.files == full.files  # byte for byte
    assert again.files != first.files
    assert again.service_names == full.service_names
    assert dict(again.comments) == dict(full.comments)


async def test_a_shared_import_edit_recompiles_its_importers(ctx: Context, tmp_path: Path) -> None:
    files = package_files()
    write_tree(tmp_path, files)
    await load_path(ctx, str(tmp_path))
    edit(tmp_path / f"t/p0/v1/f{PER_PACKAGE - 1}.proto", 2)  # every other package imports it
    reused = ctx.compiled.reused
    again = await load_path(ctx, str(tmp_path))
    assert ctx.compiled.reused - reused == PER_PACKAGE - 1  # p0's other files
    assert again.files == (await fresh_load(tmp_path)).files


async def test_added_and_deleted_files_match_a_full_compile(ctx: Context, tmp_path: Path) -> None:
    write_tree(tmp_path, package_files())
    await load_path(ctx, str(tmp_path))
    (tmp_path / "t/p1/v1/extra.proto").write_text(
        'syntax = "proto3";\npackage t.p1.v1;\nimport "t/p1/v1/f0.proto";\n'
        "// Extra is new.\nmessage Extra { M0 m = 1; }\n"
    )
    (tmp_path / f"t/p2/v1/f{PER_PACKAGE - 1}.proto").unlink()  # a leaf: nothing imports it
    again = await load_path(ctx, str(tmp_path))
    assert "t/p1/v1/extra.proto" in again.files
    assert f"t/p2/v1/f{PER_PACKAGE - 1}.proto" not in again.files
    assert again.files == (await fresh_load(tmp_path)).files
    (tmp_path / "t/p1/v1/f0.proto").unlink()  # imported by f1 and by extra.proto
    with pytest.raises(LoadError) as incremental:
        await load_path(ctx, str(tmp_path))
    with pytest.raises(LoadError) as full:
        await fresh_load(tmp_path)
    assert str(incremental.value) == str(full.value)
    assert "t/p1/v1/f0.proto" in str(full.value)


async def test_a_new_file_clashing_with_an_unrelated_one_fails_as_a_full_compile(
    ctx: Context, tmp_path: Path
) -> None:
    write_tree(tmp_path, package_files())
    await load_path(ctx, str(tmp_path))
    (tmp_path / "t/p3/v1/clash.proto").write_text(  # imports nothing of p1, redefines M0
        'syntax = "proto3";\npackage t.p1.v1;\nmessage M0 { string other = 1; }\n'
    )
    with pytest.raises(LoadError) as incremental:
        await load_path(ctx, str(tmp_path))
    with pytest.raises(LoadError):
        await fresh_load(tmp_path)
    assert "t.p1.v1.M0" in str(incremental.value)


async def test_uploads_reuse_files_compiled_for_any_load(ctx: Context) -> None:
    files = encoded(package_files())
    await compile_files(ctx, files)
    changed = dict(files)
    changed["t/p1/v1/f0.proto"] += b"// touched\n"
    reused = ctx.compiled.reused
    schema = await compile_files(ctx, changed)
    # p1/f0 and the files after it in p1 recompile; everything else is reused
    assert ctx.compiled.reused - reused == len(files) - PER_PACKAGE
    other = Context(SchemaCache(), Compiler())
    try:
        assert schema.files == (await compile_files(other, changed)).files
    finally:
        await other.compiler.close()


# --- schemas from what the workers ship ---------------------------------------------------


async def test_facts_off_the_wire_match_the_parsed_files(ctx: Context) -> None:
    files = encoded(package_files())
    compiled = await ctx.compiler.compile(files, sorted(files))
    for name, data in compiled.files.items():
        proto = descriptor_pb2.FileDescriptorProto.FromString(data)
        fact = scan(data)
        assert fact == compiled.facts[name]
        assert (fact.name, fact.deps) == (proto.name, tuple(proto.dependency))
        assert fact.services == tuple(f"{proto.package}.{s.name}" for s in proto.service)
        assert fact.described == bool(proto.source_code_info.location)
        bare = descriptor_pb2.FileDescriptorProto.FromString(without_source_info(data))
        proto.ClearField("source_code_info")
        assert bare == proto
    joined = b"".join(b"\x0a" + bytes([len(d)]) + d for d in [b"\x0a\x01a"])
    assert [scan(p).name for p in split_set(joined)] == ["a"]


async def test_comments_are_indexed_per_file_on_lookup_and_match_the_full_index(
    ctx: Context,
) -> None:
    files = encoded(package_files())
    schema = await compile_files(ctx, files)
    protos = [descriptor_pb2.FileDescriptorProto.FromString(d) for d in schema.files.values()]
    full = index_comments(protos)
    assert schema.comments["t.p1.v1.Svc.Get"] == "Get gets."  # a method: its service's file
    assert schema.comments.get("t.p2.v1.S0.S0_UNSPECIFIED") == "Unknown."  # an enum value
    assert schema.comments["t.p0.v1.M3.name"] == "Its name."
    assert "t.p0.v1.Nope" not in schema.comments
    assert schema.comments.get("t.p0.v1.M3.nope") is None
    assert dict(schema.comments) == full
    assert len(schema.comments) == len(full)


async def test_a_set_of_garbage_is_refused_without_parsing_it(ctx: Context) -> None:
    cache = SchemaCache()
    for garbage in (b"\x0a\xff", b"\x0b", b"\x0a\x03\x0a\x05a"):
        with pytest.raises(Exception, match=r"FileDescriptor|no name|not a valid"):
            cache.from_set(garbage)


# --- through the app ----------------------------------------------------------------------


def test_a_base_reload_compiles_only_the_edited_file(tmp_path: Path) -> None:
    files = package_files()
    write_tree(tmp_path, files)
    spec = BaseSpec(sources=[StartupSource(kind="proto_path", value=str(tmp_path))])
    settings = Settings(limits=LimitSettings(compile_workers=2, compile_queue=8), base=spec)
    with run_catalog(app=App(settings)) as cat:
        app = cat.app
        assert app.compiler.size == 2 and app.compiler.max_queue == 8
        cat.call(app.reload_base())
        edit(tmp_path / f"t/p{PACKAGES - 1}/v1/f{PER_PACKAGE - 1}.proto", 3)
        reused = app.loader.context.compiled.reused
        cat.call(app.reload_base())  # what SIGHUP and ReloadBase run
        assert app.loader.context.compiled.reused - reused == len(files) - 1
        assert app.compiler.compiles == 2
        services = httpx.post(
            cat.url + "/catalog.v1.CatalogService/ListServices", json={}, timeout=30
        ).json()["services"]
        assert {s["name"] for s in services} == {f"t.p{k}.v1.Svc" for k in range(PACKAGES)}
        svc = next(s for s in services if s["name"] == "t.p1.v1.Svc")
        assert svc["documentation"] == "Svc serves package 1."  # comments, indexed on lookup
        assert "t.p3.v1.Edited3" in {
            m.full_name
            for m in app.base.schema.pool.FindFileByName(
                f"t/p{PACKAGES - 1}/v1/f{PER_PACKAGE - 1}.proto"
            ).message_types_by_name.values()
        }


# --- folder reads: the stat cache, the import lines ---------------------------------------


def aged(*paths: Path) -> None:
    """Give files an mtime in the past, so the stat cache may keep them."""
    old = time.time() - 60
    for path in paths:
        os.utime(path, (old, old), follow_symlinks=False)
    time.sleep(0.1)  # the ctime is now: past the cache's settle time (50 ms) after this


def aged_tree(root: Path) -> None:
    """Every .proto below `root` aged (see `aged`)."""
    aged(*root.rglob("*.proto"))


def reads_of(root: Path, limits: Limits | None = None) -> tuple[dict[str, bytes], int]:
    """The folder's files and how many of them were read from disk (not the cache)."""
    before = FILES.reads
    files = read_tree(limits or Limits(), root)
    return files, FILES.reads - before


def test_an_unchanged_file_is_not_read_again_and_an_edit_is(tmp_path: Path) -> None:
    write_tree(tmp_path, package_files())
    aged_tree(tmp_path)
    first, read = reads_of(tmp_path)
    assert read == len(first) == PACKAGES * PER_PACKAGE
    again, read = reads_of(tmp_path)
    assert read == 0 and again == first
    leaf = tmp_path / "t/p1/v1/f2.proto"
    edit(leaf, 1)
    edited, read = reads_of(tmp_path)
    assert (
        read == 1 and edited["t/p1/v1/f2.proto"] == leaf.read_bytes() != first["t/p1/v1/f2.proto"]
    )


def test_a_file_changed_just_before_it_was_read_is_not_kept() -> None:
    cache = FileCache()
    now = time.time_ns()
    fine = (1, 2, 3, now - 7_654_321, now - 7_654_321)  # ns timestamps, 7 ms before the read
    cache.put("a", fine, b"abc", read_at=now)
    assert cache.get("a", fine) is None  # a second write in the same tick keeps the key
    cache.put("a", fine, b"abc", read_at=now + 100_000_000)
    assert cache.get("a", fine) == b"abc"
    assert cache.get("a", (1, 2, 4, fine[3], fine[4])) is None  # another key: not this content
    second = 1_000_000_000 * (now // 1_000_000_000 - 1)
    whole = (1, 5, 3, second, second)  # whole seconds (FAT, some network file systems)
    cache.put("b", whole, b"abc", read_at=second + 1_500_000_000)
    assert cache.get("b", whole) is None
    cache.put("b", whole, b"abc", read_at=second + 2_500_000_000)
    assert cache.get("b", whole) == b"abc"


def test_a_content_change_that_keeps_the_mtime_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "a.proto"
    path.write_text('syntax = "proto3";\nmessage A {}\n')
    aged(path)
    mtime = path.stat().st_mtime_ns
    assert reads_of(tmp_path)[1] == 1 and reads_of(tmp_path)[1] == 0
    for text in (
        'syntax = "proto3";\nmessage Bigger {}\n',
        'syntax = "proto3";\nmessage Larger {}\n',
    ):
        path.write_text(text)  # another size, then the same size: the mtime put back both times
        os.utime(path, ns=(mtime, mtime))
        time.sleep(0.1)  # past the settle time: this version may be kept
        files, read = reads_of(tmp_path)
        assert read == 1 and files["a.proto"] == text.encode()
        assert reads_of(tmp_path) == (files, 0)  # kept: the next change must still be seen


def test_a_retargeted_symlink_is_read_again_and_never_out_of_the_folder(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / ".targets").mkdir(parents=True)  # hidden: not walked, only reached by the link
    outside.mkdir()
    one, two = root / ".targets/one.proto", root / ".targets/two.proto"
    secret = outside / "secret.proto"
    one.write_text('syntax = "proto3";\nmessage One {}\n')
    two.write_text('syntax = "proto3";\nmessage Two {}\n')
    secret.write_text('syntax = "proto3";\nmessage Sec {}\n')
    link = root / "link.proto"
    link.symlink_to(one)
    aged(one, two, secret, link)
    assert reads_of(root)[0] == {"link.proto": one.read_bytes()}
    assert reads_of(root)[1] == 0
    link.unlink()
    link.symlink_to(two)  # same size, same mtime as one.proto: another inode
    files, read = reads_of(root)
    assert read == 1 and files == {"link.proto": two.read_bytes()}
    link.unlink()
    link.symlink_to(secret)  # out of the folder: refused however it was cached before
    assert reads_of(root)[0] == {}


def test_a_cached_file_still_counts_against_the_size_limit(tmp_path: Path) -> None:
    write_tree(tmp_path, package_files())
    aged_tree(tmp_path)
    files, _ = reads_of(tmp_path)
    assert reads_of(tmp_path)[1] == 0
    total = sum(len(d) for d in files.values())
    with pytest.raises(LimitError):
        read_tree(Limits(max_bytes=total - 1), tmp_path)


def test_import_lines_are_found_as_the_line_anchored_pattern_finds_them() -> None:
    text = (
        b'import "a.proto";\n  \n\t import public "b.proto" ;\nx import "c.proto";\n'
        b'reimport "d.proto";\n// import "e.proto";\n\r\nimport\n"f.proto";\nimport weak "g.proto";'
    )
    anchored = re.compile(rb'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)
    assert import_names(text) == [m.decode() for m in anchored.findall(text)]
    assert import_names(text) == ["a.proto", "b.proto", "f.proto", "g.proto"]


async def test_a_reload_from_cached_reads_equals_a_full_compile(
    ctx: Context, tmp_path: Path
) -> None:
    files = package_files()
    write_tree(tmp_path, files)
    aged_tree(tmp_path)
    await load_path(ctx, str(tmp_path))
    edit(tmp_path / "t/p2/v1/f1.proto", 4)
    before = FILES.reads
    again = await load_path(ctx, str(tmp_path))
    assert FILES.reads - before == 1  # only the edited file was read
    assert "t.p2.v1.Edited4" in {
        m.full_name
        for m in again.pool.FindFileByName("t/p2/v1/f1.proto").message_types_by_name.values()
    }
    full = await fresh_load(tmp_path)
    assert again.files == full.files and dict(again.comments) == dict(full.comments)


async def test_protoc_is_given_only_what_the_edited_files_import(
    ctx: Context, tmp_path: Path
) -> None:
    files = package_files()
    write_tree(tmp_path, files)
    await load_path(ctx, str(tmp_path))
    edit(tmp_path / f"t/p1/v1/f{PER_PACKAGE - 1}.proto", 5)
    now = read_tree(ctx.limits, tmp_path)
    plan = ctx.compiled.plan(now, sorted(now))
    assert plan.targets == [f"t/p1/v1/f{PER_PACKAGE - 1}.proto"]
    wanted = {f"t/p1/v1/f{f}.proto" for f in range(PER_PACKAGE - 1)}
    wanted |= {f"t/p0/v1/f{f}.proto" for f in range(PER_PACKAGE)}
    given = plan.given()
    assert set(given) == wanted  # p2, p3: not imported, not given
    assert all(given[n] == without_source_info(plan.reuse[n].data) for n in given)


# --- the pool in /metrics -----------------------------------------------------------------


def test_the_compile_pool_is_in_the_metrics(tmp_path: Path) -> None:
    write_tree(tmp_path, package_files())
    settings = Settings(limits=LimitSettings(compile_workers=2, compile_queue=8))
    with run_catalog(app=App(settings)) as cat:
        before = httpx.get(cat.url + "/metrics", timeout=30).text
        r = httpx.post(
            cat.url + "/catalog.v1.CatalogService/LoadProtos",
            json={"protoPath": str(tmp_path)},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        text = httpx.get(cat.url + "/metrics", timeout=30).text
    figures = {
        line.split(" ")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("catalog_compile")
    }
    assert figures["catalog_compile_workers"] == 2
    assert figures["catalog_compile_queue"] == 0 and figures["catalog_compile_workers_busy"] == 0
    assert figures["catalog_compiles_total"] >= 1
    assert figures["catalog_compile_workers_running"] >= 1
    assert (
        figures["catalog_compile_worker_rss_bytes"]
        >= figures["catalog_compile_worker_rss_max_bytes"]
        > 0
    )
    assert figures["catalog_compile_workers_recycled_total"] == 0
    assert "catalog_compile_worker_starts_total" in figures
    assert 'catalog_cache_hits_total{cache="file"}' in text
    assert "catalog_compiles_total 0.0" in before
