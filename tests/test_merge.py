"""Sources combine by Protobuf's own rules: the same file with and without comments, the
well-known types, the same definitions under two file names, and real conflicts named."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection

from connectrpc_catalog.api.self_reflection import reflection_routes
from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.descriptors import MergeConflict, SchemaCache
from connectrpc_catalog.startup import BaseSpec, StartupSource

from .catalog_server import run_catalog, run_cli
from .protohelp import compile_protos
from .sourcehelp import call, load_failed, load_ok

WEATHER = "acme.weather.v1.WeatherService"
WEATHER_DOC = "WeatherService reports current conditions and forecasts."


def _fds(pool: descriptor_pool.DescriptorPool, names: list[str]) -> bytes:
    out = descriptor_pb2.FileDescriptorSet()
    for name in names:
        pool.FindFileByName(name).CopyToProto(out.file.add())  # no source info
    return out.SerializeToString()


@pytest.fixture(scope="module")
def compiled(
    tmp_path_factory: pytest.TempPathFactory, weather_protos: Path
) -> tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool]:
    sources = {
        p.relative_to(weather_protos).as_posix(): p.read_text()
        for p in sorted(weather_protos.rglob("*.proto"))
    }
    return compile_protos(tmp_path_factory.mktemp("merge"), sources)


@contextlib.contextmanager
def reflecting_server(pool: descriptor_pool.DescriptorPool, services: list[str]) -> Iterator[str]:
    """A grpcio server with v1alpha reflection over `pool` (no comments); yields host:port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    reflection.enable_server_reflection([*services, reflection.SERVICE_NAME], server, pool=pool)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def _pool_with_reflection(
    compiled_pool: descriptor_pool.DescriptorPool,
) -> descriptor_pool.DescriptorPool:
    from grpc_reflection.v1alpha import reflection_pb2

    pool = descriptor_pool.DescriptorPool()
    for name in ("google/protobuf/duration.proto", "google/protobuf/timestamp.proto"):
        proto = descriptor_pb2.FileDescriptorProto()
        compiled_pool.FindFileByName(name).CopyToProto(proto)
        pool.Add(proto)
    for name in ("acme/common/v1/geo.proto", "acme/weather/v1/weather.proto"):
        proto = descriptor_pb2.FileDescriptorProto()
        compiled_pool.FindFileByName(name).CopyToProto(proto)
        pool.Add(proto)
    pool.AddSerializedFile(reflection_pb2.DESCRIPTOR.serialized_pb)
    return pool


# --- the rules, on the merge itself -------------------------------------------------------


def test_same_file_without_comments_merges_and_the_commented_copy_wins(
    compiled: tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool],
) -> None:
    fds, pool = compiled
    cache = SchemaCache()
    bare = cache.from_set(_fds(pool, [f.name for f in fds.file]))
    rich = cache.from_set(fds.SerializeToString())
    assert WEATHER not in bare.comments
    for parts in ((bare, rich), (rich, bare)):
        merged = cache.merge(parts)
        assert merged.comments[WEATHER].startswith(WEATHER_DOC)
        assert merged.service_names == (WEATHER,)


def test_same_definitions_under_two_file_names_are_one(
    compiled: tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool],
    weather_protos: Path,
    tmp_path: Path,
) -> None:
    fds, _ = compiled
    geo = (weather_protos / "acme/common/v1/geo.proto").read_text()
    use = (
        'syntax = "proto3";\npackage extra;\nimport "vendor/geo.proto";\n'
        "message Where { acme.common.v1.LatLng at = 1; }\n"
    )
    moved, _ = compile_protos(tmp_path, {"vendor/geo.proto": geo, "extra/use.proto": use})
    cache = SchemaCache()
    merged = cache.merge(
        (cache.from_set(fds.SerializeToString()), cache.from_set(moved.SerializeToString()))
    )
    assert "vendor/geo.proto" not in merged.file_names
    assert "extra/use.proto" in merged.file_names
    assert merged.service_names == (WEATHER,)
    where = merged.pool.FindMessageTypeByName("extra.Where")
    assert where.fields_by_name["at"].message_type.file.name == "acme/common/v1/geo.proto"
    # a base that already merged them, with the same source loaded on top again
    again = cache.merge((merged, cache.from_set(moved.SerializeToString())))
    assert again.file_names == merged.file_names


def test_a_real_conflict_names_the_file_and_the_symbol(tmp_path: Path) -> None:
    a, _ = compile_protos(
        tmp_path / "a",
        {"x/v1/x.proto": 'syntax = "proto3";\npackage x.v1;\nmessage M { string a = 1; }\n'},
    )
    b, _ = compile_protos(
        tmp_path / "b",
        {"x/v1/x.proto": 'syntax = "proto3";\npackage x.v1;\nmessage M { int32 a = 1; }\n'},
    )
    cache = SchemaCache()
    with pytest.raises(MergeConflict) as info:
        cache.merge((cache.from_set(a.SerializeToString()), cache.from_set(b.SerializeToString())))
    assert info.value.symbol == "x.v1.M"
    assert info.value.first_file == info.value.second_file == "x/v1/x.proto"
    assert (info.value.first, info.value.second) == (0, 1)


# --- through the API ----------------------------------------------------------------------


