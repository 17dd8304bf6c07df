"""A live-call request relayed to the process owning the call carries the asking
session and identity, and the owner checks them: the security review found the owner
ran whatever a relay message named for the session it named. Two catalog processes
(the real CLI, proxy sign-in) share one Redis; the test is a third member of the store
that forges relay messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.session_store import RedisStore
from tests.scale.conftest import API, catalogs, client, prefix, redis_url, store_args
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.schema import PROTO_DIR, SERVICE

pytest_plugins = ["tests.upstream.fixtures"]
__all__ = ["client", "prefix", "redis_url"]  # fixtures from tests/scale

ALICE = "alice@example.com"
SIGN_IN = ("--auth", "proxy", "--trusted-proxy", "127.0.0.1/32")


class _Quiet:
    """The forging member's StoreEvents: it hears everything and does nothing."""

    def session_ended(self, session_id: str, reason: str) -> None: ...
    def session_changed(self, session_id: str) -> None: ...
    def recheck_all(self) -> None: ...
    def base_reloaded(self) -> None: ...

    async def relayed(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise RequestError("not here", code=Code.NOT_FOUND)
        yield {}  # pragma: no cover


async def _forged(url: str, prefix: str, request: dict[str, Any]) -> RequestError | int:
    store = RedisStore(url, prefix=prefix, ttl=60, cache=SchemaCache(4), clock=lambda: 0.0)
    await store.start(_Quiet())
    try:
        async for answer in store.relay(str(request["call"]), request):
            return int(answer.get("n", 0))
        return -1
    except RequestError as exc:
        return exc
    finally:
        await store.close()


async def test_a_relayed_call_is_run_only_for_its_session_and_identity(
    redis_url: str, prefix: str, client: Any, grpc_upstream: GrpcServer
) -> None:
    http: httpx.AsyncClient = client.http
    with catalogs(2, *store_args(redis_url, prefix, *SIGN_IN)) as (a, b):

        async def post(url: str, method: str, body: dict[str, Any], sid: str) -> httpx.Response:
            headers = {"x-forwarded-email": ALICE, "x-session-id": sid}
            return await http.post(url + API + method, json=body, headers=headers)

        loaded = await post(a, "LoadProtos", {"protoPath": str(PROTO_DIR)}, "")
        assert loaded.json()["success"], loaded.text
        sid = loaded.headers["x-session-id"]
        call = {
            "endpoint": grpc_upstream.address,
            "service": SERVICE,
            "method": "BidiStream",
            "transport": "TRANSPORT_GRPC",
            "timeoutSeconds": 20,
        }
        started = await post(a, "StartCall", {"call": call}, sid)
        assert started.status_code == 200, started.text
        call_id = started.json()["callId"]

        def message(i: int) -> dict[str, Any]:
            return {"callId": call_id, "messageJson": json.dumps({"message": f"m{i}"})}

        # Alice through B: relayed to A with her identity, which A accepts.
        sent = await post(b, "SendMessage", message(0), sid)
        assert sent.status_code == 200 and sent.json()["sentCount"] == 1, sent.text
        # Forged relays: the right session and call, another identity or none.
        base = {"op": "send", "session": sid, "call": call_id, "text": '{"message": "x"}'}
        for forged in (
            {**base, "owner": "proxy:mallory@example.com"},
            {k: v for k, v in base.items()},  # no identity at all
            {**base, "owner": "proxy:alice@example.com", "session": "0" * 32},
        ):
            got = await asyncio.wait_for(_forged(redis_url, prefix, forged), 30)
            assert isinstance(got, RequestError) and got.code is Code.NOT_FOUND, got
            assert sid not in got.message
        # The genuine asker's relay still works, and the call saw none of the forged ones.
        right = {**base, "owner": f"proxy:{ALICE}", "text": json.dumps({"message": "m1"})}
        assert await asyncio.wait_for(_forged(redis_url, prefix, right), 30) == 2
        sent = await post(b, "SendMessage", message(2), sid)
        assert sent.status_code == 200 and sent.json()["sentCount"] == 3, sent.text
        assert (await post(a, "CancelCall", {"callId": call_id}, sid)).status_code == 200


@pytest.mark.parametrize("owner", ["", "proxy:mallory@example.com"])
def test_relay_messages_carry_the_owner_field(owner: str) -> None:
    """The relay message's identity field is what `Replica.relayed` compares."""
    from connectrpc_catalog.shared import RelayDirectory

    class _Capture:
        node = "00000000"
        seen: list[dict[str, Any]] = []

        async def relay(self, call_id: str, request: dict[str, Any]) -> AsyncIterator[Any]:
            self.seen.append(request)
            yield {"n": 1}

    store = _Capture()
    directory = RelayDirectory(store, lambda sid: owner)  # type: ignore[arg-type]
    assert asyncio.run(directory.relay_unary("cancel", "s" * 32, "11111111-ab")) == 1
    assert store.seen[-1]["owner"] == owner and store.seen[-1]["session"] == "s" * 32
