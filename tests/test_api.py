"""The catalog.v1 API over HTTP: sessions, loading a folder, listing, schemas, errors, CORS."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from connectrpc_catalog.app import AppConfig

from .catalog_server import run_catalog

API = "/catalog.v1.CatalogService/"


def call(
    client: httpx.Client, url: str, method: str, body: dict[str, object], sid: str | None = None
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if sid:
        headers["x-session-id"] = sid
    return client.post(url + API + method, json=body, headers=headers)


def load(
    client: httpx.Client, url: str, path: Path | str, sid: str | None = None
) -> httpx.Response:
    return call(client, url, "LoadProtos", {"protoPath": str(path)}, sid)


def test_load_folder_then_list_with_the_session_header(
    catalog_url: str, http: httpx.Client, weather_protos: Path
) -> None:
    r = load(http, catalog_url, weather_protos)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["serviceCount"] == 1 and body["fileCount"] == 2
    sid = r.headers["x-session-id"]
    assert len(sid) == 32

    r = call(http, catalog_url, "ListServices", {}, sid)
    assert r.headers["x-session-id"] == sid
    [svc] = r.json()["services"]
    assert svc["name"] == "acme.weather.v1.WeatherService"
    assert svc["package"] == "acme.weather.v1"
    assert svc["documentation"].startswith("WeatherService reports current conditions")
    assert "\n\nAll temperatures" in svc["documentation"]  # paragraphs kept
    methods = {m["name"]: m for m in svc["methods"]}
    assert methods["GetCurrent"]["inputType"] == "acme.weather.v1.GetCurrentRequest"
    assert methods["GetCurrent"]["documentation"] == "Returns the current conditions at a place."
    assert methods["StreamForecast"].get("serverStreaming") is True
    assert methods["UploadReadings"].get("clientStreaming") is True
    assert methods["Chat"].get("clientStreaming") and methods["Chat"].get("serverStreaming")


def test_without_the_header_a_new_empty_session(catalog_url: str, http: httpx.Client) -> None:
    r = call(http, catalog_url, "ListServices", {})
    assert r.status_code == 200
    assert r.json().get("services", []) == []
    assert len(r.headers["x-session-id"]) == 32


def test_two_sessions_are_isolated(
    catalog_url: str, http: httpx.Client, weather_protos: Path, tmp_path: Path
) -> None:
    (tmp_path / "other.proto").write_text(
        'syntax = "proto3";\npackage other.v1;\nservice Other { rpc Ping(P) returns (P); }\n'
        "message P {}\n"
    )
    a = load(http, catalog_url, weather_protos).headers["x-session-id"]
    b = load(http, catalog_url, tmp_path).headers["x-session-id"]
    assert a != b
    names_a = [s["name"] for s in call(http, catalog_url, "ListServices", {}, a).json()["services"]]
    names_b = [s["name"] for s in call(http, catalog_url, "ListServices", {}, b).json()["services"]]
    assert names_a == ["acme.weather.v1.WeatherService"]
    assert names_b == ["other.v1.Other"]


def test_unknown_id_gets_a_fresh_one(catalog_url: str, http: httpx.Client) -> None:
    sent = "0123456789abcdef0123456789abcdef"
    r = call(http, catalog_url, "GetSession", {}, sent)
    got = r.headers["x-session-id"]
    assert got != sent and r.json()["sessionId"] == got


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


def test_expired_id_gets_a_fresh_one_and_loses_its_schemas(
    http: httpx.Client, weather_protos: Path
) -> None:
    clock = Clock()
    with run_catalog(AppConfig(session_ttl=60, clock=clock)) as cat:
        sid = load(http, cat.url, weather_protos).headers["x-session-id"]
        clock.now += 59
        assert call(http, cat.url, "ListServices", {}, sid).headers["x-session-id"] == sid
        clock.now += 61
        r = call(http, cat.url, "ListServices", {}, sid)
        assert r.headers["x-session-id"] != sid
        assert r.json().get("services", []) == []


def test_get_session_reports_times_and_counts(
    catalog_url: str, http: httpx.Client, weather_protos: Path
) -> None:
    sid = load(http, catalog_url, weather_protos).headers["x-session-id"]
    info = call(http, catalog_url, "GetSession", {}, sid).json()
    assert info["sessionId"] == sid
    assert info["fileCount"] == 2 and info["serviceCount"] == 1
    assert info["sessionServices"] == ["acme.weather.v1.WeatherService"]
    assert info["ttlSeconds"] == "3600"
    assert info["createdAt"] <= info["lastUsed"] < info["expiresAt"]


def test_close_session_ends_it(catalog_url: str, http: httpx.Client, weather_protos: Path) -> None:
    sid = load(http, catalog_url, weather_protos).headers["x-session-id"]
    r = call(http, catalog_url, "CloseSession", {}, sid)
    assert r.status_code == 200 and r.json() == {"closed": True}
    r = call(http, catalog_url, "ListServices", {}, sid)
    assert r.headers["x-session-id"] != sid
    assert r.json().get("services", []) == []


def test_get_service_schema(catalog_url: str, http: httpx.Client, weather_protos: Path) -> None:
    sid = load(http, catalog_url, weather_protos).headers["x-session-id"]
    r = call(
        http,
        catalog_url,
        "GetServiceSchema",
        {"serviceName": "acme.weather.v1.WeatherService"},
        sid,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["service"]["name"] == "acme.weather.v1.WeatherService"
    schemas = {k: json.loads(v) for k, v in body["messageSchemas"].items()}
    assert set(schemas) == {  # every type reached, each once
        "acme.weather.v1.GetCurrentRequest",
        "acme.weather.v1.Conditions",
        "acme.weather.v1.StreamForecastRequest",
        "acme.weather.v1.Reading",
        "acme.weather.v1.UploadSummary",
        "acme.weather.v1.ChatMessage",
        "acme.weather.v1.Units",
        "acme.common.v1.LatLng",
    }
    cond = schemas["acme.weather.v1.Conditions"]
    assert cond["title"] == "acme.weather.v1.Conditions"
    assert cond["type"] == "object"
    props = cond["properties"]
    assert props["observedAt"]["format"] == "date-time"
    assert "string" in props["pressurePa"]["type"]  # int64 → string in proto3 JSON
    assert props["extra"]["type"] == "object"
    req = schemas["acme.weather.v1.GetCurrentRequest"]
    assert req["properties"]["location"]["$ref"] == "acme.common.v1.LatLng"
    assert schemas["acme.common.v1.LatLng"]["properties"]["latitude"]["description"].startswith(
        "Degrees north"
    )
    assert schemas["acme.weather.v1.Units"]["x-proto-enum-values"][1]["name"] == "UNITS_METRIC"


def test_go_client_reads_title_type_and_properties_at_the_top_level(
    catalog_url: str, http: httpx.Client, weather_protos: Path
) -> None:
    """The Go catalog's UI reads message_schemas[<input or output type>] as one document."""
    sid = load(http, catalog_url, weather_protos).headers["x-session-id"]
    body = call(
        http,
        catalog_url,
        "GetServiceSchema",
        {"serviceName": "acme.weather.v1.WeatherService"},
        sid,
    ).json()
    for method in body["service"]["methods"]:
        for name in (method["inputType"], method["outputType"]):
            doc = json.loads(body["messageSchemas"][name])
            Draft202012Validator.check_schema(doc)
            assert doc["title"] == name and not name.startswith(".")
            assert doc["type"] == "object"
            assert isinstance(doc["properties"], dict)
            assert doc["$id"] == name


