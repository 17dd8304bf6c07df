"""Hostile input to saved requests (CollectionService, saved/): each finding of the
security review as a regression test, on a real catalog (proxy sign-in, SQLite, a
secret key) with the demo Weather server as the upstream, or on the pure module.

- JSON nested past Python's recursion limit inside a string (an imported file, a saved
  request message, an assertion's expected value, a token endpoint's answer) was an
  uncaught RecursionError: `internal`. A token endpoint's `expires_in` of 10**400 was an
  OverflowError: `internal`.
- A JSONPath with chained descendant segments (`$..*..*..*..*..*`: 25 s on a 581-byte
  response) or a regular expression (`match()`, `search()`, `=~`: catastrophic
  backtracking) ran on the event loop with no bound.
- Variables could grow one call to gigabytes (1,000 messages x 4 Mi characters each).
- Another identity's collections, requests and environments are `not_found` through every
  RPC that takes an id (moving, duplicating, running, exporting, overwriting).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.demo import demo_source
from connectrpc_catalog.demo.weather import DemoServer, start
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.saved import assertions
from connectrpc_catalog.settings import AuthSettings, SavedSettings
from connectrpc_catalog.startup import BaseSpec
from tests.catalog_server import RunningCatalog, run_catalog, run_cli

API = "/catalog.v1.CollectionService/"
PROXY = AuthSettings(
    mode="proxy", trusted_proxies=("127.0.0.1/32",), groups_header="X-Forwarded-Groups"
)
ALICE = {"x-forwarded-email": "alice@example.com", "x-forwarded-groups": "eng"}
MALLORY = {"x-forwarded-email": "mallory@example.com", "x-forwarded-groups": "sales"}
CLIENT_SECRET = "oauth-client-secret-never-shown"
DEEP = "[" * 5000
FOLDERS: list[Path] = []
"""The catalog's database folder (never to be shown in a message)."""


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    server = start("127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def catalog(demo: DemoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCatalog]:
    folder = tmp_path_factory.mktemp("saved-security")
    FOLDERS.append(folder)
    config = AppConfig(
        auth=PROXY,
        saved=SavedSettings(
            database=f"sqlite:///{folder / 'saved.db'}", secret_key="security review passphrase"
        ),
        base=BaseSpec(sources=(demo_source(demo),)),
    )
    with run_catalog(config) as c:
        c.call(c.app.reload_base())
        yield c


class TokenEndpoint:
    """An OAuth token endpoint on 127.0.0.1 that answers whatever `body` holds."""

    def __init__(self) -> None:
        self.body = b"{}"
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.server.shutdown()


def rpc(c: RunningCatalog, method: str, body: dict[str, Any], who: dict[str, str]) -> Any:
    return httpx.post(
        c.url + API + method,
        json=body,
        headers={"content-type": "application/json", **who},
        timeout=60,
    )


def ok(c: RunningCatalog, method: str, body: dict[str, Any], who: dict[str, str]) -> Any:
    r = rpc(c, method, body, who)
    assert r.status_code == 200, r.text
    return r.json()


def refused(r: httpx.Response, code: str) -> str:
    """The refusal's message, after checking it is `code` (never internal/unknown)."""
    assert r.status_code != 500 and r.json()["code"] == code, r.text
    return str(r.json()["message"])


def saved_request(cid: str, demo: DemoServer, **fields: Any) -> dict[str, Any]:
    return {
        "request": {
            "collectionId": cid,
            "name": fields.pop("name", "now"),
            "service": "weather.v1.WeatherService",
            "method": "GetCurrentConditions",
            "endpoint": demo.address,
            "transport": "TRANSPORT_GRPC",
            "requestMessagesJson": ['{"location": {"city": "Lisbon"}}'],
            **fields,
        }
    }


def collection(c: RunningCatalog, who: dict[str, str], name: str) -> str:
    return str(ok(c, "SaveCollection", {"name": name}, who)["id"])


# -- JSON too deep for Python's parser, inside strings ----------------------------------


def test_import_of_a_deeply_nested_file_is_invalid_argument(catalog: RunningCatalog) -> None:
    files = [{"path": "collection.json", "content": DEEP}]
    message = refused(rpc(catalog, "ImportCollection", {"files": files}, ALICE), "invalid_argument")
    assert "collection.json" in message and "deeply" in message
    assert rpc(catalog, "ListCollections", {}, ALICE).status_code == 200


def test_export_of_a_deeply_nested_message_works(catalog: RunningCatalog, demo: DemoServer) -> None:
    cid = collection(catalog, ALICE, "deep export")
    ok(catalog, "SaveRequest", saved_request(cid, demo, requestMessagesJson=[DEEP]), ALICE)
    files = ok(catalog, "ExportCollection", {"id": cid}, ALICE)["files"]
    (request_file,) = [f for f in files if f["path"].startswith("requests/")]
    assert json.loads(request_file["content"])["messages"] == [DEEP]  # kept as text


def test_deeply_nested_expected_value_is_a_failed_assertion(
    catalog: RunningCatalog, demo: DemoServer
) -> None:
    cid = collection(catalog, ALICE, "deep expected")
    check = {"kind": "field", "path": "$.placeName", "op": "eq", "value": "[" * 1900}
    ok(catalog, "SaveRequest", saved_request(cid, demo, assertions=[check]), ALICE)
    (result,) = ok(catalog, "RunRequests", {"collectionId": cid}, ALICE)["results"]
    assert result["statusName"] == "OK"
    assert not result.get("passed") and not result["assertions"][0].get("passed")


@pytest.mark.parametrize(
    "answer",
    [
        b"[" * 5000,
        b'{"access_token": "t", "expires_in": 1' + b"0" * 400 + b"}",
    ],
    ids=["deep-json", "huge-expires-in"],
)
def test_hostile_token_endpoint_is_a_run_error_not_internal(
    catalog: RunningCatalog, demo: DemoServer, token_endpoint: TokenEndpoint, answer: bytes
) -> None:
    token_endpoint.body = answer
    cid = collection(catalog, ALICE, f"token {len(answer)}")
    auth = {
        "kind": "oauth2_client_credentials",
        "tokenUrl": token_endpoint.url,
        "clientId": "catalog",
        "clientSecret": CLIENT_SECRET,
    }
    env = {"collectionId": cid, "name": "oauth", "auth": auth}
    ok(catalog, "SaveEnvironment", {"environment": env}, ALICE)
    ok(catalog, "SaveRequest", saved_request(cid, demo), ALICE)
    r = rpc(catalog, "RunRequests", {"collectionId": cid, "environment": "oauth"}, ALICE)
    assert r.status_code == 200, r.text
    assert CLIENT_SECRET not in r.text
    (result,) = r.json()["results"]
    if answer.startswith(b"["):
        assert "without JSON" in result["error"]
    else:  # a lifetime no float holds: the default lifetime, and the call is made
        assert result["statusName"] == "OK", result


# -- JSONPath whose cost the response multiplies ----------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"a": 1}
    for i in range(depth):
        doc = {"a": doc, "b": [doc] if i < 3 else 1}
    return doc


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("$..*..*..*..*..*", "descendant"),
        ("$..a..a", "descendant"),
        ("$[?@..a[?@..b]]", "descendant"),
        ("$[?@.a =~ /(a|a)*b/]", "regular expression"),
    ],
)
def test_costly_jsonpath_is_refused_when_saved(
    catalog: RunningCatalog, demo: DemoServer, path: str, why: str
) -> None:
    cid = collection(catalog, ALICE, f"path {path}")
    check = {"kind": "field", "path": path, "op": "exists"}
    r = rpc(catalog, "SaveRequest", saved_request(cid, demo, assertions=[check]), ALICE)
    assert why in refused(r, "invalid_argument")


