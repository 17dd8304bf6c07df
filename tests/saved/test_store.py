"""The store on SQLite and on the real PostgreSQL: migrations from empty, CRUD, the
access rules (personal vs team, from the identity), and secrets sealed and masked."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import Identity
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import NotFound, Store

ALICE = Identity(name="alice@example.com", groups=frozenset({"eng"}), via="oidc")
BOB = Identity(name="bob@example.com", groups=frozenset({"eng", "ops"}), via="oidc")
CAROL = Identity(name="carol@example.com", groups=frozenset({"sales"}), via="oidc")
KEY = "a passphrase of enough characters"


def _request(cid: str, name: str = "Lisbon now") -> pb.SavedRequest:
    return pb.SavedRequest(
        collection_id=cid,
        name=name,
        service="weather.v1.WeatherService",
        method="GetCurrentConditions",
        endpoint="{{host}}",
        transport=catalog_pb.Transport.GRPC,
        metadata={"x-city": "{{city}}"},
        request_messages_json=['{"location": {"city": "{{city}}"}}'],
        assertions=[pb.Assertion(kind="status", op="eq", value="OK")],
    )


async def test_migrations_from_empty(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        async with store.engine.connect() as conn:
            version = (
                await conn.execute(text("select version_num from saved_alembic_version"))
            ).scalar()
            assert version == "0002"
            for table in ("saved_collections", "saved_requests", "saved_environments"):
                count = (await conn.execute(text(f"select count(*) from {table}"))).scalar()
                assert count == 0
    finally:
        await store.close()
    again = await Store.open(database_url, Sealer(KEY))  # a current database: a no-op
    assert await again.list_collections(ALICE) == []
    await again.close()


async def test_crud_reorder_duplicate(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        coll = await store.save_collection(ALICE, pb.SaveCollectionRequest(name="Mine"))
        assert coll.personal and coll.team == ""
        first = await store.save_request(ALICE, _request(coll.id, "first"))
        second = await store.save_request(ALICE, _request(coll.id, "second"))
        assert (first.position, second.position) == (0, 1)
        first.description = "edited"
        first.folder = "weather/now"
        edited = await store.save_request(ALICE, first)
        assert edited.id == first.id and edited.description == "edited"
        copy = await store.duplicate_request(ALICE, first.id)
        assert (
            copy.name == "first copy" and copy.request_messages_json == first.request_messages_json
        )
        _, reqs, _ = await store.get_collection(ALICE, coll.id)
        assert [r.name for r in reqs] == ["first", "first copy", "second"]
        ids = [reqs[2].id, reqs[0].id, reqs[1].id]
        await store.reorder(ALICE, coll.id, ids)
        _, reqs, _ = await store.get_collection(ALICE, coll.id)
        assert [r.id for r in reqs] == ids
        assert reqs[1].folder == "weather/now" and reqs[1].metadata == {"x-city": "{{city}}"}
        with pytest.raises(RequestError) as bad:
            await store.reorder(ALICE, coll.id, ids[:2])
        assert bad.value.code is Code.INVALID_ARGUMENT
        assert await store.delete_request(ALICE, copy.id)
        renamed = await store.save_collection(
            ALICE, pb.SaveCollectionRequest(id=coll.id, name="Renamed")
        )
        assert renamed.name == "Renamed" and renamed.request_count == 2
        assert await store.delete_collection(ALICE, coll.id)
        assert await store.list_collections(ALICE) == []
    finally:
        await store.close()


async def test_access_rules(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        mine = await store.save_collection(ALICE, pb.SaveCollectionRequest(name="Alice's"))
        team = await store.save_collection(ALICE, pb.SaveCollectionRequest(name="Eng", team="eng"))
        req = await store.save_request(ALICE, _request(team.id))
        # Bob is in eng: he sees the team's, not Alice's personal one.
        assert [c.name for c in await store.list_collections(BOB)] == ["Eng"]
        with pytest.raises(NotFound):
            await store.get_collection(BOB, mine.id)
        with pytest.raises(NotFound):
            await store.save_request(BOB, _request(mine.id))
        # ...and may edit the team's requests.
        req.description = "by bob"
        assert (await store.save_request(BOB, req)).description == "by bob"
        # Carol is not in eng: nothing, and the team's request id is unknown to her.
        assert await store.list_collections(CAROL) == []
        for attempt in (
            store.get_collection(CAROL, team.id),
            store.delete_request(CAROL, req.id),
            store.duplicate_request(CAROL, req.id),
            store.delete_collection(CAROL, team.id),
        ):
            with pytest.raises(NotFound):
                await attempt
        # Nobody shares with a group they are not in, nor with everyone under sign-in.
        for group in ("sales", "*"):
            with pytest.raises(RequestError) as refused:
                await store.save_collection(ALICE, pb.SaveCollectionRequest(name="x", team=group))
            assert refused.value.code is Code.PERMISSION_DENIED
        assert store.teams(ALICE) == ["eng"]
    finally:
        await store.close()
    open_store = await Store.open(database_url, Sealer(KEY), everyone=True)
    try:
        anyone = Identity(name="anonymous")
        shared = await open_store.save_collection(
            anyone, pb.SaveCollectionRequest(name="All", team="*")
        )
        assert shared.id in [c.id for c in await open_store.list_collections(CAROL)]
    finally:
        await open_store.close()


async def test_secrets_sealed_and_masked(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        coll = await store.save_collection(ALICE, pb.SaveCollectionRequest(name="S"))
        env = pb.Environment(
            collection_id=coll.id,
            name="staging",
            variables=[
                pb.Variable(name="host", value="127.0.0.1:1"),
                pb.Variable(name="password", value="hunter2-very-secret", secret=True),
            ],
            auth=pb.AuthHelper(kind="bearer", token="tok-abcdef-123456"),
            tls=pb.EnvironmentTls(client_key_pem="-----BEGIN KEY----- secretkey"),
        )
        saved = await store.save_environment(ALICE, env)
        shown = saved.to_json()
        for secret in ("hunter2-very-secret", "tok-abcdef-123456", "secretkey"):
            assert secret not in shown
        password = next(v for v in saved.variables if v.name == "password")
        assert password.value == "" and password.value_set and password.secret
        assert saved.auth is not None and saved.auth.secrets_set == ["token"]
        assert saved.tls is not None and saved.tls.client_key_set
        async with store.engine.connect() as conn:
            raw = (await conn.execute(text("select body from saved_environments"))).scalar()
        assert "hunter2" not in raw and "tok-abcdef" not in raw and "fernet:" in raw
        # An update that sends the secrets empty keeps them.
        saved.variables[0].value = "127.0.0.1:2"
        assert saved.auth is not None
        saved.auth.token = ""
        await store.save_environment(ALICE, saved)
        resolved = await store.resolve_environment(ALICE, coll.id, "staging")
        assert resolved.variables == {"host": "127.0.0.1:2", "password": "hunter2-very-secret"}
        assert resolved.auth.token == "tok-abcdef-123456"
        assert resolved.tls.client_key_pem.endswith("secretkey")
        _, _, envs = await store.get_collection(ALICE, coll.id)
        assert "hunter2" not in json.dumps([e.to_json() for e in envs])
    finally:
        await store.close()
    keyless = await Store.open(database_url, Sealer(""), everyone=False)
    try:
        with pytest.raises(RequestError) as no_key:
            await keyless.save_environment(
                ALICE,
                pb.Environment(
                    collection_id=coll.id,
                    name="prod",
                    variables=[pb.Variable(name="p", value="x", secret=True)],
                ),
            )
        assert (
            no_key.value.code is Code.FAILED_PRECONDITION and "--secret-key" in no_key.value.message
        )
        with pytest.raises(RequestError) as cannot_open:
            await keyless.resolve_environment(ALICE, coll.id, "staging")
        assert cannot_open.value.code is Code.FAILED_PRECONDITION
    finally:
        await keyless.close()


async def test_replicas_migrate_together(database_url: str) -> None:
    """Several processes (here: engines) opening a new database at once: one migrates,
    the others wait for it and find the tables made."""
    import asyncio

    stores = await asyncio.gather(*(Store.open(database_url, Sealer(KEY)) for _ in range(4)))
    try:
        made = await stores[0].save_collection(ALICE, pb.SaveCollectionRequest(name="one"))
        assert [c.id for c in await stores[3].list_collections(ALICE)] == [made.id]
    finally:
        for store in stores:
            await store.close()