def _doc(http: httpx.Client, url: str, sid: str) -> str:
    r = call(http, url, "GetServiceSchema", {"serviceName": WEATHER}, sid)
    assert r.status_code == 200, r.text
    doc: str = r.json()["service"].get("documentation", "")
    return doc


def test_folder_then_reflection_then_sets_with_and_without_source_info(
    compiled: tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool],
    weather_protos: Path,
    http: httpx.Client,
) -> None:
    fds, pool = compiled
    with (
        reflecting_server(_pool_with_reflection(pool), [WEATHER]) as endpoint,
        run_catalog() as cat,
    ):
        _, sid = load_ok(http, cat.url, {"protoPath": str(weather_protos)})
        load_ok(http, cat.url, {"reflectionEndpoint": endpoint}, sid)
        import base64

        bare = base64.b64encode(_fds(pool, [f.name for f in fds.file])).decode()
        rich = base64.b64encode(fds.SerializeToString()).decode()
        load_ok(http, cat.url, {"descriptorSet": bare}, sid)
        load_ok(http, cat.url, {"descriptorSet": rich}, sid)
        assert _doc(http, cat.url, sid).startswith(WEATHER_DOC)
        # reflection first, then the files: the comments arrive and show
        _, sid2 = load_ok(http, cat.url, {"reflectionEndpoint": endpoint})
        assert _doc(http, cat.url, sid2) == ""
        load_ok(http, cat.url, {"protoPath": str(weather_protos)}, sid2)
        assert _doc(http, cat.url, sid2).startswith(WEATHER_DOC)


def test_the_catalogs_own_reflection_and_a_grpcio_servers(
    compiled: tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool],
    http: httpx.Client,
) -> None:
    _, pool = compiled
    with (
        reflecting_server(_pool_with_reflection(pool), [WEATHER]) as endpoint,
        run_catalog(AppConfig(extra_routes=reflection_routes())) as cat,
    ):
        own = cat.url.removeprefix("http://")
        _, sid = load_ok(http, cat.url, {"reflectionEndpoint": own})
        load_ok(http, cat.url, {"reflectionEndpoint": endpoint}, sid)
        names = [s["name"] for s in call(http, cat.url, "ListServices", {}, sid).json()["services"]]
        assert names.count("grpc.reflection.v1alpha.ServerReflection") == 1
        assert WEATHER in names and "catalog.v1.CatalogService" in names


def test_a_real_conflict_in_a_session_names_both_sources(
    tmp_path: Path, http: httpx.Client
) -> None:
    for name, body in (("a", "string a = 1;"), ("b", "int32 a = 1;")):
        folder = tmp_path / name / "x" / "v1"
        folder.mkdir(parents=True)
        (folder / "x.proto").write_text(
            f'syntax = "proto3";\npackage x.v1;\nmessage M {{ {body} }}\n'
        )
    with run_catalog() as cat:
        _, sid = load_ok(http, cat.url, {"protoPath": str(tmp_path / "a")})
        r = call(http, cat.url, "LoadProtos", {"protoPath": str(tmp_path / "b")}, sid)
        error = r.json()["error"]
        assert "x/v1/x.proto" in error and "x.v1.M" in error
        assert f"protoPath {tmp_path / 'a'}" in error and f"protoPath {tmp_path / 'b'}" in error
        assert "End session" in error
    spec = BaseSpec(sources=[StartupSource(kind="proto_path", value=str(tmp_path / "a"))])
    with run_catalog(AppConfig(base=spec)) as cat:
        cat.call(cat.app.reload_base())
        error = load_failed(http, cat.url, {"protoPath": str(tmp_path / "b")})
        assert f"--proto {tmp_path / 'a'}" in error and "start-up schema" in error


def test_startup_proto_and_reflect_of_the_same_server_starts_with_comments(
    compiled: tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool],
    weather_protos: Path,
) -> None:
    _, pool = compiled
    with (
        reflecting_server(_pool_with_reflection(pool), [WEATHER]) as endpoint,
        run_cli("--proto", str(weather_protos), "--reflect", endpoint) as (url, _),
    ):
        services = httpx.post(
            url + "/catalog.v1.CatalogService/ListServices", json={}, timeout=30
        ).json()["services"]
        [svc] = [s for s in services if s["name"] == WEATHER]
        assert svc["documentation"].startswith(WEATHER_DOC)


def test_startup_conflict_names_the_flags(tmp_path: Path) -> None:
    from connectrpc_catalog.app import create_app
    from connectrpc_catalog.startup import BaseLoadError

    for name, body in (("a", "string a = 1;"), ("b", "int32 a = 1;")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "x.proto").write_text(
            f'syntax = "proto3";\npackage x.v1;\nmessage M {{ {body} }}\n'
        )
    spec = BaseSpec(
        sources=[
            StartupSource(kind="proto_path", value=str(tmp_path / "a")),
            StartupSource(kind="proto_path", value=str(tmp_path / "b")),
        ]
    )
    with (
        run_catalog(app=create_app(AppConfig(base=spec))) as cat,
        pytest.raises(BaseLoadError) as info,
    ):
        cat.call(cat.app.reload_base())
    text = str(info.value)
    assert f"--proto {tmp_path / 'a'}" in text and f"--proto {tmp_path / 'b'}" in text
    assert "x.v1.M" in text and "drop one --proto" in text
