"""CollectionService over HTTP on a real catalog (signed in through --auth proxy, the
team issue's sign-in): CRUD and access by person and group, secrets masked in answers
and exports, export → import → export byte-identical, RunRequests against the demo
Weather server with assertion results, and the guards in front of the second service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.demo import demo_source
from connectrpc_catalog.demo.weather import DemoServer, start
from connectrpc_catalog.settings import AuthSettings, SavedSettings
from connectrpc_catalog.startup import BaseSpec
from tests.catalog_server import RunningCatalog, run_catalog

API = "/catalog.v1.CollectionService/"
PROXY = AuthSettings(
    mode="proxy", trusted_proxies=("127.0.0.1/32",), groups_header="X-Forwarded-Groups"
)
ALICE = {"x-forwarded-email": "alice@example.com", "x-forwarded-groups": "eng"}
BOB = {"x-forwarded-email": "bob@example.com", "x-forwarded-groups": "eng,ops"}
CAROL = {"x-forwarded-email": "carol@example.com", "x-forwarded-groups": "sales"}
SECRET = "s3cr3t-token-value-42"


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    server = start("127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def catalog(demo: DemoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCatalog]:
    folder = tmp_path_factory.mktemp("saved-api")
    config = AppConfig(
        auth=PROXY,
        saved=SavedSettings(
            database=f"sqlite:///{folder / 'saved.db'}", secret_key="a passphrase for the tests"
        ),
        base=BaseSpec(sources=(demo_source(demo),)),
    )
    with run_catalog(config) as c:
        c.call(c.app.reload_base())
        yield c


def rpc(c: RunningCatalog, method: str, body: dict[str, Any], who: dict[str, str]) -> Any:
    r = httpx.post(
        c.url + API + method, json=body, headers={"content-type": "application/json", **who}
    )
    return r


def ok(c: RunningCatalog, method: str, body: dict[str, Any], who: dict[str, str]) -> Any:
    r = rpc(c, method, body, who)
    assert r.status_code == 200, r.text
    return r.json()


def _request(cid: str, name: str, city: str, assertions: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "request": {
            "collectionId": cid,
            "name": name,
            "folder": "now",
            "service": "weather.v1.WeatherService",
            "method": "GetCurrentConditions",
            "endpoint": "{{host}}",
            "transport": "TRANSPORT_GRPC",
            "metadata": {"x-token": "{{token}}"},
            "requestMessagesJson": ['{"location": {"city": "' + city + '"}}'],
            "assertions": assertions,
        }
    }


def test_team_collection_saved_run_and_exported(catalog: RunningCatalog, demo: DemoServer) -> None:
    c = catalog
    teams = ok(c, "ListCollections", {}, ALICE)["teams"]
    assert teams == ["eng"]  # proxy sign-in: no "everyone"
    coll = ok(c, "SaveCollection", {"name": "Weather", "team": "eng"}, ALICE)
    cid = coll["id"]
    good = [
        {"kind": "status", "op": "eq", "value": "OK"},
        {"kind": "field", "path": "$.placeName", "op": "eq", "value": '"Lisbon"'},
    ]
    bad = [{"kind": "field", "path": "$.placeName", "op": "eq", "value": '"Paris"'}]
    first = ok(c, "SaveRequest", _request(cid, "Lisbon", "Lisbon", good), ALICE)
    ok(c, "SaveRequest", _request(cid, "Not Paris", "Lisbon", bad), ALICE)
    env = ok(
        c,
        "SaveEnvironment",
        {
            "environment": {
                "collectionId": cid,
                "name": "local",
                "variables": [
                    {"name": "host", "value": demo.address},
                    {"name": "token", "value": SECRET, "secret": True},
                ],
                "auth": {"kind": "bearer", "token": SECRET + "-bearer"},
            }
        },
        ALICE,
    )
    assert SECRET not in str(env)
    assert {"name": "token", "secret": True, "valueSet": True} in env["variables"]
    assert env["auth"]["secretsSet"] == ["token"]
    # Bob (eng) sees it, edits the first request, and runs it with the environment.
    got = ok(c, "GetCollection", {"id": cid}, BOB)
    assert [r["name"] for r in got["requests"]] == ["Lisbon", "Not Paris"]
    assert SECRET not in str(got)
    first["description"] = "edited by bob"
    assert ok(c, "SaveRequest", {"request": first}, BOB)["description"] == "edited by bob"
    run = ok(c, "RunRequests", {"collectionId": cid, "environment": "local"}, BOB)
    assert run.get("passed") == 1 and run.get("failed") == 1
    lisbon, paris = run["results"]
    assert lisbon["passed"] and all(a["passed"] for a in lisbon["assertions"])
    assert (
        lisbon["statusName"] == "OK" and '"placeName":"Lisbon"' in lisbon["responseMessagesJson"][0]
    )
    assert not paris.get("passed") and paris["assertions"][0]["actual"] == '"Lisbon"'
    assert SECRET not in str(run)
    # Carol (sales) does not see it at all.
    assert ok(c, "ListCollections", {}, CAROL).get("collections", []) == []
    for method, body in (("GetCollection", {"id": cid}), ("RunRequests", {"collectionId": cid})):
        r = rpc(c, method, body, CAROL)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    # Export: no secret; import and export again: the same bytes.
    files = ok(c, "ExportCollection", {"id": cid}, ALICE)["files"]
    assert [f["path"] for f in files] == [
        "collection.json",
        "environments/local.json",
        "requests/now/lisbon.json",
        "requests/now/not-paris.json",
    ]
    assert all(SECRET not in f["content"] for f in files)
    assert all(f["content"].endswith("}\n") for f in files)
    made = ok(c, "ImportCollection", {"files": files, "team": ""}, CAROL)
    assert made["personal"] and made["requestCount"] == 2
    again = ok(c, "ExportCollection", {"id": made["id"]}, CAROL)["files"]
    assert again == files
    assert ok(c, "DeleteCollection", {"id": made["id"]}, CAROL)["deleted"]


def test_refusals_name_what_was_sent(catalog: RunningCatalog) -> None:
    c = catalog
    r = rpc(c, "SaveCollection", {"name": "x", "team": "sales"}, ALICE)
    assert r.status_code == 403 and "sales" in r.json()["message"]
    r = rpc(c, "SaveCollection", {"name": "  "}, ALICE)
    assert r.status_code == 400 and "name is required" in r.json()["message"]
    coll = ok(c, "SaveCollection", {"name": "Mine"}, ALICE)
    r = rpc(
        c,
        "SaveEnvironment",
        {
            "environment": {
                "collectionId": coll["id"],
                "name": "e",
                "variables": [{"name": "1bad", "value": "x"}],
            }
        },
        ALICE,
    )
    assert r.status_code == 400 and "1bad" in r.json()["message"]
    saved = ok(c, "SaveRequest", _request(coll["id"], "r", "Lisbon", []), ALICE)
    run = ok(c, "RunRequests", {"requestIds": [saved["id"]]}, ALICE)
    assert "which the environment does not define" in run["results"][0]["error"]  # none given
    r = rpc(c, "NoSuchMethod", {}, ALICE)
    assert r.status_code == 404 and "ListCollections" in r.json()["message"]
    r = httpx.post(c.url + API + "ListCollections", json={})
    assert r.status_code == 401  # sign-in covers the second service too
    r = rpc(c, "GetCollection", {"id": coll["id"], "bogus": 1}, ALICE)
    assert r.status_code == 400  # strict JSON


def test_default_database_is_not_created_until_used(tmp_path: Path) -> None:
    from connectrpc_catalog.app import create_app

    app = create_app(AppConfig(saved=SavedSettings(database="")))
    assert app.saved.url.startswith("sqlite:///") and app.saved.url.endswith("saved.db")
    assert app.saved._store is None


def test_paging_over_http(catalog: RunningCatalog) -> None:
    """ListCollections and GetCollection in pages through the API: every item once, in
    order; the unpaged answer (no pageSize, no pageToken) as before; sizes and tokens
    that cannot be used are invalid_argument with a message that says what to do."""
    c = catalog
    bob = {"x-forwarded-email": "bob.pager@example.com", "x-forwarded-groups": "pagers"}
    made = [ok(c, "SaveCollection", {"name": f"page {i:03d}"}, bob)["id"] for i in range(25)]
    everything = ok(c, "ListCollections", {}, bob)
    assert [x["id"] for x in everything["collections"]] == made
    assert "nextPageToken" not in everything  # unpaged: no token, as before
    seen, token, pages = [], "", 0
    while True:
        body = {"pageSize": 10, **({"pageToken": token} if token else {})}
        r = ok(c, "ListCollections", body, bob)
        seen += [x["id"] for x in r["collections"]]
        pages += 1
        token = r.get("nextPageToken", "")
        if not token:
            break
    assert seen == made and pages == 3
    # A collection's requests in pages; environments on the first page only.
    cid = made[0]
    for i in range(12):
        req = _request(cid, f"r{i:02d}", "Lisbon", [])
        req["request"]["folder"] = ["", "a", "a/b"][i % 3]
        ok(c, "SaveRequest", req, bob)
    env = {"environment": {"collectionId": cid, "name": "local"}}
    ok(c, "SaveEnvironment", env, bob)
    first = ok(c, "GetCollection", {"id": cid, "pageSize": 5}, bob)
    assert [r["name"] for r in first["requests"]] == [f"r{i:02d}" for i in range(5)]
    assert [e["name"] for e in first["environments"]] == ["local"]
    assert first["collection"]["requestCount"] == 12
    second = ok(
        c, "GetCollection", {"id": cid, "pageSize": 5, "pageToken": first["nextPageToken"]}, bob
    )
    assert [r["name"] for r in second["requests"]] == [f"r{i:02d}" for i in range(5, 10)]
    assert [r.get("folder", "") for r in second["requests"]] == ["a/b", "", "a", "a/b", ""]
    assert "environments" not in second
    # The token only for its collection and its caller.
    bad = {
        "garbage": ({"id": cid, "pageToken": "%%%not-a-token"}, bob),
        "another collection": ({"id": made[1], "pageToken": first["nextPageToken"]}, bob),
        "the list's": (
            {"id": cid, "pageToken": r.get("nextPageToken") or _list_token(c, bob)},
            bob,
        ),
    }
    for what, (body, who) in bad.items():
        answer = rpc(c, "GetCollection", body, who)
        assert answer.status_code == 400, (what, answer.text)
        assert answer.json()["code"] == "invalid_argument", what
        assert "first page" in answer.json()["message"], what
    team = ok(c, "SaveCollection", {"name": "shared", "team": "eng"}, ALICE)
    for i in range(3):
        ok(c, "SaveRequest", _request(team["id"], f"t{i}", "Lisbon", []), ALICE)
    alices = ok(c, "GetCollection", {"id": team["id"], "pageSize": 1}, ALICE)["nextPageToken"]
    stolen = rpc(c, "GetCollection", {"id": team["id"], "pageToken": alices}, BOB)
    assert stolen.status_code == 400 and stolen.json()["code"] == "invalid_argument"
    assert ok(c, "GetCollection", {"id": team["id"], "pageToken": alices}, ALICE)["requests"]
    carol = rpc(c, "GetCollection", {"id": team["id"], "pageToken": alices}, CAROL)
    assert carol.status_code == 404  # not hers at all: as if it did not exist
    # Sizes: negative refused, naming it; too big taken as the largest page.
    negative = rpc(c, "ListCollections", {"pageSize": -5}, bob)
    assert negative.status_code == 400 and "pageSize is -5" in negative.json()["message"]
    huge = ok(c, "ListCollections", {"pageSize": 2**31 - 1}, bob)
    assert len(huge["collections"]) == 25 and "nextPageToken" not in huge


def _list_token(c: RunningCatalog, who: dict[str, str]) -> str:
    token: str = ok(c, "ListCollections", {"pageSize": 1}, who)["nextPageToken"]
    return token


def test_self_reflection_serves_the_paging_fields(catalog: RunningCatalog) -> None:
    """The catalog's own gRPC reflection describes the new fields (and their comments)."""
    import grpc
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    target = catalog.url.removeprefix("http://")
    want = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="catalog.v1.CollectionService"
    ).SerializeToString()
    with grpc.insecure_channel(target) as channel:
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        answers = list(reflect(iter([want]), timeout=30, metadata=list(ALICE.items())))
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for answer in answers
        for raw in reflection_pb2.ServerReflectionResponse.FromString(
            answer
        ).file_descriptor_response.file_descriptor_proto
    ]
    proto = next(f for f in files if f.name == "catalog/v1/collections.proto")
    fields = {
        (m.name, f.name): f.number for m in proto.message_type for f in m.field if "page" in f.name
    }
    assert fields == {
        ("ListCollectionsRequest", "page_size"): 1,
        ("ListCollectionsRequest", "page_token"): 2,
        ("ListCollectionsResponse", "next_page_token"): 3,
        ("GetCollectionRequest", "page_size"): 2,
        ("GetCollectionRequest", "page_token"): 3,
        ("GetCollectionResponse", "next_page_token"): 4,
    }
    located = proto.source_code_info.location
    comments = " ".join(loc.leading_comments for loc in located)
    detached = " ".join(d for loc in located for d in loc.leading_detached_comments)
    assert "A next_page_token from an earlier answer" in comments
    assert "AIP-158" in detached  # the paging block above ListCollectionsRequest
