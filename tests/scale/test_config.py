"""--session-store: URLs accepted from the flag, the environment and the TOML file; an
unusable one fails at start-up naming the setting, without repeating its password."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectrpc_catalog.config import ConfigError, load_settings
from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.session_store import MemoryStore, RedisStore, open_store


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://cache",
        "rediss://user:s3cret@redis.internal:6380/2?ssl_cert_reqs=required",
        "redis://:s3cret@10.0.0.5/15",
    ],
)
def test_store_urls_accepted(url: str) -> None:
    assert load_settings(["--session-store", url], env={}).sessions.store == url


def test_store_from_environment_and_file(tmp_path: Path) -> None:
    env = {"CONNECTRPC_CATALOG_SESSION_STORE": "redis://a:1/3"}
    assert load_settings([], env=env).sessions.store == "redis://a:1/3"
    config = tmp_path / "catalog.toml"
    config.write_text('session-store = "redis://b:2/4"\nsession-store-prefix = "team-a"\n')
    settings = load_settings(["--config", str(config)], env={})
    assert settings.sessions.store == "redis://b:2/4"
    assert settings.sessions.store_prefix == "team-a"
    assert load_settings([], env={}).sessions.store == ""  # in memory by default


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://cache:6379", "is not a store"),
        ("memcached://cache", "is not a store"),
        ("redis://:s3cret@/0", "names no host"),
        ("redis://:s3cret@cache:99999/0", "the port must be a number"),
        ("redis://:s3cret@cache:6379/zero", "the path is the database number"),
        ("redis://:s3cret@cache:6379/0?evil=1", "unknown option(s) evil"),
    ],
)
def test_unusable_store_fails_naming_the_setting(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(["--session-store", url], env={})
    text = str(caught.value)
    assert text.startswith("--session-store") and "[setting session_store]" in text
    assert why in text
    assert "s3cret" not in text


def test_bad_prefix_fails_naming_the_setting() -> None:
    with pytest.raises(
        ConfigError, match=r"session-store-prefix.*\[setting session_store_prefix\]"
    ):
        load_settings(["--session-store-prefix", "has space"], env={})


def test_open_store_picks_the_row() -> None:
    cache = SchemaCache()
    memory = open_store("", prefix="c", ttl=60, cache=cache, clock=lambda: 0.0)
    assert isinstance(memory, MemoryStore) and not memory.shared
    shared = open_store("redis://127.0.0.1:1/0", prefix="c", ttl=60, cache=cache, clock=lambda: 0.0)
    assert isinstance(shared, RedisStore) and shared.shared
    assert shared.refresh_every == 5.0  # min(TTL / 10, 5 s)
    with pytest.raises(Exception, match="session store"):
        shared.check()  # not started: unavailable, never a silent memory store