def test_a_request_validates_against_the_shared_documents(
    catalog_url: str, http: httpx.Client, weather_protos: Path
) -> None:
    sid = load(http, catalog_url, weather_protos).headers["x-session-id"]
    body = call(
        http,
        catalog_url,
        "GetServiceSchema",
        {"serviceName": "acme.weather.v1.WeatherService"},
        sid,
    ).json()
    docs = {name: json.loads(text) for name, text in body["messageSchemas"].items()}
    registry: Registry[object] = Registry().with_resources(
        (name, Resource.from_contents(doc)) for name, doc in docs.items()
    )
    v = Draft202012Validator(docs["acme.weather.v1.GetCurrentRequest"], registry=registry)
    good = {"location": {"latitude": 52.5, "longitude": 13.4}, "units": "UNITS_METRIC"}
    assert not list(v.iter_errors(good))
    assert list(v.iter_errors({"location": {"latitude": "north"}}))
    assert list(v.iter_errors({"units": "UNITS_KELVIN"}))


@pytest.mark.parametrize(
    ("method", "body", "code"),
    [
        ("LoadProtos", {}, "invalid_argument"),
        ("LoadProtos", {"protoPath": ""}, "invalid_argument"),
        ("GetServiceSchema", {}, "invalid_argument"),
        ("GetServiceSchema", {"serviceName": "no.such.Service"}, "not_found"),
    ],
)
def test_malformed_requests_get_connect_errors(
    catalog_url: str, http: httpx.Client, method: str, body: dict[str, object], code: str
) -> None:
    r = call(http, catalog_url, method, body)
    assert r.status_code in (400, 404)
    err = r.json()
    assert err["code"] == code
    assert err["message"] and "Traceback" not in err["message"]
    assert "x-session-id" not in r.headers  # a rejected request mints no session


