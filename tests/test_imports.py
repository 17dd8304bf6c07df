"""Import roots found for the user: a folder too deep, a single nested file from
googleapis-common-protos, individual uploads, explicit import paths, --proto-root, and a
missing import named with the folder that has it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.sources.compiler import Compiler
from connectrpc_catalog.sources.core import Context, Given, LoadError
from connectrpc_catalog.sources.files import load_path

from .sourcehelp import load_failed, load_ok

WEATHER = "acme.weather.v1.WeatherService"


def _site_packages() -> Path:
    spec = importlib.util.find_spec("google.longrunning")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))).parent.parent


def test_a_folder_one_level_too_deep_finds_the_root(
    catalog_url: str, http: httpx.Client, weather_protos: Path
) -> None:
    deep = weather_protos / "acme" / "weather"
    data, _ = load_ok(http, catalog_url, {"protoPath": str(deep)})
    assert data["loadedServices"] == [WEATHER]
    assert data["importRoot"] == str(weather_protos)
    # the right folder needs no search, and says nothing
    data, _ = load_ok(http, catalog_url, {"protoPath": str(weather_protos)})
    assert "importRoot" not in data


def test_a_single_nested_file_from_googleapis_common_protos(
    catalog_url: str, http: httpx.Client
) -> None:
    root = _site_packages()
    path = root / "google" / "longrunning" / "operations_proto.proto"
    data, _ = load_ok(http, catalog_url, {"protoPath": str(path)})
    assert "google.longrunning.Operations" in data["loadedServices"]
    assert data["importRoot"] == str(root)


def test_individual_uploaded_files_resolve_their_imports(
    catalog_url: str, http: httpx.Client, weather_protos: Path
) -> None:
    files = {
        "geo.proto": (weather_protos / "acme/common/v1/geo.proto").read_text(),
        "weather.proto": (weather_protos / "acme/weather/v1/weather.proto").read_text(),
    }
    data, _ = load_ok(http, catalog_url, {"protoFiles": {"files": files}})
    assert data["loadedServices"] == [WEATHER]
    assert data["placedFiles"] == ["geo.proto -> acme/common/v1/geo.proto"]
    error = load_failed(
        http, catalog_url, {"protoFiles": {"files": {"weather.proto": files["weather.proto"]}}}
    )
    assert "weather.proto imports 'acme/common/v1/geo.proto'" in error
    assert "not among the uploaded files" in error


def test_a_missing_import_names_the_nearest_folder_that_has_it(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "third_party" / "lib").mkdir(parents=True)
    (tmp_path / "third_party" / "lib" / "y.proto").write_text(
        'syntax = "proto3";\npackage lib;\nmessage Y {}\n'
    )
    (tmp_path / "app" / "x.proto").write_text(
        'syntax = "proto3";\npackage app;\nimport "lib/y.proto";\n'
        "service S { rpc Get(lib.Y) returns (lib.Y); }\n"
    )
    error = load_failed(http, catalog_url, {"protoPath": str(tmp_path / "app")})
    assert "x.proto imports 'lib/y.proto'" in error
    assert f"the nearest folder that has it is {tmp_path / 'third_party'}" in error
    assert "importPaths" in error
    data, _ = load_ok(
        http,
        catalog_url,
        {"protoPath": str(tmp_path / "app"), "importPaths": [str(tmp_path / "third_party")]},
    )
    assert data["loadedServices"] == ["app.S"]


async def test_the_search_stays_inside_the_proto_root(weather_protos: Path) -> None:
    deep = weather_protos / "acme" / "weather"
    ctx = Context(SchemaCache(), Compiler(), proto_roots=[deep])
    try:
        with pytest.raises(LoadError) as info:
            await load_path(ctx, str(deep))
        assert "inside the --proto-root folders" in str(info.value)
        assert str(weather_protos) + ":" not in str(info.value)  # names no folder outside
        ok = Context(SchemaCache(), Compiler(), proto_roots=[weather_protos])
        try:
            schema = await load_path(ok, str(deep), given=Given(value=str(deep)))
            assert WEATHER in schema.service_names
        finally:
            await ok.compiler.close()
    finally:
        await ctx.compiler.close()


def test_shipped_imports_resolve_without_the_users_copy(
    catalog_url: str, http: httpx.Client
) -> None:
    text = (
        'syntax = "proto3";\npackage v;\nimport "buf/validate/validate.proto";\n'
        'import "google/api/annotations.proto";\n'
        "message R { string name = 1 [(buf.validate.field).string.min_len = 1]; }\n"
        'service S { rpc Get(R) returns (R) { option (google.api.http) = { get: "/r" }; } }\n'
    )
    data, _ = load_ok(http, catalog_url, {"protoFiles": {"files": {"v.proto": text}}})
    assert data["loadedServices"] == ["v.S"]


def test_import_path_at_start_up(tmp_path: Path) -> None:
    from .catalog_server import run_cli

    (tmp_path / "app").mkdir()
    (tmp_path / "third_party" / "lib").mkdir(parents=True)
    (tmp_path / "third_party" / "lib" / "y.proto").write_text(
        'syntax = "proto3";\npackage lib;\nmessage Y {}\n'
    )
    (tmp_path / "app" / "x.proto").write_text(
        'syntax = "proto3";\npackage app;\nimport "lib/y.proto";\n'
        "service S { rpc Get(lib.Y) returns (lib.Y); }\n"
    )
    args = ("--proto", str(tmp_path / "app"), "--import-path", str(tmp_path / "third_party"))
    with run_cli(*args) as (url, _):
        r = httpx.post(url + "/catalog.v1.CatalogService/ListServices", json={}, timeout=30)
        assert [s["name"] for s in r.json()["services"]] == ["app.S"]


async def test_the_callers_folders_bound_the_search(weather_protos: Path, tmp_path: Path) -> None:
    from connectrpc_catalog.identity import Identity
    from connectrpc_catalog.policy import AccessPolicy

    deep = weather_protos / "acme" / "weather"
    policy = AccessPolicy.build(group_roots=[("team", str(deep))])
    assert policy.read_roots(Identity(name="a", groups=frozenset({"team"}))) == (
        str(deep.resolve()),
    )
    assert AccessPolicy.build(permissive=True).read_roots(Identity(name="a")) is None
    ctx = Context(SchemaCache(), Compiler())  # no --proto-root: only the caller's bound it
    try:
        bounded = Given(value=str(deep), read_roots=(str(deep),))
        with pytest.raises(LoadError) as info:
            await load_path(ctx, str(deep), given=bounded)
        assert str(weather_protos) + ":" not in str(info.value)
        wider = Given(value=str(deep), read_roots=(str(weather_protos),))
        assert WEATHER in (await load_path(ctx, str(deep), given=wider)).service_names
    finally:
        await ctx.compiler.close()


def test_the_root_found_is_kept_and_searched_again_when_it_stops_working(tmp_path: Path) -> None:
    from connectrpc_catalog.sources import imports
    from connectrpc_catalog.sources.core import Limits

    common = 'syntax = "proto3";\npackage acme.common.v1;\nmessage C {}\n'
    api = (
        'syntax = "proto3";\npackage acme.api.v1;\nimport "acme/common/v1/c.proto";\n'
        "message A { acme.common.v1.C c = 1; }\n"
    )
    repo = tmp_path / "repo"
    folder = repo / "acme/api/v1"
    folder.mkdir(parents=True)
    (folder / "a.proto").write_text(api)
    dep = repo / "acme/common/v1/c.proto"
    dep.parent.mkdir(parents=True)
    dep.write_text(common)
    files = {"a.proto": api.encode()}

    def found() -> imports.Resolved:
        return imports.resolve(Limits(), folder, files, ["a.proto"], shown="the folder")

    first = found()
    assert first.root == repo and first.targets == ["acme/api/v1/a.proto"]
    assert repo in imports._ROOTS.values()
    assert found() == first  # from the kept root, checked again
    dep.unlink()  # the kept root no longer has the import: searched for again
    above = tmp_path / "acme/common/v1/c.proto"
    above.parent.mkdir(parents=True)
    above.write_text(common)
    moved = found()
    assert moved.root == tmp_path and moved.targets == ["repo/acme/api/v1/a.proto"]
    imports._ROOTS.clear()
    assert found() == moved  # what a search from nothing finds
    above.unlink()
    with pytest.raises(LoadError) as info:
        found()
    assert "acme/common/v1/c.proto" in str(info.value)