@pytest.mark.parametrize(
    "path",
    [
        "$..*..*..*..*..*",
        "$[?match(@.a, '(a|a)*b')]",
        "$[?search(@.a, '(a|a)*b')]",
        "$[?@.a =~ /(a|a)*b/]",
    ],
)
def test_costly_jsonpath_is_not_evaluated_at_run(path: str) -> None:
    """A row saved before the rule (or written to the database directly) still runs
    bounded: the path is refused in the result, the response is never searched."""
    message = json.dumps({"a": "a" * 30, **_nested(30)})
    out = assertions.Outcome(
        status_code=0, messages=[message], headers=[], trailers=[], duration_ms=1.0,
        streaming=False,
    )  # fmt: skip
    check = pb.Assertion(kind="field", path=path, op="exists")
    (result,) = asyncio.run(assertions.check_all([check], out))
    assert not result.passed
    assert any(w in result.actual for w in ("descendant", "regular", "not a valid"))


def test_one_descendant_segment_still_works() -> None:
    out = assertions.Outcome(
        status_code=0, messages=[json.dumps(_nested(30))], headers=[], trailers=[],
        duration_ms=1.0, streaming=False,
    )  # fmt: skip
    check = pb.Assertion(kind="field", path="$..b", op="exists")
    (result,) = asyncio.run(assertions.check_all([check], out))
    assert result.passed and "match" in result.actual