def test_syntax_error_reports_file_line_and_column(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "bad.proto").write_text(
        'syntax = "proto3";\n\nmessage Broken {\n  string a = 1\n}\n'
    )
    body = load(http, catalog_url, tmp_path).json()
    assert body.get("success") is not True
    assert "bad.proto:5:1:" in body["error"]
    assert str(tmp_path) not in body["error"]  # no server-side scratch paths


def test_missing_import_is_named(catalog_url: str, http: httpx.Client, tmp_path: Path) -> None:
    (tmp_path / "a.proto").write_text('syntax = "proto3";\nimport "nowhere/b.proto";\n')
    body = load(http, catalog_url, tmp_path).json()
    assert body.get("success") is not True
    assert "nowhere/b.proto" in body["error"]


def test_missing_path_is_a_failed_load(catalog_url: str, http: httpx.Client) -> None:
    body = load(http, catalog_url, "/definitely/not/here").json()
    assert body.get("success") is not True
    assert "/definitely/not/here" in body["error"] and "no such file" in body["error"]


def test_failed_load_leaves_the_session_as_it_was(
    catalog_url: str, http: httpx.Client, weather_protos: Path, tmp_path: Path
) -> None:
    sid = load(http, catalog_url, weather_protos).headers["x-session-id"]
    (tmp_path / "bad.proto").write_text("this is not protobuf")
    body = load(http, catalog_url, tmp_path, sid).json()
    assert body.get("success") is not True
    assert body["serviceCount"] == 1 and body["fileCount"] == 2
    names = [s["name"] for s in call(http, catalog_url, "ListServices", {}, sid).json()["services"]]
    assert names == ["acme.weather.v1.WeatherService"]


def test_loading_again_is_idempotent(
    catalog_url: str, http: httpx.Client, weather_protos: Path
) -> None:
    sid = load(http, catalog_url, weather_protos).headers["x-session-id"]
    again = load(http, catalog_url, weather_protos, sid).json()
    assert again["success"] is True and again["fileCount"] == 2 and again["serviceCount"] == 1


def test_a_single_file_loads_with_its_sibling_imports(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "dep.proto").write_text('syntax = "proto3";\npackage s;\nmessage D {}\n')
    (tmp_path / "unrelated.proto").write_text("not even protobuf")
    (tmp_path / "main.proto").write_text(
        'syntax = "proto3";\npackage s;\nimport "dep.proto";\n'
        "service S { rpc Do(D) returns (D); }\n"
    )
    body = load(http, catalog_url, tmp_path / "main.proto").json()
    assert body["success"] is True, body
    assert body["fileCount"] == 2 and body["loadedServices"] == ["s.S"]


