"""Every HTTP-level refusal of the API is a Connect error body that says what to send."""

from __future__ import annotations

import httpx
import pytest

API = "/catalog.v1.CatalogService/"


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "words"),
    [
        ("POST", "ListServices", {}, b"{}", 415, ["without Content-Type", "application/json"]),
        ("POST", "ListServices", {"content-type": "text/plain"}, b"x", 415, ["'text/plain'"]),
        ("GET", "ListServices", {}, b"", 405, ["POST"]),
        ("POST", "ListServicez", {"content-type": "application/json"}, b"{}", 404,
         ["ListServicez", "ListServices", "LoadProtos"]),
        ("POST", "InvokeStream", {"content-type": "application/json"}, b"{}", 415,
         ["application/connect+json", "enveloped"]),
    ],
)
def test_http_level_refusals_say_what_to_send(
    catalog_url: str, http: httpx.Client, method: str, path: str,
    headers: dict[str, str], body: bytes, status: int, words: list[str],
) -> None:
    r = http.request(method, catalog_url + API + path, headers=headers, content=body)
    assert r.status_code == status
    err = r.json()
    assert err["code"] in ("invalid_argument", "not_found")
    for word in words:
        assert word in err["message"]
    assert "x-session-id" not in r.headers  # refused before any handler: no session
    if status == 405:
        assert r.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("InvokeGRPC", '{"service": "a", "request": "{}"}', ["'request'", "requestJson"]),
        ("LoadProtos", '{"protoPath": "/a", "reflectionEndpoint": "x:1"}',
         ["protoPath and reflectionEndpoint", "only one"]),
        ("LoadProtos", "[1]", ["JSON object"]),
        ("LoadProtos", '{"protoPath": 5}', ["proto_path"]),
        ("ListServices", "{", ["JSON", "brackets"]),
        ("ListServices", "{\"a\": }", ["not valid JSON"]),
    ],
)
def test_catalog_requests_are_strict(
    catalog_url: str, http: httpx.Client, path: str, body: str, words: list[str]
) -> None:
    r = http.post(
        catalog_url + API + path, content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    err = r.json()
    assert err["code"] == "invalid_argument"
    for word in words:
        assert word in err["message"]


def test_proto_field_names_are_still_accepted(catalog_url: str, http: httpx.Client) -> None:
    r = http.post(
        catalog_url + API + "GetServiceSchema",
        json={"service_name": "no.such.Service"},
        headers={"content-type": "application/json"},
    )
    assert r.json()["code"] == "not_found"  # the name was read, not refused as unknown
