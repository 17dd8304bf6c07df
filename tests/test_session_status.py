"""Sessions that say what happened: X-Session-Status and GetSession.sessionStatus."""

from __future__ import annotations

import httpx

from connectrpc_catalog.app import AppConfig

from .catalog_server import run_catalog

API = "/catalog.v1.CatalogService/"


def _call(http: httpx.Client, url: str, method: str, sid: str | None = None,
          body: dict[str, object] | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if sid is not None:
        headers["x-session-id"] = sid
    return http.post(url + API + method, json=body or {}, headers=headers)


def test_each_response_says_what_became_of_the_session_id(http: httpx.Client) -> None:
    now = [1_000_000.0]
    with run_catalog(AppConfig(session_ttl=60, clock=lambda: now[0])) as cat:
        r = _call(http, cat.url, "GetSession")
        assert r.headers["x-session-status"] == "new"
        assert r.json()["sessionStatus"] == "new"
        sid = r.headers["x-session-id"]
        r = _call(http, cat.url, "GetSession", sid)
        assert r.headers["x-session-status"] == "active" and r.json()["sessionStatus"] == "active"
        now[0] += 61
        r = _call(http, cat.url, "GetSession", sid)
        assert r.headers["x-session-status"] == "expired"
        assert r.headers["x-session-id"] != sid
        again = r.headers["x-session-id"]
        _call(http, cat.url, "CloseSession", again)
        r = _call(http, cat.url, "ListServices", again)
        assert r.headers["x-session-status"] == "closed"
        r = _call(http, cat.url, "GetSession", "made-up-by-a-script")
        assert r.headers["x-session-status"] == "unknown"


def test_errors_that_need_loaded_schemas_mention_the_lost_session(http: httpx.Client) -> None:
    now = [1_000_000.0]
    with run_catalog(AppConfig(session_ttl=60, clock=lambda: now[0])) as cat:
        sid = _call(http, cat.url, "GetSession").headers["x-session-id"]
        now[0] += 61
        r = _call(http, cat.url, "GetServiceSchema", sid, {"serviceName": "acme.v1.Gone"})
        err = r.json()
        assert err["code"] == "not_found"
        assert "your session expired" in err["message"]
        assert "nothing loaded" in err["message"]
        r = _call(http, cat.url, "GetServiceSchema", body={"serviceName": "acme.v1.Gone"})
        assert "your session" not in r.json()["message"]  # a new client is not told a story


def test_a_browser_on_a_configured_origin_can_read_the_status(http: httpx.Client) -> None:
    origin = "http://ui.example:3000"
    with run_catalog(AppConfig(cors_origins=[origin])) as cat:
        r = http.post(cat.url + API + "GetSession", json={},
                      headers={"content-type": "application/json", "origin": origin})
        assert "x-session-status" in r.headers["access-control-expose-headers"]
