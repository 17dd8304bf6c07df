"""Sessions shared through Redis (`--session-store`) between two catalog processes with
sign-in (`--auth proxy`): a session id is its creator's only, whichever process the
request reaches.

Another identity that presents the id (to the process that holds the session, or to
the other one, which would restore it from Redis) gets a session of its own: it never
sees the loads, cannot close the session, and the owner's session is unchanged in both
processes. What Redis holds names no secret (a Git URL's password, the admin token).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.catalog_server import run_cli

API = "/catalog.v1.CatalogService/"
REDIS = ("127.0.0.1", 6379, 9)
WEATHER_PROTOS = Path(__file__).parents[1] / "fixtures" / "protos"
ALICE = {"x-forwarded-email": "alice@example.com"}
MALLORY = {"x-forwarded-email": "mallory@example.com"}
ADMIN_TOKEN = "store-security-admin-token"


def _redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS[:2], 1.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    if not _redis_answers():
        pytest.skip(f"no Redis answers at {REDIS[0]}:{REDIS[1]} (start one to run these)")
    import redis

    name = f"security-review-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis(host=REDIS[0], port=REDIS[1], db=REDIS[2])
    with contextlib.suppress(redis.RedisError):
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def pair(prefix: str) -> Iterator[list[str]]:
    args = (
        "--session-store",
        f"redis://{REDIS[0]}:{REDIS[1]}/{REDIS[2]}",
        "--session-store-prefix",
        prefix,
        "--workers",
        "1",
        "--auth",
        "proxy",
        "--trusted-proxy",
        "127.0.0.1/32",
        "--admin-token",
        ADMIN_TOKEN,
    )
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(run_cli(*args))[0] for _ in range(2)]


def post(url: str, method: str, body: dict[str, Any], who: dict[str, str], sid: str) -> Any:
    return httpx.post(
        url + API + method,
        json=body,
        headers={"content-type": "application/json", "x-session-id": sid, **who},
        timeout=60,
    )


def services(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [s["name"] for s in r.json().get("services", [])]


def test_a_session_id_replayed_by_another_identity_is_not_shared(pair: list[str]) -> None:
    a, b = pair
    r = post(a, "LoadProtos", {"protoPath": str(WEATHER_PROTOS)}, ALICE, "")
    assert r.status_code == 200 and r.json()["success"], r.text
    sid = r.headers["x-session-id"]
    owned = services(post(a, "ListServices", {}, ALICE, sid))
    assert any("Weather" in s for s in owned)
    assert services(post(b, "ListServices", {}, ALICE, sid)) == owned  # restored in B

    for url in (a, b):  # A holds it; B restored it too
        r = post(url, "ListServices", {}, MALLORY, sid)
        assert not any("Weather" in s for s in services(r))
        assert r.headers.get("x-session-id") != sid
        closed = post(url, "CloseSession", {}, MALLORY, sid)
        assert closed.status_code in (200, 404), closed.text
        assert closed.headers.get("x-session-id", "") != sid

    for url in (a, b):  # Alice's session, unchanged in both processes
        r = post(url, "GetSession", {}, ALICE, sid)
        assert r.status_code == 200 and r.json()["sessionId"] == sid, r.text
        assert r.headers["x-session-status"] == "active"
        assert services(post(url, "ListServices", {}, ALICE, sid)) == owned


def test_redis_holds_no_secret_of_a_load(pair: list[str], prefix: str) -> None:
    import redis

    a, _ = pair
    secret = "hunter2-git-password"
    url = f"https://user:{secret}@127.0.0.1:1/repo.git"
    r = post(a, "LoadProtos", {"protoRepo": url}, ALICE, "")
    assert r.status_code in (200, 400, 403, 503), r.text
    assert secret not in r.text
    r = post(a, "LoadProtos", {"protoPath": str(WEATHER_PROTOS)}, ALICE, "")
    assert r.status_code == 200, r.text
    client = redis.Redis(host=REDIS[0], port=REDIS[1], db=REDIS[2])
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            kind = client.type(key)
            if kind == b"string":
                values = [client.get(key) or b""]
            elif kind == b"hash":
                values = list(client.hgetall(key).values())
            else:
                continue
            for value in values:
                assert secret.encode() not in value and ADMIN_TOKEN.encode() not in value, key
    finally:
        client.close()
