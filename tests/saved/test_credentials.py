"""A saved request never holds a credential header in clear (it lands in exports and
Git): `authorization`, `cookie`, API-key headers are saved only as {{variables}}, after
an auth scheme at most; anything else is refused naming the header, on save and on
import alike. The variable itself (a secret of an environment) is what a run sends."""

from __future__ import annotations

import pytest

from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import ANONYMOUS
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.saved.files import Imported
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import Store


def _req(cid: str, metadata: dict[str, str]) -> pb.SavedRequest:
    return pb.SavedRequest(
        collection_id=cid, name="call", service="s.v1.S", method="M", metadata=metadata
    )


async def test_credential_headers_are_saved_only_as_variables(database_url: str) -> None:
    store = await Store.open(database_url, Sealer("a passphrase of enough characters"))
    try:
        coll = await store.save_collection(ANONYMOUS, pb.SaveCollectionRequest(name="c"))
        for header, value in (
            ("authorization", "Bearer eyJhbGciOi.secret"),
            ("Authorization", "Basic {{user}} extra"),
            ("cookie", "session=abc"),
            ("x-api-key", "k-123"),
            ("proxy-authorization", "token {{t}}x"),
        ):
            with pytest.raises(RequestError) as err:
                await store.save_request(ANONYMOUS, _req(coll.id, {header: value}))
            assert err.value.code == Code.INVALID_ARGUMENT
            assert repr(header) in err.value.message and "{{variable}}" in err.value.message
            assert value not in err.value.message  # the credential is not echoed back
        ok = {
            "authorization": "Bearer {{token}}",
            "x-api-key": "{{api_key}}",
            "cookie": "",
            "x-city": "Lisbon",  # not a credential header: as given
        }
        saved = await store.save_request(ANONYMOUS, _req(coll.id, ok))
        assert dict(saved.metadata) == ok
        with pytest.raises(RequestError, match="'authorization' holds a credential"):
            await store.import_collection(
                ANONYMOUS,
                "",
                Imported(
                    name="from git",
                    requests=[_req("", {"authorization": "Bearer in-clear"})],
                    environments=[],
                ),
            )
        assert [c.name for c in await store.list_collections(ANONYMOUS)] == ["c"]
    finally:
        await store.close()
