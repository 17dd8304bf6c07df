"""`--workers 2` on one port with a shared store: 200 sessions spread over both workers
(every request on a new connection, so the kernel picks the worker), none lost or mixed."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.catalog_server import run_cli
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.schema import PROTO_DIR, SERVICE

from .conftest import API

pytest_plugins = ["tests.upstream.fixtures"]

SESSIONS = 200
_KINDS = 4


def _files(kind: int) -> dict[str, str]:
    text = f'syntax = "proto3";\npackage kind{kind}.v1;\nservice K{kind} {{}}\n'
    return {f"kind{kind}/v1/k.proto": text}


async def test_200_sessions_over_two_workers(
    redis_url: str, prefix: str, grpc_upstream: GrpcServer
) -> None:
    args = ("--session-store", redis_url, "--session-store-prefix", prefix, "--workers", "2")
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection per request
    with run_cli(*args) as (url, _proc):
        async with httpx.AsyncClient(timeout=60, limits=fresh) as http:

            async def post(method: str, body: object, sid: str = "") -> httpx.Response:
                headers = {"x-session-id": sid} if sid else {}
                return await http.post(url + API + method, json=body, headers=headers)

            gate = asyncio.Semaphore(16)

            async def make(i: int) -> tuple[str, str]:
                async with gate:
                    files = _files(i % _KINDS)
                    r = await post("LoadProtos", {"protoFiles": {"files": files}})
                    assert r.status_code == 200 and r.json()["success"], r.text
                    return r.headers["x-session-id"], f"kind{i % _KINDS}.v1.K{i % _KINDS}"

            made = await asyncio.gather(*(make(i) for i in range(SESSIONS)))
            assert len({sid for sid, _ in made}) == SESSIONS

            async def check(sid: str, service: str) -> None:
                async with gate:
                    for _ in range(2):  # twice: likely once in each worker
                        r = await post("GetSession", {}, sid)
                        assert r.status_code == 200, r.text
                        assert r.headers["x-session-id"] == sid
                        assert r.headers["x-session-status"] == "active"
                        assert r.json()["sessionServices"] == [service]  # its own, no other's

            await asyncio.gather(*(check(sid, service) for sid, service in made))

            # Both workers served: live call ids name the process that started them.
            sid = made[0][0]
            load = await post("LoadProtos", {"protoPath": str(PROTO_DIR)}, sid)
            assert load.json()["success"], load.text
            nodes = set()
            for _ in range(24):
                body = {
                    "call": {
                        "endpoint": grpc_upstream.address,
                        "service": SERVICE,
                        "method": "Echo",
                        "transport": "TRANSPORT_GRPC",
                        "requestMessagesJson": [json.dumps({"message": "x"})],
                    }
                }
                r = await post("StartCall", body, sid)
                assert r.status_code == 200, r.text
                nodes.add(r.json()["callId"].partition("-")[0])
                if len(nodes) == 2:
                    break
            assert len(nodes) == 2, nodes
