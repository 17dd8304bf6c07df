"""Saved requests have a byte budget (`--max-saved-bytes-per-identity`): the security
review found no bound on what one identity could store (2,000 requests of up to 96 MiB
each per collection, 500 collections) nor so on one GetCollection answer. Each identity's
writes and each collection's contents are bounded; a save past either is
resource_exhausted naming the setting. A real catalog (proxy sign-in, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.config import ConfigError, load_settings
from connectrpc_catalog.settings import AuthSettings, SavedSettings
from tests.catalog_server import RunningCatalog, run_catalog
from tests.saved.conftest import database_url

__all__ = ["database_url"]  # a fixture from tests/saved

API = "/catalog.v1.CollectionService/"
QUOTA = 20_000
PROXY = AuthSettings(
    mode="proxy", trusted_proxies=("127.0.0.1/32",), groups_header="X-Forwarded-Groups"
)


def who(name: str) -> dict[str, str]:
    return {"x-forwarded-email": f"{name}@example.com", "x-forwarded-groups": "eng"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCatalog]:
    folder = tmp_path_factory.mktemp("saved-quota")
    config = AppConfig(
        auth=PROXY,
        saved=SavedSettings(
            database=f"sqlite:///{folder / 'saved.db'}", max_saved_bytes_per_identity=QUOTA
        ),
    )
    with run_catalog(config) as c:
        yield c


def rpc(c: RunningCatalog, method: str, body: dict[str, Any], name: str) -> httpx.Response:
    return httpx.post(c.url + API + method, json=body, headers=who(name), timeout=60)


def save(c: RunningCatalog, name: str, cid: str, rid: str = "") -> httpx.Response:
    big = '{"location": {"city": "' + "x" * 6000 + '"}}'  # ~6,100 bytes stored
    request = {"collectionId": cid, "name": "big", "requestMessagesJson": [big]}
    return rpc(c, "SaveRequest", {"request": {**request, **({"id": rid} if rid else {})}}, name)


def collection(c: RunningCatalog, name: str, team: str = "", label: str = "") -> str:
    r = rpc(c, "SaveCollection", {"name": f"{name}-{team}-{label}", "team": team}, name)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def refused(r: httpx.Response) -> str:
    assert r.status_code == 429 and r.json()["code"] == "resource_exhausted", r.text
    message = str(r.json()["message"])
    assert "--max-saved-bytes-per-identity" in message and str(QUOTA) in message
    return message


def test_one_identity_cannot_store_past_its_quota(catalog: RunningCatalog) -> None:
    mine = collection(catalog, "alice")
    ids = []
    for _ in range(3):
        r = save(catalog, "alice", mine)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    assert "your saved requests" in refused(save(catalog, "alice", mine))
    assert "your saved requests" in refused(
        rpc(catalog, "DuplicateRequest", {"id": ids[0]}, "alice")
    )
    # A quota spread over collections is still one quota.
    assert "your saved requests" in refused(
        save(catalog, "alice", collection(catalog, "alice", label="second"))
    )
    # Rewriting a saved request replaces its bytes: still room for it.
    assert save(catalog, "alice", mine, ids[0]).status_code == 200
    # Another identity has its own quota; deleting makes room again.
    assert save(catalog, "bob", collection(catalog, "bob")).status_code == 200
    assert rpc(catalog, "DeleteRequest", {"id": ids[1]}, "alice").status_code == 200
    assert save(catalog, "alice", mine).status_code == 200


def test_one_collection_cannot_hold_past_the_bound(catalog: RunningCatalog) -> None:
    """A team collection written by several identities, each within its own quota, is
    bounded too: so a GetCollection answer is at most the setting's bytes of requests."""
    team = collection(catalog, "carol", "eng")
    for name in ("carol", "carol", "dave"):
        assert save(catalog, name, team).status_code == 200
    assert "the collection's requests" in refused(save(catalog, "dave", team))
    got = rpc(catalog, "GetCollection", {"id": team}, "dave")
    assert got.status_code == 200 and len(got.json()["requests"]) == 3
    assert len(got.content) < QUOTA * 2


def test_max_saved_bytes_is_a_setting_checked_at_start_up() -> None:
    assert load_settings([], env={}).saved.max_saved_bytes_per_identity == 64 << 20
    env = {"CONNECTRPC_CATALOG_MAX_SAVED_BYTES_PER_IDENTITY": "1000"}
    assert load_settings([], env=env).saved.max_saved_bytes_per_identity == 1000
    with pytest.raises(ConfigError, match="max_saved_bytes_per_identity"):
        load_settings([], env={"CONNECTRPC_CATALOG_MAX_SAVED_BYTES_PER_IDENTITY": "0"})


async def test_the_quota_holds_on_every_database(database_url: str) -> None:
    """The same bound through the store on SQLite and PostgreSQL (SQL `length()`)."""
    from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
    from connectrpc_catalog.identity import Identity
    from connectrpc_catalog.saved.secrets import Sealer
    from connectrpc_catalog.saved.shapes import TooMany
    from connectrpc_catalog.saved.store import Store

    erin = Identity(name="erin@example.com", groups=frozenset(), via="proxy")
    store = await Store.open(database_url, Sealer(""), max_saved_bytes=QUOTA)
    try:
        made = await store.save_collection(erin, pb.SaveCollectionRequest(name="big"))
        big = '{"location": {"city": "' + "é" * 6000 + '"}}'
        req = pb.SavedRequest(collection_id=made.id, name="big", request_messages_json=[big])
        for _ in range(3):
            await store.save_request(erin, req)
        with pytest.raises(TooMany, match="--max-saved-bytes-per-identity"):
            await store.save_request(erin, req)
    finally:
        await store.close()


async def test_a_0001_database_gets_its_sizes_counted(database_url: str) -> None:
    """Requests saved before the budget existed count too: migration 0002 fills in each
    row's size from its body and description."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import Connection, text

    from connectrpc_catalog.saved import db
    from connectrpc_catalog.saved.secrets import Sealer
    from connectrpc_catalog.saved.store import Store

    def to_0001(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(db.MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")

    engine = db.open_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(to_0001)
        await conn.execute(
            text(
                "INSERT INTO saved_collections VALUES "
                "('c1', 'old', '', 'proxy:old@x', '', '', 0, 0)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO saved_requests VALUES ('r1', 'c1', 0, '', 'r', :d, '', '', '', "
                "'grpc', :b, 'proxy:old@x', 0)"
            ),
            {"d": "d" * 5000, "b": "{" + " " * 14_998 + "}"},
        )
    await engine.dispose()
    store = await Store.open(database_url, Sealer(""), max_saved_bytes=QUOTA)
    try:
        async with store.engine.connect() as conn:
            size = (await conn.execute(text("SELECT size FROM saved_requests"))).scalar()
        assert size == 20_000
        from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
        from connectrpc_catalog.identity import Identity
        from connectrpc_catalog.saved.shapes import TooMany

        old = Identity(name="old@x", groups=frozenset(), via="proxy")
        with pytest.raises(TooMany, match="your saved requests would hold 20"):
            await store.save_request(old, pb.SavedRequest(collection_id="c1", name="more"))
    finally:
        await store.close()