# -- variables that grow one call to gigabytes ------------------------------------------


def test_variables_cannot_grow_a_call_past_its_bound(
    catalog: RunningCatalog, demo: DemoServer
) -> None:
    cid = collection(catalog, ALICE, "blow-up")
    env = {
        "collectionId": cid,
        "name": "big",
        "variables": [{"name": "big", "value": "a" * (64 * 1024)}],
    }
    ok(catalog, "SaveEnvironment", {"environment": env}, ALICE)
    # 100 messages x 60 x 64 KiB = 390 Mi characters (each message under its 4 Mi bound).
    messages = ['{"stationId": "' + "{{big}}" * 60 + '"}'] * 100
    ok(catalog, "SaveRequest", saved_request(cid, demo, requestMessagesJson=messages), ALICE)
    r = rpc(catalog, "RunRequests", {"collectionId": cid, "environment": "big"}, ALICE)
    assert r.status_code == 200, r.text[:300]
    (result,) = r.json()["results"]
    assert "characters with its variables in" in result["error"]
    assert rpc(catalog, "ListCollections", {}, ALICE).status_code == 200


# -- another identity's things ------------------------------------------------------------


def test_another_identitys_saved_things_are_not_found_through_every_id(
    catalog: RunningCatalog, demo: DemoServer
) -> None:
    personal = collection(catalog, ALICE, "alice's")
    team = str(ok(catalog, "SaveCollection", {"name": "eng's", "team": "eng"}, ALICE)["id"])
    env = {"collectionId": personal, "name": "prod", "variables": [{"name": "x", "value": "1"}]}
    env_id = ok(catalog, "SaveEnvironment", {"environment": env}, ALICE)["id"]
    req_id = ok(catalog, "SaveRequest", saved_request(personal, demo), ALICE)["id"]
    team_req = ok(catalog, "SaveRequest", saved_request(team, demo), ALICE)["id"]
    mine = collection(catalog, MALLORY, "mallory's")
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("GetCollection", {"id": personal}),
        ("GetCollection", {"id": team}),
        ("ExportCollection", {"id": personal}),
        ("DeleteCollection", {"id": team}),
        ("SaveCollection", {"id": personal, "name": "taken"}),
        ("DuplicateRequest", {"id": req_id}),
        ("DeleteRequest", {"id": team_req}),
        ("ReorderRequests", {"collectionId": personal, "requestIds": [req_id]}),
        ("RunRequests", {"collectionId": personal}),
        ("RunRequests", {"requestIds": [req_id]}),
        ("RunRequests", {"collectionId": mine, "requestIds": [req_id]}),
        ("RunRequests", {"collectionId": personal, "environment": env_id}),
        ("DeleteEnvironment", {"id": env_id}),
        # moving someone else's request or environment into one's own collection
        ("SaveRequest", {"request": {**saved_request(mine, demo)["request"], "id": req_id}}),
        ("SaveEnvironment", {"environment": {"collectionId": mine, "name": "p", "id": env_id}}),
    ]
    for method, body in attempts:
        r = rpc(catalog, method, body, MALLORY)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, r.text)
    r = rpc(catalog, "SaveCollection", {"name": "in eng", "team": "eng"}, MALLORY)
    assert refused(r, "permission_denied")
    # Alice's things are as they were.
    got = ok(catalog, "GetCollection", {"id": personal}, ALICE)
    assert [q["id"] for q in got["requests"]] == [req_id]
    assert got["collection"]["name"] == "alice's"
    assert [e["id"] for e in got["environments"]] == [env_id]
    assert [q["id"] for q in ok(catalog, "GetCollection", {"id": team}, ALICE)["requests"]] == [
        team_req
    ]