def test_conflicting_definition_is_a_clear_error(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.proto").write_text('syntax = "proto3";\npackage dup;\nmessage M { string x = 1; }\n')
    (two / "b.proto").write_text('syntax = "proto3";\npackage dup;\nmessage M { int32 y = 1; }\n')
    sid = load(http, catalog_url, one).headers["x-session-id"]
    body = load(http, catalog_url, two, sid).json()
    assert body.get("success") is not True
    assert "dup.M" in body["error"]
    # Same file name, different content, is named too.
    (two / "b.proto").unlink()
    (two / "a.proto").write_text('syntax = "proto3";\npackage dup2;\nmessage N {}\n')
    body = load(http, catalog_url, two, sid).json()
    assert body.get("success") is not True
    assert "a.proto is loaded from protoPath" in body["error"]


def test_cors_preflight_and_exposed_session_header(http: httpx.Client) -> None:
    """A UI on a configured origin (e.g. the Go catalog's React UI) can call the API."""
    origin = "http://elsewhere.example:3000"
    with run_catalog(AppConfig(cors_origins=[origin])) as cat:
        r = http.options(
            cat.url + API + "ListServices",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,connect-protocol-version,"
                "x-session-id",
            },
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == origin
        allowed = r.headers["access-control-allow-headers"].lower()
        for h in ("content-type", "connect-protocol-version", "x-session-id"):
            assert h in allowed
        r = http.post(
            cat.url + API + "ListServices",
            json={},
            headers={"origin": origin, "content-type": "application/json"},
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        assert "x-session-id" in r.headers["access-control-expose-headers"].lower()
        assert len(r.headers["x-session-id"]) == 32


def test_cors_refuses_origins_not_allowed(http: httpx.Client) -> None:
    with run_catalog(AppConfig(cors_origins=["http://good.example"])) as cat:
        r = http.options(
            cat.url + API + "ListServices",
            headers={"origin": "http://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in r.headers
        r = http.post(
            cat.url + API + "ListServices",
            json={},
            headers={"origin": "http://good.example", "content-type": "application/json"},
        )
        assert r.headers["access-control-allow-origin"] == "http://good.example"


def test_invoke_on_an_unknown_service_is_not_found(catalog_url: str, http: httpx.Client) -> None:
    r = call(
        http,
        catalog_url,
        "InvokeGRPC",
        {"endpoint": "127.0.0.1:1", "service": "no.Such", "method": "X"},
    )
    assert r.json()["code"] in ("not_found", "unimplemented")


def test_unexpected_failures_are_internal_errors_without_details(http: httpx.Client) -> None:
    with run_catalog() as cat:

        async def broken(*args: object) -> None:
            raise RuntimeError("secret internal detail /etc/shadow")

        cat.app.loader.load = broken  # type: ignore[method-assign,assignment]
        r = call(http, cat.url, "LoadProtos", {"protoPath": "/x"})
        err = r.json()
        assert r.status_code == 500 and err["code"] == "internal"
        assert "incident" in err["message"]
        assert "secret" not in err["message"] and "shadow" not in r.text


def test_schema_also_covers_the_packages_other_messages(
    catalog_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "p.proto").write_text(
        'syntax = "proto3";\npackage p;\nimport "google/protobuf/any.proto";\nimport "q.proto";\n'
        "service S { rpc Do(Req) returns (q.Out); }\n"
        "message Req { google.protobuf.Any payload = 1; }\nmessage Packable { string x = 1; }\n"
    )
    (tmp_path / "q.proto").write_text(
        'syntax = "proto3";\npackage q;\nmessage Out {}\nmessage Q {}\n'
    )
    sid = load(http, catalog_url, tmp_path).headers["x-session-id"]
    body = call(http, catalog_url, "GetServiceSchema", {"serviceName": "p.S"}, sid).json()
    assert set(body["messageSchemas"]) == {"p.Req", "q.Out", "p.Packable"}
