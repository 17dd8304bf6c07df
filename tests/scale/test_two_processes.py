"""Two catalog processes on two ports sharing one Redis serve one session interchangeably:
loads, listings, calls, CloseSession, expiry, live calls, and base reloads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.upstream.grpc_server import GrpcServer
from tests.upstream.schema import PROTO_DIR, SERVICE

from .conftest import API, Client, catalogs, store_args

pytest_plugins = ["tests.upstream.fixtures"]

ADMIN = "scale-admin-token-0123456789"
_BASE_V1 = (
    'syntax = "proto3";\npackage basepkg.v1;\n'
    "service First { rpc Ping(P) returns (P); }\nmessage P {}\n"
)
_BASE_V2 = _BASE_V1 + "service Second { rpc Ping(P) returns (P); }\n"


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "base"
    (folder / "basepkg" / "v1").mkdir(parents=True)
    (folder / "basepkg" / "v1" / "base.proto").write_text(_BASE_V1)
    return folder


@pytest.fixture
def pair(redis_url: str, prefix: str, base_dir: Path) -> Iterator[list[str]]:
    """Catalogs A and B: one Redis, one prefix, the same start-up base."""
    args = store_args(redis_url, prefix, "--proto", str(base_dir), "--admin-token", ADMIN)
    with catalogs(2, *args) as urls:
        yield urls


async def _new_session(client: Client, url: str) -> str:
    r = await client.post(url, "LoadProtos", {"protoPath": str(PROTO_DIR)})
    assert r.status_code == 200 and r.json()["success"], r.text
    sid: str = r.headers["x-session-id"]
    return sid


def _names(listing: dict[str, Any]) -> set[str]:
    return {s["name"] for s in listing.get("services", [])}


async def test_load_in_a_list_and_invoke_in_b_close_in_b_seen_by_a(
    pair: list[str], client: Client, grpc_upstream: GrpcServer
) -> None:
    a, b = pair
    sid = await _new_session(client, a)
    # B never saw this session: it restores it from Redis, loads included.
    assert SERVICE in _names(await client.ok(b, "ListServices", {}, sid))
    answer = await client.ok(
        b,
        "InvokeGRPC",
        {
            "endpoint": grpc_upstream.address,
            "service": SERVICE,
            "method": "Echo",
            "transport": "TRANSPORT_GRPC",
            "requestJson": json.dumps({"message": "via B", "number": 7}),
        },
        sid,
    )
    assert answer.get("success"), answer
    assert json.loads(answer["responseJson"])["message"] == "via B"
    info_a = await client.ok(a, "GetSession", {}, sid)
    info_b = await client.ok(b, "GetSession", {}, sid)
    assert info_a["createdAt"] == info_b["createdAt"]
    assert info_b["sessionServices"] == [SERVICE]
    # Ended in B, ended in A too (pub/sub), and A says so.
    assert (await client.ok(b, "CloseSession", {}, sid))["closed"] is True
    r = httpx.Response(200)
    for _ in range(50):
        r = await client.post(a, "ListServices", {}, sid)
        if r.headers["x-session-id"] != sid:
            break
        await asyncio.sleep(0.05)
    assert r.headers["x-session-id"] != sid
    assert r.headers["x-session-status"] == "closed"
    assert SERVICE not in _names(r.json())


async def test_a_load_in_b_reaches_a_session_a_holds(pair: list[str], client: Client) -> None:
    a, b = pair
    sid = await _new_session(client, a)
    files = {"extra/v1/extra.proto": 'syntax = "proto3";\npackage extra.v1;\nservice Extra {}\n'}
    loaded = await client.ok(b, "LoadProtos", {"protoFiles": {"files": files}}, sid)
    assert loaded["success"], loaded
    names: set[str] = set()
    for _ in range(50):  # A hears "changed" and reads the manifest on the next request
        names = _names(await client.ok(a, "ListServices", {}, sid))
        if "extra.v1.Extra" in names:
            break
        await asyncio.sleep(0.05)
    assert {SERVICE, "extra.v1.Extra"} <= names


async def test_interactive_call_started_in_a_fed_through_b(
    pair: list[str], client: Client, grpc_upstream: GrpcServer
) -> None:
    a, b = pair
    sid = await _new_session(client, a)
    body = {
        "call": {
            "endpoint": grpc_upstream.address,
            "service": SERVICE,
            "method": "BidiStream",
            "transport": "TRANSPORT_GRPC",
            "timeoutSeconds": 20,
        }
    }
    started = await client.ok(a, "StartCall", body, sid)
    call_id = started["callId"]
    events = client.watch(b, call_id, sid)  # watched through B, relayed from A
    for i in range(3):
        target = (a, b)[i % 2]  # messages through both processes, in order
        message = {"callId": call_id, "messageJson": json.dumps({"message": f"m{i}"})}
        sent = await client.ok(target, "SendMessage", message, sid)
        assert sent["sentCount"] == i + 1
        event = await asyncio.wait_for(anext(events), 10)
        if "headers" in event:
            event = await asyncio.wait_for(anext(events), 10)
        assert json.loads(event["message"]["json"])["message"] == f"m{i}", event
    assert (await client.ok(b, "CloseSend", {"callId": call_id}, sid))["sentCount"] == 3
    rest = [e async for e in events]
    assert rest[-1]["status"].get("success") is True, rest
    # Ended and forgotten at its owner: B says so (the owner answered not_found).
    r = await client.post(b, "CancelCall", {"callId": call_id}, sid)
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text


async def test_ttl_expiry_through_redis(redis_url: str, prefix: str, client: Client) -> None:
    with catalogs(2, *store_args(redis_url, prefix, "--session-ttl", "2s")) as (a, b):
        sid = await _new_session(client, a)
        # Used only through B for longer than the TTL: Redis keeps it alive, so A has it.
        for _ in range(4):
            await client.ok(b, "GetSession", {}, sid)
            await asyncio.sleep(0.8)
        assert SERVICE in _names(await client.ok(a, "ListServices", {}, sid))
        await asyncio.sleep(3.0)  # idle everywhere past the TTL
        r = await client.post(b, "ListServices", {}, sid)
        assert r.headers["x-session-id"] != sid
        assert r.headers["x-session-status"] in ("expired", "unknown")
        assert SERVICE not in _names(r.json())


async def test_base_reload_in_a_is_seen_by_b(
    pair: list[str], client: Client, base_dir: Path
) -> None:
    a, b = pair
    r = await client.post(b, "ListServices", {})
    sid = r.headers["x-session-id"]
    assert "basepkg.v1.Second" not in _names(r.json())
    (base_dir / "basepkg" / "v1" / "base.proto").write_text(_BASE_V2)
    reload = await client.http.post(
        a + "/catalog.v1.CatalogService/ReloadBase",
        json={},
        headers={"authorization": f"Bearer {ADMIN}", "x-session-id": sid},
    )
    assert reload.status_code == 200 and reload.json()["success"], reload.text
    for url in (a, b):
        names: set[str] = set()
        for _ in range(100):
            names = _names(await client.ok(url, "ListServices", {}, sid))
            if "basepkg.v1.Second" in names:
                break
            await asyncio.sleep(0.05)
        assert {"basepkg.v1.First", "basepkg.v1.Second"} <= names, url


async def test_a_long_stream_watched_through_b_loses_nothing(
    pair: list[str], client: Client, grpc_upstream: GrpcServer
) -> None:
    """More events than the relay's window: flow control, in order, none dropped."""
    a, b = pair
    sid = await _new_session(client, a)
    count = 2_000
    body = {
        "call": {
            "endpoint": grpc_upstream.address,
            "service": SERVICE,
            "method": "ServerStream",
            "transport": "TRANSPORT_GRPC",
            "timeoutSeconds": 60,
            "requestMessagesJson": [json.dumps({"message": "s", "count": count})],
        }
    }
    call_id = (await client.ok(a, "StartCall", body, sid))["callId"]
    await asyncio.sleep(0.5)  # the owner's buffer fills: the upstream waits for the watcher
    events = [e async for e in client.watch(b, call_id, sid)]
    indexes = [json.loads(e["message"]["json"]).get("index", 0) for e in events if "message" in e]
    assert indexes == list(range(count))
    assert events[-1]["status"].get("success") is True, events[-1]


