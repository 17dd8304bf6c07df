"""Buf modules as a schema source: a local module, a workspace, a proto_path at a module,
caching by content, and the failures (build errors, no Buf CLI, BSR unreachable)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.sources.buf import BufCLI, is_bsr_ref, load_module
from connectrpc_catalog.sources.compiler import Compiler
from connectrpc_catalog.sources.core import Context, Limits, LoadError
from connectrpc_catalog.sources.files import load_path

from .sourcehelp import (
    catalog_with,
    find_buf,
    load_failed,
    load_ok,
    load_rejected,
    requires_buf,
    write_tree,
)

MODULE = {
    "buf.yaml": "version: v2\n",
    "acme/shop/v1/shop.proto": """syntax = "proto3";
package acme.shop.v1;
import "acme/shop/v1/cart.proto";
// ShopService sells things.
service ShopService {
  // Adds an item to the cart.
  rpc AddItem(AddItemRequest) returns (Cart);
}
message AddItemRequest { string sku = 1; }
""",
    "acme/shop/v1/cart.proto": """syntax = "proto3";
package acme.shop.v1;
import "google/protobuf/timestamp.proto";
message Cart { repeated string skus = 1; google.protobuf.Timestamp updated = 2; }
""",
}

WORKSPACE = {
    "buf.yaml": "version: v2\nmodules:\n  - path: api\n  - path: common\n",
    "api/acme/api/v1/api.proto": """syntax = "proto3";
package acme.api.v1;
import "acme/common/v1/ids.proto";
service ApiService { rpc Get(acme.common.v1.Id) returns (acme.common.v1.Id); }
""",
    "common/acme/common/v1/ids.proto": """syntax = "proto3";