def test_errors_never_show_the_database_path_or_the_secret_key(
    catalog: RunningCatalog, demo: DemoServer
) -> None:
    cid = collection(catalog, ALICE, "leaks")
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("GetCollection", {"id": "../../saved.db"}),
        ("ImportCollection", {"files": [{"path": "collection.json", "content": "{"}]}),
        ("SaveRequest", saved_request(cid, demo, folder="/../x")),
        ("SaveEnvironment", {"environment": {"collectionId": cid, "name": "\x00"}}),
        ("SaveEnvironment", {"environment": {"collectionId": cid, "name": "a", "id": "x"}}),
    ]
    for method, body in bodies:
        r = rpc(catalog, method, body, ALICE)
        assert r.status_code in (400, 404), r.text
        text = r.json()["message"]
        assert "security review passphrase" not in text
        assert str(FOLDERS[0]) not in text and "saved-security" not in text
        assert "Traceback" not in text and "Error:" not in text


def test_a_database_that_cannot_open_is_unavailable_without_its_path(tmp_path: Path) -> None:
    """The default database (no --database) opens on first use: a client is told it is
    unavailable, the log names where."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the data folder should be")
    env = {"XDG_DATA_HOME": str(blocked)}
    with run_cli(env=env) as (url, proc):
        r = httpx.post(
            url + API + "ListCollections", content=b"{}",
            headers={"content-type": "application/json"}, timeout=30,
        )  # fmt: skip
        assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
        assert str(blocked) not in r.text and str(tmp_path) not in r.text
        assert "log" in r.json()["message"]
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert str(blocked) in err  # the operator learns where


def test_failed_token_fetches_leave_no_lock_behind(token_endpoint: TokenEndpoint) -> None:
    """Each distinct client whose token fetch failed used to keep a lock forever."""
    from connectrpc_catalog.saved.authhelpers import TokenCache, TokenError

    token_endpoint.body = b'{"error": "invalid_client"}'
    cache = TokenCache(max_entries=4)

    async def fail_many() -> None:
        for i in range(20):
            auth = pb.AuthHelper(
                kind="oauth2_client_credentials",
                token_url=token_endpoint.url,
                client_id="c",
                client_secret=f"secret-{i}",
            )
            with pytest.raises(TokenError):
                await cache.token(auth)

    asyncio.run(fail_many())
    assert cache.fetches == 20
    assert len(cache._locks) == 0


def test_the_token_endpoint_is_reached_at_the_address_the_policy_checked(
    token_endpoint: TokenEndpoint,
) -> None:
    """The policy resolves the token URL's name and checks each address; the fetch then
    connects to the checked address. Before, httpx resolved the name again, so a second
    DNS answer (rebinding) reached an address no one checked."""
    import ipaddress
    from dataclasses import replace

    from connectrpc_catalog.identity import Identity
    from connectrpc_catalog.policy import AccessPolicy
    from connectrpc_catalog.saved.authhelpers import TokenCache

    answers = ["127.0.0.1", "192.0.2.1"]  # then TEST-NET-1, which the policy refuses

    async def rebinding(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address(answers.pop(0) if len(answers) > 1 else answers[0])]

    policy = replace(AccessPolicy.build(allow_targets=["127.0.0.0/8"]), resolver=rebinding)
    who = Identity(name="alice@example.com")
    port = token_endpoint.url.split(":")[2].split("/")[0]
    auth = pb.AuthHelper(
        kind="oauth2_client_credentials",
        token_url=f"http://token.rebind.test:{port}/token",  # resolves nowhere but here
        client_id="c",
        client_secret=CLIENT_SECRET,
    )
    token_endpoint.body = b'{"access_token": "pinned-token", "expires_in": 60}'

    async def check(host: str, port: int) -> str | None:
        return await policy.check_target(host, port, who)

    async def fetch() -> str:
        return await TokenCache().token(auth, check)

    assert asyncio.run(fetch()) == "pinned-token"