async def test_sighup_on_one_process_reloads_every_process(
    redis_url: str, prefix: str, base_dir: Path, client: Client
) -> None:
    """SIGHUP to B's supervisor reloads B's worker, which announces it: A reloads too."""
    import signal

    from tests.catalog_server import run_cli

    args = store_args(redis_url, prefix, "--proto", str(base_dir))
    with run_cli(*args) as (a, _), run_cli(*args) as (b, proc_b):
        r = await client.post(a, "ListServices", {})
        sid = r.headers["x-session-id"]
        assert "basepkg.v1.Second" not in _names(r.json())
        (base_dir / "basepkg" / "v1" / "base.proto").write_text(_BASE_V2)
        proc_b.send_signal(signal.SIGHUP)
        for url in (b, a):
            names: set[str] = set()
            for _ in range(200):
                names = _names(await client.ok(url, "ListServices", {}, sid))
                if "basepkg.v1.Second" in names:
                    break
                await asyncio.sleep(0.05)
            assert "basepkg.v1.Second" in names, url


async def test_a_call_whose_process_is_gone_is_a_retryable_unavailable(
    redis_url: str, prefix: str, client: Client, grpc_upstream: GrpcServer
) -> None:
    from tests.catalog_server import run_cli

    args = store_args(redis_url, prefix)
    with run_cli(*args) as (b, _):
        with run_cli(*args) as (a, proc_a):
            sid = await _new_session(client, a)
            body = {
                "call": {
                    "endpoint": grpc_upstream.address,
                    "service": SERVICE,
                    "method": "BidiStream",
                    "transport": "TRANSPORT_GRPC",
                    "timeoutSeconds": 20,
                }
            }
            call_id = (await client.ok(a, "StartCall", body, sid))["callId"]
            proc_a.terminate()
            proc_a.wait(30)
        message = {"callId": call_id, "messageJson": json.dumps({"message": "late"})}
        r = await client.post(b, "SendMessage", message, sid)
        assert r.status_code == 503, r.text
        error = r.json()
        assert error["code"] == "unavailable"
        assert f"lives in catalog process {call_id.partition('-')[0]}" in error["message"]
        # The session itself lives on in B.
        assert SERVICE in _names(await client.ok(b, "ListServices", {}, sid))


