"""Paging of ListCollections and GetCollection in the store, on SQLite and on the real
PostgreSQL: every item once and in order, stable under inserts, reorders and deletes
between pages, page tokens that only work for their listing and caller, and sizes."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import Identity
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.saved.files import Imported
from connectrpc_catalog.saved.paging import MAX_PAGE, PAGE, Tokens, page_size
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import Store

ALICE = Identity(name="alice@example.com", groups=frozenset({"eng"}), via="oidc")
BOB = Identity(name="bob@example.com", groups=frozenset({"eng"}), via="oidc")
KEY = "a passphrase of enough characters"
FOLDERS = ["", "users", "users/admin", "billing"]


def _request(name: str, folder: str = "") -> pb.SavedRequest:
    return pb.SavedRequest(
        name=name,
        folder=folder,
        service="weather.v1.WeatherService",
        method="GetCurrentConditions",
        endpoint="127.0.0.1:1",
        transport=catalog_pb.Transport.GRPC,
        request_messages_json=['{"location": {"city": "' + name + '"}}'],
    )


async def _big(store: Store, who: Identity, n: int, team: str = "eng") -> str:
    """A collection of `n` requests spread over folders (one import: one transaction)."""
    made = await store.import_collection(
        who,
        team,
        Imported(
            name=f"big {n}",
            requests=[_request(f"r{i:04d}", FOLDERS[i % len(FOLDERS)]) for i in range(n)],
            environments=[pb.Environment(name="local")],
        ),
    )
    return made.id


async def _all_collections(store: Store, who: Identity, size: int) -> list[list[pb.Collection]]:
    pages, token = [], ""
    while True:
        page, token = await store.collections_page(who, size, token)
        pages.append(page)
        if not token:
            return pages


async def _all_requests(
    store: Store, who: Identity, cid: str, size: int
) -> list[pb.GetCollectionResponse]:
    pages, token = [], ""
    while True:
        info, reqs, envs, next_token = await store.collection_page(who, cid, size, token)
        pages.append(pb.GetCollectionResponse(collection=info, requests=reqs, environments=envs))
        if not next_token:
            return pages
        assert next_token != token
        token = next_token


async def test_250_collections_in_pages_of_100(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        names = [f"{'Ab' if i % 3 else 'ab'}-{i % 7}-{i:03d}" for i in range(250)]
        for i, name in enumerate(names):  # 150 personal, 100 shared with eng
            team = "eng" if i % 5 < 2 else ""
            await store.save_collection(ALICE, pb.SaveCollectionRequest(name=name, team=team))
        everything = await store.list_collections(ALICE)  # unpaged: as before paging
        assert len(everything) == 250
        assert [c.personal for c in everything] == [True] * 150 + [False] * 100
        for part in (everything[:150], everything[150:]):  # by name, case ignored, then id
            assert [(c.name.lower(), c.id) for c in part] == sorted(
                (c.name.lower(), c.id) for c in part
            )
        pages = await _all_collections(store, ALICE, 100)
        assert [len(p) for p in pages] == [100, 100, 50]
        seen = [c.id for p in pages for c in p]
        assert seen == [c.id for c in everything]  # each once, in order
        assert len(set(seen)) == 250
        # Bob (eng) pages through the team's 100 only.
        bobs = await _all_collections(store, BOB, 30)
        assert [len(p) for p in bobs] == [30, 30, 30, 10]
        assert all(not c.personal for p in bobs for c in p)
    finally:
        await store.close()


async def test_collections_added_and_removed_between_pages(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        made = [
            await store.save_collection(ALICE, pb.SaveCollectionRequest(name=f"m{i:03d}"))
            for i in range(120)
        ]
        first, token = await store.collections_page(ALICE, 50, "")
        assert [c.name for c in first] == [f"m{i:03d}" for i in range(50)]
        # Meanwhile: one added before where the page ended, one after it, one unseen
        # deleted, one seen deleted.
        await store.save_collection(ALICE, pb.SaveCollectionRequest(name="a-first"))
        await store.save_collection(ALICE, pb.SaveCollectionRequest(name="m0605"))
        await store.delete_collection(ALICE, made[80].id)
        await store.delete_collection(ALICE, made[10].id)
        rest, token2 = await store.collections_page(ALICE, 50, token)
        rest2, end = await store.collections_page(ALICE, 50, token2)
        assert end == ""
        later = [c.name for c in rest + rest2]
        expected = [f"m{i:03d}" for i in range(50, 120) if i != 80]
        expected.insert(expected.index("m060") + 1, "m0605")
        assert later == expected  # nothing seen again, nothing stable skipped
    finally:
        await store.close()


async def test_requests_in_folders_page_in_the_collections_order(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        cid = await _big(store, ALICE, 250)
        _, everything, envs = await store.get_collection(ALICE, cid)  # unpaged
        assert [r.name for r in everything] == [f"r{i:04d}" for i in range(250)]
        assert len(envs) == 1
        pages = await _all_requests(store, ALICE, cid, 100)
        assert [len(p.requests) for p in pages] == [100, 100, 50]
        got = [r for p in pages for r in p.requests]
        assert [(r.id, r.name, r.folder, r.position) for r in got] == [
            (r.id, r.name, r.folder, r.position) for r in everything
        ]
        assert [r.folder for r in got[:5]] == ["", "users", "users/admin", "billing", ""]
        # The collection (with all its counts) on every page; environments on the first.
        heads = [p.collection for p in pages]
        assert [(h.request_count, h.environment_count) for h in heads if h is not None] == [
            (250, 1)
        ] * 3
        assert [len(p.environments) for p in pages] == [1, 0, 0]
        # One folder's requests, gathered across pages, are that folder's, in order.
        admin = [r.name for r in got if r.folder == "users/admin"]
        assert admin == [f"r{i:04d}" for i in range(2, 250, 4)]
    finally:
        await store.close()


async def test_requests_stable_under_inserts_reorders_and_deletes(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        cid = await _big(store, ALICE, 250)
        _, before, _ = await store.get_collection(ALICE, cid)
        ids = [r.id for r in before]
        _, page1, _, token = await store.collection_page(ALICE, cid, 100, "")
        assert [r.id for r in page1] == ids[:100] and token
        # Between pages: an unseen request moved to the top and a seen one to the end
        # (a reorder renumbers every position), one request added at the end, a copy of
        # an unseen one (inserted after it, renumbering again), an unseen one deleted.
        moved_up, moved_down, deleted = ids[180], ids[10], ids[150]
        order = [moved_up, *[i for i in ids if i not in (moved_up, moved_down)], moved_down]
        await store.reorder(ALICE, cid, order)
        added = _request("new one", "users")
        added.collection_id = cid
        new = await store.save_request(ALICE, added)
        copy = await store.duplicate_request(ALICE, ids[120])
        await store.delete_request(ALICE, deleted)
        _, page2, envs2, token2 = await store.collection_page(ALICE, cid, 100, token)
        assert envs2 == []
        _, page3, _, end = await store.collection_page(ALICE, cid, 100, token2)
        assert end == ""
        seen = [r.id for r in page1 + page2 + page3]
        stable = [i for i in ids if i not in (moved_up, moved_down, deleted)]
        assert [i for i in seen if i in stable] == stable  # each once, in order
        assert seen.count(moved_up) == 0  # it moved behind the reader...
        assert seen.count(moved_down) == 2  # ...and this one ahead of it
        assert deleted not in seen[100:]
        assert new.id in seen and copy.id in seen
        assert seen.index(copy.id) == seen.index(ids[120]) + 1
    finally:
        await store.close()


async def test_page_tokens_only_for_their_listing_and_caller(database_url: str) -> None:
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        cid = await _big(store, ALICE, 30)  # shared with eng: Bob sees it too
        other = await _big(store, ALICE, 30)
        for i in range(5):
            await store.save_collection(ALICE, pb.SaveCollectionRequest(name=f"c{i}"))
        _, _, _, token = await store.collection_page(ALICE, cid, 10, "")
        _, list_token = await store.collections_page(ALICE, 2, "")
        # Alice continues with her own token.
        _, more, _, _ = await store.collection_page(ALICE, cid, 10, token)
        assert len(more) == 10
        flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        attempts = {
            "garbage": store.collection_page(ALICE, cid, 10, "not a token at all!"),
            "base64 junk": store.collection_page(ALICE, cid, 10, "QUJD"),
            "altered": store.collection_page(ALICE, cid, 10, flipped),
            "cut": store.collection_page(ALICE, cid, 10, token[:20]),
            "too long": store.collection_page(ALICE, cid, 10, "A" * 5000),
            "another caller": store.collection_page(BOB, cid, 10, token),
            "another collection": store.collection_page(ALICE, other, 10, token),
            "another listing": store.collection_page(ALICE, cid, 10, list_token),
            "list with a collection's": store.collections_page(ALICE, 2, token),
            "list by another caller": store.collections_page(BOB, 2, list_token),
        }
        for what, attempt in attempts.items():
            with pytest.raises(RequestError) as bad:
                await attempt
            assert bad.value.code is Code.INVALID_ARGUMENT, what
            assert bad.value.field == "pageToken", what
            assert "first page" in bad.value.message, what
        # A catalog with another secret key (a stale token) refuses it the same way.
        rekeyed = Store(store.engine, Sealer("another passphrase, not the first"), everyone=False)
        with pytest.raises(RequestError) as stale:
            await rekeyed.collection_page(ALICE, cid, 10, token)
        assert stale.value.code is Code.INVALID_ARGUMENT
        # A well-signed token of the wrong shape (as a bug could make) is refused too,
        # before it reaches the database.
        tokens = Tokens(Sealer(KEY).page_key)
        for after in ([1, 2], ["x", "y"], [True, "id"], [0, "x" * 2000], []):
            forged = tokens.make(f"requests:{cid}", ALICE, after)
            with pytest.raises(RequestError) as shape:
                await store.collection_page(ALICE, cid, 10, forged)
            assert shape.value.code is Code.INVALID_ARGUMENT
        # Someone who may not see the collection gets not_found, token or not.
        outsider = Identity(name="eve@example.com", groups=frozenset({"sales"}), via="oidc")
        with pytest.raises(RequestError) as hidden:
            await store.collection_page(outsider, cid, 10, token)
        assert hidden.value.code is Code.NOT_FOUND
    finally:
        await store.close()


def test_page_sizes() -> None:
    assert page_size(0, "") is None  # nothing asked: everything, as before paging
    assert page_size(0, "a token") == PAGE == 100
    assert page_size(1, "") == 1
    assert page_size(250, "") == 250
    assert page_size(MAX_PAGE, "") == MAX_PAGE == 1000
    assert page_size(5000, "") == MAX_PAGE
    assert page_size(2**31 - 1, "x") == MAX_PAGE
    with pytest.raises(RequestError) as negative:
        page_size(-1, "")
    assert negative.value.code is Code.INVALID_ARGUMENT and negative.value.field == "pageSize"
    assert "-1" in negative.value.message


async def test_a_page_is_a_limit_in_sql(database_url: str) -> None:
    """A page of 1000 out of 1200 requests: at most 1001 rows come from the database
    (the LIMIT, one more to know that a page follows), and page_size is clamped."""
    store = await Store.open(database_url, Sealer(KEY), everyone=False)
    try:
        cid = await _big(store, ALICE, 1200)
        statements: list[str] = []

        def record(conn: object, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement)

        event.listen(store.engine.sync_engine, "before_cursor_execute", record)
        size = page_size(5000, "")
        assert size == MAX_PAGE
        _, reqs, _, token = await store.collection_page(ALICE, cid, size, "")
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)
        assert len(reqs) == 1000 and token
        selects = [s for s in statements if "FROM saved_requests" in s and "LIMIT" in s]
        assert selects, statements
        _, rest, _, end = await store.collection_page(ALICE, cid, size, token)
        assert len(rest) == 200 and end == ""
        assert [r.name for r in reqs + rest] == [f"r{i:04d}" for i in range(1200)]
    finally:
        await store.close()
