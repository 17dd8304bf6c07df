"""Descriptor-set files, uploads (files and sets), size limits and the shared compile cache."""

from __future__ import annotations

import asyncio
import base64
import importlib.resources
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.problems import RequestError
from connectrpc_catalog.sources.compiler import Compiler
from connectrpc_catalog.sources.core import Context, Limits, LoadError
from connectrpc_catalog.sources.files import load_path
from connectrpc_catalog.sources.upload import compile_files

from .sourcehelp import call, catalog_with, load_failed, load_ok, load_rejected, write_tree

WKT = str(importlib.resources.files("grpc_tools") / "_proto")

FILES = {
    "acme/common/v1/money.proto": """syntax = "proto3";
package acme.common.v1;
// An amount of money.
message Money { string currency = 1; int64 units = 2; }
""",
    "acme/bank/v1/bank.proto": """syntax = "proto3";
package acme.bank.v1;
import "acme/common/v1/money.proto";
import "google/protobuf/timestamp.proto";
// BankService moves money.
service BankService {
  // Deposits money.
  rpc Deposit(DepositRequest) returns (acme.common.v1.Money);
}
message DepositRequest {
  acme.common.v1.Money amount = 1;
  google.protobuf.Timestamp at = 2;
}
""",
}


def protoc_set(
    tmp: Path,
    files: Mapping[str, str],
    out_name: str,
    *,
    imports: bool = True,
    targets: list[str] | None = None,
) -> Path:
    """A descriptor set made with grpc_tools protoc (source info included)."""
    src = write_tree(tmp / "src", files)
    out = tmp / out_name
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{src}",
        f"-I{WKT}",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *(["--include_imports"] if imports else []),
        *(targets or list(files)),
    ]
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture
async def ctx() -> AsyncIterator[Context]:
    ctx = Context(SchemaCache(), Compiler())
    yield ctx
    await ctx.compiler.close()
    await ctx.close()


# --- descriptor-set files -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".binpb", ".pb", ".protoset", ".desc", ""])
async def test_descriptor_set_file_of_each_kind(tmp_path: Path, ctx: Context, suffix: str) -> None:
    path = protoc_set(tmp_path, FILES, f"bank{suffix}", targets=["acme/bank/v1/bank.proto"])
    schema = await load_path(ctx, str(path))
    assert schema.service_names == ("acme.bank.v1.BankService",)
    assert {
        "acme/bank/v1/bank.proto",
        "acme/common/v1/money.proto",
        "google/protobuf/timestamp.proto",
    } == set(schema.file_names)
    assert schema.comments["acme.bank.v1.BankService.Deposit"] == "Deposits money."
    assert ctx.compiler.compiles == 0  # a set is loaded as it is


async def test_same_set_twice_is_one_schema(tmp_path: Path, ctx: Context) -> None:
    path = protoc_set(tmp_path, FILES, "bank.binpb")
    first = await load_path(ctx, str(path))
    builds = ctx.cache.builds
    assert await load_path(ctx, str(path)) is first
    assert ctx.cache.builds == builds