package acme.common.v1;
message Id { string value = 1; }
""",
}


@pytest.fixture
async def ctx() -> AsyncIterator[Context]:
    ctx = Context(SchemaCache(), Compiler())
    yield ctx
    await ctx.compiler.close()
    await ctx.close()


@requires_buf
async def test_local_module_with_two_files(tmp_path: Path, ctx: Context) -> None:
    root = write_tree(tmp_path / "shop", MODULE)
    schema = await load_module(ctx, str(root))
    assert schema.service_names == ("acme.shop.v1.ShopService",)
    assert {"acme/shop/v1/shop.proto", "acme/shop/v1/cart.proto"} <= set(schema.file_names)
    assert "google/protobuf/timestamp.proto" in schema.file_names
    assert schema.comments["acme.shop.v1.ShopService"] == "ShopService sells things."
    assert schema.comments["acme.shop.v1.ShopService.AddItem"] == "Adds an item to the cart."
    assert ctx.runs["buf build"] == 1
    assert ctx.compiler.compiles == 0  # built by buf, not protoc


@requires_buf
async def test_workspace_with_two_modules(tmp_path: Path, ctx: Context) -> None:
    root = write_tree(tmp_path / "ws", WORKSPACE)
    schema = await load_module(ctx, str(root))
    assert schema.service_names == ("acme.api.v1.ApiService",)
    assert {"acme/api/v1/api.proto", "acme/common/v1/ids.proto"} <= set(schema.file_names)
    by_buf_yaml = await load_module(ctx, str(root / "buf.yaml"))  # the config file names it too
    assert by_buf_yaml is schema


@requires_buf
async def test_proto_path_at_a_workspace_is_built_with_buf(tmp_path: Path, ctx: Context) -> None:
    # module roots are api/ and common/: a plain compile of the folder could not resolve
    # "acme/common/v1/ids.proto", buf can
    root = write_tree(tmp_path / "ws", WORKSPACE)
    schema = await load_path(ctx, str(root))
    assert schema.service_names == ("acme.api.v1.ApiService",)
    assert ctx.runs["buf build"] == 1


@requires_buf
async def test_second_load_runs_nothing_and_shares_the_schema(tmp_path: Path, ctx: Context) -> None:
    root = write_tree(tmp_path / "shop", MODULE)
    first = await load_module(ctx, str(root))
    builds = ctx.cache.builds
    second = await load_module(ctx, str(root))
    assert second is first
    assert ctx.runs["buf build"] == 1
    assert ctx.cache.builds == builds
    # same content elsewhere: still no new build
    other = write_tree(tmp_path / "copy", MODULE)
    assert await load_module(ctx, str(other)) is first
    assert ctx.runs["buf build"] == 1
    # changed content: built again
    (root / "acme/shop/v1/cart.proto").write_text(
        MODULE["acme/shop/v1/cart.proto"].replace("skus = 1;", "skus = 1; int32 total = 3;")
    )
    changed = await load_module(ctx, str(root))
    assert changed is not first
    assert ctx.runs["buf build"] == 2


@requires_buf
async def test_build_error_names_file_line_and_column(tmp_path: Path, ctx: Context) -> None:
    root = write_tree(
        tmp_path / "bad",
        {
            "buf.yaml": "version: v2\n",
            "x/v1/x.proto": 'syntax = "proto3";\nmessage X { int32 a = 1 }\n',
        },
    )
    with pytest.raises(LoadError) as info:
        await load_module(ctx, str(root))
    message = str(info.value)
    assert message.startswith(f"{root}: buf build failed:")
    assert "x/v1/x.proto:2:25:" in message
    assert str(tmp_path) not in message.split("\n", 1)[1]  # paths relative to the module


def test_proto_path_at_a_module_without_buf_compiles_plainly(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "shop", MODULE)
    with catalog_with(buf=str(tmp_path / "no-such-buf")) as running, httpx.Client() as http:
        data, _ = load_ok(http, running.url, {"protoPath": str(root)})
        assert data["loadedServices"] == ["acme.shop.v1.ShopService"]
        assert running.app.loader.context.runs["buf build"] == 0
        assert running.app.compiler.compiles == 1
        # a workspace needs buf: the plain compile fails and says how to fix it
        ws = write_tree(tmp_path / "ws", WORKSPACE)
        error = load_failed(http, running.url, {"protoPath": str(ws)})
    assert "acme/common/v1/ids.proto" in error
    assert "npm install -g @bufbuild/buf" in error


def test_missing_buf_is_failed_precondition(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "shop", MODULE)
    with catalog_with(buf=str(tmp_path / "no-such-buf")) as running, httpx.Client() as http:
        code, message = load_rejected(http, running.url, {"bufModule": str(root)})
        assert code == "failed_precondition"
        assert "npm install -g @bufbuild/buf" in message
        assert str(tmp_path / "no-such-buf") in message
        code, message = load_rejected(http, running.url, {"bufModule": "buf.build/acme/shop"})
        assert code == "failed_precondition"


async def test_buf_not_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CONNECTRPC_CATALOG_BUF", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    buf = BufCLI()
    assert buf.locate() is None
    with pytest.raises(Exception) as info:
        await buf.require()
    assert "not found on PATH" in str(info.value)
    assert "npm install -g @bufbuild/buf" in str(info.value)


async def test_a_buf_that_hangs_is_stopped(tmp_path: Path) -> None:
    fake = tmp_path / "buf"
    fake.write_text("#!/bin/sh\nsleep 30 &\nsleep 30\n")  # a child too: the group is killed
    fake.chmod(0o755)
    root = write_tree(tmp_path / "shop", MODULE)
    ctx = Context(SchemaCache(), Compiler(), buf=str(fake), limits=Limits(buf_timeout=1))
    started = time.monotonic()
    with pytest.raises(LoadError) as info:
        await load_module(ctx, str(root))
    assert time.monotonic() - started < 10
    assert str(info.value) == f"{root}: buf build did not finish within 1 s"


@requires_buf
def test_bsr_unreachable_is_unavailable(catalog_url: str, http: httpx.Client) -> None:
    # .invalid never resolves (RFC 2606), so this fails the same with or without a network
    code, message = load_rejected(http, catalog_url, {"bufModule": "buf.invalid/acme/shop:v1"})
    assert code == "unavailable"
    assert message.startswith("buf.invalid/acme/shop:v1: the Buf Schema Registry could not")


@requires_buf
def test_build_error_through_the_api(catalog_url: str, http: httpx.Client, tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "bad",
        {"buf.yaml": "version: v2\n", "a.proto": 'syntax = "proto3";\nimport "missing.proto";\n'},
    )
    error = load_failed(http, catalog_url, {"bufModule": str(root)})
    assert "a.proto:2:1:" in error
    assert "missing.proto" in error or "does not exist" in error


@requires_buf
def test_local_module_through_the_api(catalog_url: str, http: httpx.Client, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "shop", MODULE)
    data, _ = load_ok(http, catalog_url, {"bufModule": str(root)})
    assert data["loadedServices"] == ["acme.shop.v1.ShopService"]


@pytest.mark.parametrize(
    ("value", "code", "wanted"),
    [
        ("", "invalid_argument", "bufModule is empty"),
        ("not a module", "invalid_argument", "neither a folder on the catalog server nor a BSR"),
    ],
)
def test_malformed_buf_module(
    catalog_url: str, http: httpx.Client, value: str, code: str, wanted: str
) -> None:
    got, message = load_rejected(http, catalog_url, {"bufModule": value})
    assert (got, wanted in message) == (code, True), message


def test_missing_and_non_module_paths_are_failed_loads(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    error = load_failed(http, catalog_url, {"bufModule": str(tmp_path / "nope")})
    assert error == f"{tmp_path / 'nope'}: no such folder on the catalog server"
    file = tmp_path / "x.proto"
    file.write_text('syntax = "proto3";\n')
    error = load_failed(http, catalog_url, {"bufModule": str(file)})
    assert "not a Buf module" in error


def test_bsr_reference_syntax() -> None:
    assert is_bsr_ref("buf.build/acme/weather")
    assert is_bsr_ref("buf.build/acme/weather:v1.2.0")
    assert is_bsr_ref("bsr.example.com:8443/acme/weather:main")
    assert not is_bsr_ref("acme/weather")
    assert not is_bsr_ref("buf.build/acme")
    assert not is_bsr_ref("buf.build/acme/weather/extra")
    assert not is_bsr_ref("-buf.build/acme/weather")


def test_find_buf_helper_agrees_with_the_cli() -> None:
    found = find_buf()
    assert (found is None) == (BufCLI().locate() is None)
