"""Concurrent saves into one collection get distinct positions, and the order they
give stays the same on every read (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import Identity
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import Store

ALICE = Identity(name="alice@example.com", groups=frozenset({"eng"}), via="oidc")
KEY = "a passphrase of enough characters"


async def test_twenty_concurrent_saves_get_distinct_positions(database_url: str) -> None:
    # two stores on one database: two replicas, each with its own connection pool
    first = await Store.open(database_url, Sealer(KEY), everyone=False)
    second = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        coll = await first.save_collection(ALICE, pb.SaveCollectionRequest(name="Race"))
        saves = [
            (first if i % 2 else second).save_request(
                ALICE,
                pb.SavedRequest(
                    collection_id=coll.id, name=f"r{i:02}", service="s.v1.S", method="M"
                ),
            )
            for i in range(20)
        ]
        saved = await asyncio.gather(*saves)
        assert len({r.id for r in saved}) == 20
        positions = [r.position for r in saved]
        assert sorted(positions) == list(range(20)), positions
        async with first.engine.connect() as conn:
            stored = (
                (
                    await conn.execute(
                        text("select position from saved_requests where collection_id = :c"),
                        {"c": coll.id},
                    )
                )
                .scalars()
                .all()
            )
        assert sorted(stored) == list(range(20))
        _, listed, _ = await first.get_collection(ALICE, coll.id)
        order = [r.id for r in listed]
        assert [r.position for r in listed] == list(range(20))
        _, again, _ = await second.get_collection(ALICE, coll.id)
        assert [r.id for r in again] == order  # the same order from the other replica
        # a duplicate and a save racing still leave 22 distinct positions
        await asyncio.gather(
            first.duplicate_request(ALICE, order[3]),
            second.save_request(
                ALICE, pb.SavedRequest(collection_id=coll.id, name="late", service="s", method="M")
            ),
        )
        _, final, _ = await first.get_collection(ALICE, coll.id)
        assert sorted(r.position for r in final) == list(range(22))
    finally:
        await first.close()
        await second.close()