@pytest.mark.parametrize(
    "content",
    [b"\xff\xff\xff\xff garbage", b"hello, this is not a descriptor set\n", b""],
    ids=["binary", "text", "empty"],
)
async def test_garbage_set_file_is_a_clear_error(
    tmp_path: Path, ctx: Context, content: bytes
) -> None:
    path = tmp_path / "broken.binpb"
    path.write_bytes(content)
    with pytest.raises(LoadError) as info:
        await load_path(ctx, str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "not a serialized" in message


async def test_set_without_its_imports_names_the_missing_file(tmp_path: Path, ctx: Context) -> None:
    path = protoc_set(
        tmp_path, FILES, "bank.binpb", imports=False, targets=["acme/bank/v1/bank.proto"]
    )
    with pytest.raises(LoadError) as info:
        await load_path(ctx, str(path))
    assert "acme/bank/v1/bank.proto imports acme/common/v1/money.proto" in str(info.value)


def test_descriptor_set_file_through_the_api(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    path = protoc_set(tmp_path, FILES, "bank.protoset")
    data, _ = load_ok(http, catalog_url, {"protoPath": str(path)})
    assert data["loadedServices"] == ["acme.bank.v1.BankService"]
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\xfe\xfd")
    error = load_failed(http, catalog_url, {"protoPath": str(garbage)})
    assert error.startswith(f"{garbage}: not a serialized")


# --- uploads ----------------------------------------------------------------------------------


def test_uploaded_files_with_imports(catalog_url: str, http: httpx.Client) -> None:
    data, sid = load_ok(http, catalog_url, {"protoFiles": {"files": FILES}})
    assert data["loadedServices"] == ["acme.bank.v1.BankService"]
    r = call(
        http, catalog_url, "GetServiceSchema", {"serviceName": "acme.bank.v1.BankService"}, sid
    )
    assert r.status_code == 200
    assert "acme.bank.v1.DepositRequest" in r.json()["messageSchemas"]


def test_uploaded_descriptor_set(catalog_url: str, http: httpx.Client, tmp_path: Path) -> None:
    blob = protoc_set(tmp_path, FILES, "bank.binpb").read_bytes()
    data, _ = load_ok(http, catalog_url, {"descriptorSet": base64.b64encode(blob).decode()})
    assert data["loadedServices"] == ["acme.bank.v1.BankService"]
    error = load_failed(
        http, catalog_url, {"descriptorSet": base64.b64encode(b"\xff\xff\xff").decode()}
    )
    assert error.startswith("uploaded descriptor set: not a serialized")


@pytest.mark.parametrize(
    "name", ["../escape.proto", "a/../../escape.proto", "/etc/abs.proto", "..\\win.proto"]
)
def test_upload_paths_must_stay_inside(catalog_url: str, http: httpx.Client, name: str) -> None:
    code, message = load_rejected(
        http, catalog_url, {"protoFiles": {"files": {name: 'syntax = "proto3";\n'}}}
    )
    assert code == "invalid_argument"
    assert "must be a relative path inside the upload" in message


def test_upload_compile_error_has_file_line_and_column(
    catalog_url: str, http: httpx.Client
) -> None:
    files = {
        "acme/x/v1/x.proto": 'syntax = "proto3";\npackage acme.x.v1;\nmessage X { int32 a = 1 }\n'
    }
    error = load_failed(http, catalog_url, {"protoFiles": {"files": files}})
    assert error.startswith("acme/x/v1/x.proto:3:")
    line, col = error.split(":")[1:3]
    assert line == "3" and col.isdigit()


def test_upload_missing_import_is_named(catalog_url: str, http: httpx.Client) -> None:
    files = {"a.proto": 'syntax = "proto3";\nimport "acme/missing.proto";\n'}
    error = load_failed(http, catalog_url, {"protoFiles": {"files": files}})
    assert "acme/missing.proto" in error


def test_empty_uploads_are_invalid(catalog_url: str, http: httpx.Client) -> None:
    code, _ = load_rejected(http, catalog_url, {"protoFiles": {"files": {}}})
    assert code == "invalid_argument"
    code, message = load_rejected(http, catalog_url, {"descriptorSet": ""})
    assert code == "invalid_argument"
    assert "descriptorSet is empty" in message


def test_size_limits_are_resource_exhausted(tmp_path: Path) -> None:
    limits = Limits(max_files=3, max_bytes=2000)
    big = {"big.proto": 'syntax = "proto3";\n' + "// padding\n" * 300}
    many = {f"f{i}.proto": 'syntax = "proto3";\n' for i in range(4)}
    folder = write_tree(tmp_path / "many", many)
    big_set = tmp_path / "big.binpb"
    big_set.write_bytes(b"\x0a" + b"\x00" * 3000)
    with catalog_with(limits=limits) as running, httpx.Client(timeout=30) as http:
        url = running.url
        cases: list[tuple[dict[str, Any], str]] = [
            ({"protoFiles": {"files": big}}, "past the limit of 3 files or 2000 bytes"),
            ({"protoFiles": {"files": many}}, "4 files"),
            ({"descriptorSet": base64.b64encode(b"\x0a" * 2001).decode()}, "2001 bytes"),
            ({"protoPath": str(folder)}, "more than 3 .proto files"),
            ({"protoPath": str(big_set)}, "the limit is 2000 bytes"),
        ]
        for body, wanted in cases:
            code, message = load_rejected(http, url, body)
            assert code == "resource_exhausted", (body, message)
            assert wanted in message, message
        # within the limits the same catalog loads fine
        small = {
            "ok.proto": 'syntax = "proto3";\nservice Ok { rpc Ping(P) returns (P); }\n'
            "message P {}\n"
        }
        data, _ = load_ok(http, url, {"protoFiles": {"files": small}})
        assert data["loadedServices"] == ["Ok"]


# --- the shared compile cache ---------------------------------------------------------------


def test_n_sessions_share_one_schema_and_one_compile() -> None:
    with catalog_with() as running, httpx.Client(timeout=30) as http:
        sids = [load_ok(http, running.url, {"protoFiles": {"files": FILES}})[1] for _ in range(5)]
        app = running.app
        assert len(set(sids)) == 5
        assert app.compiler.compiles == 1
        views = [app.manager.get(sid).registry.view for sid in sids]  # type: ignore[union-attr]
        assert all(v is views[0] for v in views)
        # different content compiles again
        changed = {**FILES, "extra.proto": 'syntax = "proto3";\nmessage Extra {}\n'}
        load_ok(http, running.url, {"protoFiles": {"files": changed}})
        assert app.compiler.compiles == 2


async def test_concurrent_identical_loads_compile_once(ctx: Context) -> None:
    files = {k: v.encode() for k, v in FILES.items()}
    results = await asyncio.gather(*(compile_files(ctx, files) for _ in range(8)))
    assert ctx.compiler.compiles == 1
    assert all(r is results[0] for r in results)


async def test_compile_cache_evicts_least_recently_used() -> None:
    ctx = Context(SchemaCache(), Compiler(), max_compiled=1)
    try:
        a = {"a.proto": b'syntax = "proto3";\nmessage A {}\n'}
        b = {"b.proto": b'syntax = "proto3";\nmessage B {}\n'}
        await compile_files(ctx, a)
        await compile_files(ctx, a)
        assert ctx.compiler.compiles == 1
        await compile_files(ctx, b)
        schema = await compile_files(ctx, a)  # evicted from the memo of loads...
        assert ctx.compiler.compiles == 2  # ...but its compiled file is kept (incremental)
        assert ctx.compiled.reused == 1
        assert schema.service_names == () and "a.proto" in schema.files
    finally:
        await ctx.compiler.close()


async def test_failed_compile_is_not_cached(ctx: Context) -> None:
    bad = {"bad.proto": b'syntax = "proto3";\nmessage {}\n'}
    for _ in range(2):
        with pytest.raises(LoadError):
            await compile_files(ctx, bad)
    assert ctx.compiler.compiles == 2


async def test_oversized_folder_is_refused_before_reading(tmp_path: Path) -> None:
    ctx = Context(SchemaCache(), Compiler(), limits=Limits(max_files=2))
    write_tree(tmp_path, {f"d{i}/x.proto": 'syntax = "proto3";\n' for i in range(5)})
    with pytest.raises(RequestError) as info:
        await load_path(ctx, str(tmp_path))
    assert info.value.code.name == "RESOURCE_EXHAUSTED"
    assert ctx.compiler.compiles == 0
