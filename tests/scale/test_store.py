"""What the Redis store holds: one descriptor set per content key whatever the number of
sessions on it, TTLs, throttled refreshes, and figures across processes."""

from __future__ import annotations

import time

import httpx
import redis

from connectrpc_catalog.app import App
from connectrpc_catalog.settings import SessionSettings, Settings
from tests.catalog_server import run_catalog
from tests.upstream.schema import PROTO_DIR

from .conftest import API, OwnRedis


def _app(url: str, prefix: str, ttl: float = 3600.0) -> App:
    return App(Settings(sessions=SessionSettings(store=url, store_prefix=prefix, ttl=ttl)))


def _load(http: httpx.Client, url: str, sid: str = "") -> str:
    headers = {"x-session-id": sid} if sid else {}
    r = http.post(url + API + "LoadProtos", json={"protoPath": str(PROTO_DIR)}, headers=headers)
    assert r.status_code == 200 and r.json()["success"], r.text
    out: str = r.headers["x-session-id"]
    return out


def _calls(client: redis.Redis) -> int:
    """Commands Redis ran that can write (scripts, SET, PEXPIRE)."""
    stats = client.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k.removeprefix("cmdstat_") in ("evalsha", "eval", "set", "pexpire", "hset")
    )


def test_sets_stored_once_by_key_with_ttls(own_redis: OwnRedis) -> None:
    client = redis.Redis(port=own_redis.port, db=9)
    with run_catalog(app=_app(own_redis.url, "st", ttl=600)) as a, httpx.Client() as http:
        first, second = _load(http, a.url), _load(http, a.url)
        assert first != second
        blobs = list(client.scan_iter(match="st:d:*"))
        assert len(blobs) == 1  # two sessions, one descriptor set
        session_ttl = client.pttl(f"st:s:{first}")
        assert 0 < session_ttl <= 600_000
        assert 600_000 < client.pttl(blobs[0]) <= 1_200_000
        assert client.hget(f"st:s:{first}", "keys") == blobs[0].removeprefix(b"st:d:")


def test_a_hot_session_is_not_a_redis_write_per_request(own_redis: OwnRedis) -> None:
    client = redis.Redis(port=own_redis.port, db=9)
    with run_catalog(app=_app(own_redis.url, "hot")) as a, httpx.Client() as http:
        sid = _load(http, a.url)
        before = _calls(client)
        for _ in range(100):
            r = http.post(a.url + API + "GetSession", json={}, headers={"x-session-id": sid})
            assert r.headers["x-session-id"] == sid
        # 100 requests within the refresh interval: no refresh at all (INFO itself counts 0).
        assert _calls(client) - before <= 1


def test_stats_count_sessions_of_every_process(own_redis: OwnRedis) -> None:
    apps = [_app(own_redis.url, "stats"), _app(own_redis.url, "stats")]
    with run_catalog(app=apps[0]) as a, run_catalog(app=apps[1]) as b, httpx.Client() as http:
        for url in (a.url, a.url, b.url):
            http.post(url + API + "GetSession", json={})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(app.manager.get_stats().active_sessions == 3 for app in apps):
                break
            time.sleep(0.2)
        counts = [app.manager.get_stats().active_sessions for app in apps]
        assert counts == [3, 3]
        assert len(a.app.manager) == 2 and len(b.app.manager) == 1  # held: where created