async def test_a_session_stays_its_owners_in_every_process(
    redis_url: str, prefix: str, client: Client
) -> None:
    """Signed in through a proxy: Bob presenting Alice's session id to the other process
    gets a session of his own; Alice gets hers, loads included."""
    sign_in = ("--auth", "proxy", "--trusted-proxy", "127.0.0.1/32")
    with catalogs(2, *store_args(redis_url, prefix, *sign_in)) as (a, b):

        async def post(url: str, who: str, method: str, sid: str = "") -> httpx.Response:
            headers = {"x-forwarded-email": who, **({"x-session-id": sid} if sid else {})}
            return await client.http.post(url + API + method, json={}, headers=headers)

        loaded = await client.http.post(
            a + API + "LoadProtos",
            json={"protoPath": str(PROTO_DIR)},
            headers={"x-forwarded-email": "alice@example.com"},
        )
        assert loaded.json()["success"], loaded.text
        sid = loaded.headers["x-session-id"]
        bob = await post(b, "bob@example.com", "ListServices", sid)
        assert bob.headers["x-session-id"] != sid
        assert SERVICE not in _names(bob.json())
        alice = await post(b, "alice@example.com", "ListServices", sid)
        assert alice.headers["x-session-id"] == sid
        assert SERVICE in _names(alice.json())
