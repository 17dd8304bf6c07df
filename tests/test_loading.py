"""The source table (`loading.SOURCES`): complete, read by the API, start-up, the config
file and `--help`; sources swappable through it; and `sources/` layered below it."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from connectrpc_catalog.config import build_parser, load_settings
from connectrpc_catalog.descriptors import EMPTY, Schema, SchemaCache
from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.loading import SOURCE_FIELDS, SOURCES, Loader
from connectrpc_catalog.problems import Code
from connectrpc_catalog.sources.compiler import Compiler
from connectrpc_catalog.sources.core import (
    Context,
    Given,
    LimitError,
    Limits,
    SourceError,
)
from connectrpc_catalog.startup import StartupSource

SOURCES_DIR = Path(__file__).parents[1] / "src" / "connectrpc_catalog" / "sources"
FLAGGED = [kind for kind in SOURCES.values() if kind.flag]


def test_every_api_source_field_has_a_row() -> None:
    (message,) = (m for m in catalog_pb.desc().messages if m.name == "LoadProtosRequest")
    (oneof,) = message.oneofs
    wanted = {field.name: field.json_name for field in oneof.fields}
    assert {k.name: k.field for k in SOURCES.values() if k.field} == wanted
    assert all(field in SOURCE_FIELDS for field in wanted.values())


def test_every_start_up_flag_comes_from_the_table_with_help() -> None:
    text = build_parser().format_help()
    for kind in FLAGGED:
        assert f"{kind.flag} {kind.metavar}" in text
        assert kind.help
    argv = [arg for kind in FLAGGED for arg in (kind.flag, f"value-{kind.dest}")]
    sources = load_settings(argv, env={}).base.sources
    assert [(s.kind, s.value) for s in sources] == [(k.name, f"value-{k.dest}") for k in FLAGGED]
    assert [s.describe() for s in sources] == [f"{k.flag} value-{k.dest}" for k in FLAGGED]


def test_config_file_and_environment_keys_come_from_the_table(tmp_path: Path) -> None:
    config = tmp_path / "catalog.toml"
    config.write_text('buf_module = ["buf.build/acme/a"]\ndescriptor_set = "api.binpb"\n')
    env = {"CONNECTRPC_CATALOG_PROTO_REPO": "github.com/acme/b"}
    sources = load_settings(["--config", str(config)], env=env).base.sources
    assert {(s.kind, s.value) for s in sources} == {
        ("buf_module", "buf.build/acme/a"),
        ("descriptor_set_path", "api.binpb"),
        ("proto_repo", "github.com/acme/b"),
    }


def test_reflection_at_start_up_picks_tls_like_a_target() -> None:
    assert StartupSource(kind="reflection_endpoint", value="api.example.com:443").given().use_tls
    assert not StartupSource(kind="reflection_endpoint", value="localhost:50051").given().use_tls
    explicit = StartupSource(kind="reflection_endpoint", value="localhost:50051", use_tls=True)
    assert explicit.given().use_tls


async def test_the_loader_names_the_field_of_the_source_that_failed(tmp_path: Path) -> None:
    for name in ("a.proto", "b.proto"):
        (tmp_path / name).write_text('syntax = "proto3";\n')
    ctx = Context(SchemaCache(), Compiler(), limits=Limits(max_files=1))
    loader = Loader(ctx)
    with pytest.raises(LimitError) as big:  # raised below files, by the folder walk
        await loader.load("proto_path", Given(value=str(tmp_path)))
    assert (big.value.code, big.value.field) == (Code.RESOURCE_EXHAUSTED, "protoPath")
    with pytest.raises(SourceError) as bad:  # raised by git, which knows its field
        await loader.load("proto_repo", Given(value="-upload-pack=evil"))
    assert (bad.value.code, bad.value.field) == (Code.INVALID_ARGUMENT, "protoRepo")
    with pytest.raises(SourceError) as typed:
        await loader.load("buf_module", Given(value=b"bytes"))
    assert (typed.value.field, typed.value.message) == ("bufModule", "bufModule must be a string")
    with pytest.raises(SourceError) as unknown:
        await loader.load("ftp_site", Given(value="x"))
    assert unknown.value.message.startswith("unknown source ftp_site: set one of protoPath")
    assert ctx.compiler.compiles == 0
    await loader.close()


class _Fixed:
    """A stand-in source: the Protocol is all a table row needs."""

    def __init__(self) -> None:
        self.given: list[Given] = []

    async def load(self, ctx: Context, given: Given, /) -> Schema:
        self.given.append(given)
        return EMPTY


async def test_a_source_is_swapped_by_its_row() -> None:
    fake = _Fixed()
    row = dataclasses.replace(SOURCES["reflection_endpoint"], source=fake)
    loader = Loader(Context(SchemaCache(), Compiler()), {**SOURCES, row.name: row})
    given = Given(value="localhost:1", use_tls=True, server_name="api.test", timeout=3.0)
    assert await loader.load("reflection_endpoint", given) is EMPTY
    assert fake.given == [given]


def _imports(path: Path) -> set[tuple[int, str]]:
    """What a file imports: (relative level, dotted name); level 0 for absolute imports."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add((node.level, node.module))
        elif isinstance(node, ast.ImportFrom):  # from . import buf
            found.update((node.level, alias.name) for alias in node.names)
    return found


def test_sources_sit_below_the_table_and_know_no_connectrpc() -> None:
    modules = sorted(SOURCES_DIR.glob("*.py"))
    assert {p.stem for p in modules} >= {"core", "files", "upload", "buf", "git", "reflection"}
    for path in modules:
        names = {name.split(".")[0] for level, name in _imports(path) if level != 1}
        assert "connectrpc" not in names, path.name
        assert not names & {"loading", "startup", "api", "app", "config"}, path.name
    siblings = {name for level, name in _imports(SOURCES_DIR / "core.py") if level == 1}
    assert siblings <= {"compiler", "incremental", "run"}  # the bottom: it imports no source
