"""Redis going away: a clear start-up error, `unavailable` (never a 500, never a new empty
session) while it is gone, /readyz not ready, and recovery with every session it kept."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from tests.upstream.schema import PROTO_DIR, SERVICE

from .conftest import Client, OwnRedis, catalogs, free_port, store_args


def _grpc_code(url: str) -> str:
    """GetSession by a grpcio client (h2c): its status code's name."""
    import grpc

    with grpc.insecure_channel(url.removeprefix("http://")) as channel:
        call = channel.unary_unary("/catalog.v1.CatalogService/GetSession")
        try:
            call(b"", timeout=10)
        except grpc.RpcError as exc:
            return str(exc.code().name)  # type: ignore[attr-defined]
    return "OK"


def test_unreachable_redis_at_start_is_a_clear_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/9"
    done = subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "--port", "0", *store_args(url, "x")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"cannot reach the session store {url} (--session-store)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


async def test_redis_stopped_and_restarted(own_redis: OwnRedis, client: Client) -> None:
    with catalogs(2, *store_args(own_redis.url, "faults")) as (a, b):
        r = await client.post(a, "LoadProtos", {"protoPath": str(PROTO_DIR)})
        assert r.json()["success"], r.text
        sid = r.headers["x-session-id"]
        assert (await client.http.get(a + "/readyz")).status_code == 200

        own_redis.stop()  # SHUTDOWN SAVE: what it held is on disk
        for url in (a, b):
            # A session held here is re-checked only every few seconds (no Redis call per
            # request), so A may serve it until its listener sees the connection drop:
            # wait (bounded) until the process has noticed; then everything is refused.
            for _ in range(100):
                r = await client.post(url, "ListServices", {}, sid)
                if r.status_code == 503:
                    break
                await asyncio.sleep(0.1)
            for body, session in (({}, sid), ({}, "")):
                r = await client.post(url, "ListServices", body, session)
                assert r.status_code == 503, r.text
                assert r.json()["code"] == "unavailable"
                assert "session store" in r.json()["message"]
                assert "x-session-id" not in r.headers  # no new, empty session
            assert await asyncio.to_thread(_grpc_code, url) == "UNAVAILABLE"  # gRPC too
            ready = await client.http.get(url + "/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["session_store"] is False

        own_redis.start()
        for url in (b, a):  # B never held the session: it reads it from the restarted Redis
            r = await client.post(url, "ListServices", {}, sid)
            for _ in range(100):
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
                r = await client.post(url, "ListServices", {}, sid)
            assert r.status_code == 200, r.text
            assert r.headers["x-session-id"] == sid
            assert r.headers["x-session-status"] == "active"
            assert SERVICE in {s["name"] for s in r.json()["services"]}
            assert (await client.http.get(url + "/readyz")).status_code == 200
            assert await asyncio.to_thread(_grpc_code, url) == "OK"
