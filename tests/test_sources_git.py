"""Git repositories as a schema source: a local bare repository with two tags, loaded at
each ref by file:// URL and by short name with a base URL; caching; every failure."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.problems import RequestError
from connectrpc_catalog.sources.compiler import Compiler
from connectrpc_catalog.sources.core import Context, Limits, LoadError
from connectrpc_catalog.sources.git import RepoSpec, load_repo, parse_repo_spec

from .sourcehelp import (
    catalog_with,
    load_failed,
    load_ok,
    load_rejected,
    silent_listener,
    write_tree,
)

V1_PROTO = """syntax = "proto3";
package acme.weather.v1;
// WeatherService reports the weather.
service WeatherService {
  rpc GetCurrent(GetCurrentRequest) returns (Conditions);
}
message GetCurrentRequest { string place = 1; }
message Conditions { double celsius = 1; }
"""
V2_PROTO = V1_PROTO.replace(
    "  rpc GetCurrent(GetCurrentRequest) returns (Conditions);\n",
    "  rpc GetCurrent(GetCurrentRequest) returns (Conditions);\n"
    "  rpc GetForecast(GetCurrentRequest) returns (Conditions);\n",
)
PROTO = "acme/weather/v1/weather.proto"


@dataclass(frozen=True)
class Repo:
    """A bare repository under `base` at `base/github.com/acme/weather.git`."""

    base: Path
    bare: Path
    v1: str
    v2: str

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    @property
    def base_url(self) -> str:
        return self.base.as_uri()


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd or Path.cwd()),
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """Tags v1 (one method, lightweight tag) and v2 (two methods, annotated tag) on main,
    the protos under proto/, plus a branch `big` with a 3 MB file."""
    base = tmp_path_factory.mktemp("srv-git")
    bare = base / "github.com" / "acme" / "weather.git"
    bare.parent.mkdir(parents=True)
    git("init", "-q", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path_factory.mktemp("work")
    git("init", "-q", "--initial-branch=main", cwd=work)
    write_tree(work, {"README.md": "weather\n", f"proto/{PROTO}": V1_PROTO})
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "v1", cwd=work)
    git("tag", "v1", cwd=work)
    v1 = git("rev-parse", "HEAD", cwd=work)
    write_tree(work, {f"proto/{PROTO}": V2_PROTO})
    git("commit", "-q", "-am", "v2", cwd=work)
    git("tag", "-a", "v2", "-m", "release v2", cwd=work)
    v2 = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-q", "-b", "big", cwd=work)
    (work / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "big", cwd=work)
    git("push", "-q", str(bare), "main", "big", "--tags", cwd=work)
    return Repo(base=base, bare=bare, v1=v1, v2=v2)


@pytest.fixture
async def ctx(tmp_path: Path, repo: Repo) -> AsyncIterator[Context]:
    ctx = Context(
        SchemaCache(), Compiler(), git_base_url=repo.base_url, cache_dir=tmp_path / "cache"
    )
    yield ctx
    await ctx.compiler.close()


def methods(schema: object) -> list[str]:
    svc = schema.service("acme.weather.v1.WeatherService")  # type: ignore[attr-defined]
    assert svc is not None
    return sorted(m.name for m in svc.methods)


async def test_each_tag_by_file_url(ctx: Context, repo: Repo) -> None:
    one = await load_repo(ctx, f"{repo.url}//proto@v1")
    two = await load_repo(ctx, f"{repo.url}//proto@v2")
    assert methods(one) == ["GetCurrent"]
    assert methods(two) == ["GetCurrent", "GetForecast"]
    assert one.comments["acme.weather.v1.WeatherService"] == "WeatherService reports the weather."


async def test_short_form_with_base_url(ctx: Context, repo: Repo) -> None:
    one = await load_repo(ctx, "github.com/acme/weather//proto@v1")
    two = await load_repo(ctx, "github.com/acme/weather//proto@v2")
    assert methods(one) == ["GetCurrent"]
    assert methods(two) == ["GetCurrent", "GetForecast"]


async def test_default_branch_branch_name_and_commit_ids(ctx: Context, repo: Repo) -> None:
    assert methods(await load_repo(ctx, "github.com/acme/weather//proto")) == [
        "GetCurrent",
        "GetForecast",
    ]
    assert methods(await load_repo(ctx, "github.com/acme/weather//proto@main")) == [
        "GetCurrent",
        "GetForecast",
    ]
    assert methods(await load_repo(ctx, f"github.com/acme/weather//proto@{repo.v1}")) == [
        "GetCurrent"
    ]
    # a full commit id needs no ls-remote at all
    resolves = ctx.runs["git ls-remote"]
    await load_repo(ctx, f"{repo.url}//proto@{repo.v1}")
    assert ctx.runs["git ls-remote"] == resolves


async def test_second_load_fetches_and_compiles_nothing(ctx: Context, repo: Repo) -> None:
    first = await load_repo(ctx, "github.com/acme/weather//proto@v1")
    fetches, compiles, builds = ctx.runs["git fetch"], ctx.compiler.compiles, ctx.cache.builds
    assert (fetches, compiles) == (1, 1)
    again = await load_repo(ctx, "github.com/acme/weather//proto@v1")
    assert again is first
    assert (ctx.runs["git fetch"], ctx.compiler.compiles, ctx.cache.builds) == (
        fetches,
        compiles,
        builds,
    )
    # the same repository by its full URL at the same commit: the same checkout on disk
    same = await load_repo(ctx, f"{repo.url}//proto@v1")
    assert same is first
    assert ctx.runs["git fetch"] == fetches
    # a new ctx on the same cache folder reuses the checkout without fetching
    fresh = Context(ctx.cache, ctx.compiler, git_base_url=repo.base_url, cache_dir=ctx.work_dir())
    assert await load_repo(fresh, "github.com/acme/weather//proto@v1") is first
    assert fresh.runs["git fetch"] == 0


async def test_checkout_has_no_git_folder_and_temp_cache_is_removed(repo: Repo) -> None:
    ctx = Context(SchemaCache(), Compiler())
    await load_repo(ctx, f"{repo.url}//proto@v1")
    await ctx.compiler.close()
    work = ctx.work_dir()
    checkouts = list((work / "git").iterdir())
    assert len(checkouts) == 1
    assert not (checkouts[0] / ".git").exists()
    assert (checkouts[0] / "proto" / PROTO).is_file()
    await ctx.close()
    assert not work.exists()


async def test_size_cap_stops_the_checkout(repo: Repo, tmp_path: Path) -> None:
    ctx = Context(
        SchemaCache(),
        Compiler(),
        limits=Limits(max_checkout_bytes=1024 * 1024),
        cache_dir=tmp_path,
    )
    with pytest.raises(RequestError) as info:
        await load_repo(ctx, f"{repo.url}@big")
    assert info.value.code.name == "RESOURCE_EXHAUSTED"
    assert "grew past 1 MB" in info.value.message
    assert [p.name for p in (tmp_path / "git").iterdir()] == []  # scratch folder removed


async def test_missing_ref_and_sub_folder(ctx: Context, repo: Repo) -> None:
    with pytest.raises(LoadError) as ref:
        await load_repo(ctx, "github.com/acme/weather@v9")
    assert str(ref.value).startswith("github.com/acme/weather@v9: no branch or tag named 'v9'")
    with pytest.raises(LoadError) as sub:
        await load_repo(ctx, "github.com/acme/weather//protos@v1")
    assert "has no folder or file 'protos' at v1" in str(sub.value)
    with pytest.raises(LoadError) as commit:
        await load_repo(ctx, f"github.com/acme/weather@{'0' * 40}")
    assert f"commit {'0' * 40} was not found" in str(commit.value)


async def test_a_host_that_never_answers_times_out(tmp_path: Path) -> None:
    ctx = Context(SchemaCache(), Compiler(), limits=Limits(git_timeout=1), cache_dir=tmp_path)
    with silent_listener() as endpoint, pytest.raises(RequestError) as info:
        await load_repo(ctx, f"http://{endpoint}/acme/weather.git")
    assert info.value.code.name == "UNAVAILABLE"
    assert f"http://{endpoint}/acme/weather.git did not answer within 1 s" in info.value.message


# --- through the catalog's HTTP API -------------------------------------------------------


def test_load_by_short_name_through_the_api(repo: Repo) -> None:
    with catalog_with(git_base_url=repo.base_url) as running, httpx.Client(timeout=30) as http:
        data, sid = load_ok(http, running.url, {"protoRepo": "github.com/acme/weather//proto@v2"})
        assert data["loadedServices"] == ["acme.weather.v1.WeatherService"]
        # N sessions loading the same source share one Schema object
        _, other = load_ok(http, running.url, {"protoRepo": "github.com/acme/weather//proto@v2"})
        app = running.app
        first, second = app.manager.get(sid), app.manager.get(other)
        assert first is not None and second is not None and first is not second
        assert first.registry.view is second.registry.view  # type: ignore[attr-defined]
        assert app.loader.context.runs["git fetch"] == 1
        assert app.compiler.compiles == 1


def test_missing_repository(catalog_url: str, http: httpx.Client, tmp_path: Path) -> None:
    url = (tmp_path / "nope.git").as_uri()
    error = load_failed(http, catalog_url, {"protoRepo": url})
    assert error.startswith(f"{url}: repository {url} was not found")


def test_missing_ref_through_the_api(catalog_url: str, http: httpx.Client, repo: Repo) -> None:
    error = load_failed(http, catalog_url, {"protoRepo": f"{repo.url}@nope"})
    assert error == f"{repo.url}@nope: no branch or tag named 'nope' in {repo.url}"


def test_unreachable_host_is_unavailable(catalog_url: str, http: httpx.Client) -> None:
    code, message = load_rejected(
        http, catalog_url, {"protoRepo": "https://127.0.0.1:1/acme/weather.git@v1"}
    )
    assert code == "unavailable"
    assert message.startswith("https://127.0.0.1:1/acme/weather.git@v1: ")
    assert "could not be reached" in message


def test_proto_errors_in_a_repository_name_the_file(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    bare = tmp_path / "bad.git"
    git("init", "-q", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "--initial-branch=main", cwd=work)
    write_tree(work, {"x/v1/x.proto": 'syntax = "proto3";\nmessage X { int32 a = 1 }\n'})
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "bad", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    error = load_failed(http, catalog_url, {"protoRepo": bare.as_uri()})
    assert error.startswith("x/v1/x.proto:2:")
    assert str(tmp_path) not in error


@pytest.mark.parametrize(
    ("spec", "wanted"),
    [
        ("", "protoRepo is empty"),
        ("acme/weather", "is not a repository"),
        ("ftp://example.com/acme/weather.git", "scheme ftp:// is not supported"),
        ("github.com/acme/weather//../etc", "must stay inside the repository"),
        ("github.com/acme/weather@-x", "is not a valid branch, tag or commit"),
        ("--upload-pack=evil", "is not valid"),
    ],
)
def test_malformed_specs_are_invalid_arguments(
    catalog_url: str, http: httpx.Client, spec: str, wanted: str
) -> None:
    code, message = load_rejected(http, catalog_url, {"protoRepo": spec})
    assert code == "invalid_argument"
    assert wanted in message


@pytest.mark.parametrize(
    ("spec", "base", "expected"),
    [
        (
            "github.com/acme/weather",
            "",
            RepoSpec("github.com/acme/weather", "https://github.com/acme/weather.git"),
        ),
        (
            "github.com/acme/weather//proto@v1.2.0",
            "https://",
            RepoSpec(
                "github.com/acme/weather//proto@v1.2.0",
                "https://github.com/acme/weather.git",
                "proto",
                "v1.2.0",
            ),
        ),
        (
            "github.com/acme/weather@feature/x",
            "file:///srv/git",
            RepoSpec(
                "github.com/acme/weather@feature/x",
                "file:///srv/git/github.com/acme/weather.git",
                "",
                "feature/x",
            ),
        ),
        (
            "gitlab.example.com/group/sub/repo.git//a/b",
            "https://mirror.example.com/git/",
            RepoSpec(
                "gitlab.example.com/group/sub/repo.git//a/b",
                "https://mirror.example.com/git/gitlab.example.com/group/sub/repo.git",
                "a/b",
            ),
        ),
        (
            "https://user:token@example.com/acme/weather.git//proto@v2",
            "",
            RepoSpec(
                "https://user:token@example.com/acme/weather.git//proto@v2",
                "https://user:token@example.com/acme/weather.git",
                "proto",
                "v2",
            ),
        ),
        (
            "file:///srv/git/acme/weather.git@main//proto",
            "",
            RepoSpec(
                "file:///srv/git/acme/weather.git@main//proto",
                "file:///srv/git/acme/weather.git",
                "proto",
                "main",
            ),
        ),
        (
            "git@github.com:acme/weather.git//proto@v1",
            "",
            RepoSpec(
                "git@github.com:acme/weather.git//proto@v1",
                "git@github.com:acme/weather.git",
                "proto",
                "v1",
            ),
        ),
    ],
)
def test_spec_parsing(spec: str, base: str, expected: RepoSpec) -> None:
    assert parse_repo_spec(spec, base_url=base) == expected


def test_credentials_are_never_shown() -> None:
    spec = parse_repo_spec("https://user:token@example.com/acme/weather.git")
    assert spec.shown_url == "https://***@example.com/acme/weather.git"
