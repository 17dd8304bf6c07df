"""Bounded fuzzing of every CollectionService RPC against one real catalog process
(`--demo`, a SQLite database, a secret key): random JSON and plausible-but-wrong
requests (ids that exist and do not, hostile names, paths, variables, assertions, files).

After every example: no 5xx but `unavailable`, no `internal`/`unknown` code, the process
alive, and no Traceback on its stderr. Reproducible (derandomized)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectrpc_catalog.gen.catalog.v1 import collections_pb
from tests.catalog_server import run_cli

API = "/catalog.v1.CollectionService/"
METHODS = [m.name for m in collections_pb.desc().services[0].methods]


class Catalog:
    def __init__(self, url: str, stderr: list[str], alive: Any) -> None:
        self.url, self.stderr, self.alive = url, stderr, alive
        self.client = httpx.Client(timeout=30)
        self.ids: dict[str, str] = {}

    def post(self, method: str, body: object) -> httpx.Response:
        return self.client.post(
            self.url + API + method,
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    folder = tmp_path_factory.mktemp("fuzz")
    args = (
        "--demo",
        "--database",
        f"sqlite:///{folder / 'saved.db'}",
        "--secret-key",
        "fuzz passphrase!!",
    )
    with run_cli(*args) as (url, proc):
        lines: list[str] = []
        assert proc.stderr is not None
        reader = threading.Thread(
            target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True
        )
        reader.start()
        c = Catalog(url, lines, lambda: proc.poll() is None)
        coll = c.post("SaveCollection", {"name": "fuzz", "team": "*"}).json()
        c.ids["collection"] = coll["id"]
        req = c.post(
            "SaveRequest",
            {
                "request": {
                    "collectionId": coll["id"],
                    "name": "r",
                    "service": "weather.v1.WeatherService",
                    "method": "GetCurrentConditions",
                }
            },
        ).json()
        c.ids["request"] = req["id"]
        env = c.post(
            "SaveEnvironment", {"environment": {"collectionId": coll["id"], "name": "e"}}
        ).json()
        c.ids["environment"] = env["id"]
        yield c


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
hostile = st.sampled_from(
    [
        "",
        " ",
        "..",
        "../../etc/passwd",
        "{{",
        "{{x}}",
        "{{ host }}" * 50,
        "$[[",
        "$..*",
        "\x00",
        "é" * 300,
        "a" * 5000,
        "*",
        "null",
    ]
)
texts = st.one_of(hostile, st.text(max_size=60))


def _id(kind: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(f"@{kind}"), texts)


assertions = st.lists(
    st.fixed_dictionaries(
        {
            "kind": st.one_of(
                st.sampled_from(["status", "field", "header", "trailer", "duration"]), texts
            ),
            "path": texts,
            "op": st.one_of(
                st.sampled_from(["eq", "ne", "lt", "contains", "exists", "absent"]), texts
            ),
            "value": texts,
        }
    ),
    max_size=3,
)
saved_request = st.fixed_dictionaries(
    {
        "collectionId": _id("collection"),
        "name": texts,
        "folder": texts,
        "endpoint": texts,
        "service": st.one_of(st.just("weather.v1.WeatherService"), texts),
        "method": st.one_of(st.just("GetCurrentConditions"), texts),
        "metadata": st.dictionaries(texts, texts, max_size=3),
        "requestMessagesJson": st.lists(texts, max_size=3),
        "assertions": assertions,
        "timeoutSeconds": st.integers(-5, 10_000),
    },
    optional={
        "id": _id("request"),
        "transport": st.sampled_from(["TRANSPORT_GRPC", "TRANSPORT_CONNECT", 7]),
    },
)
environment = st.fixed_dictionaries(
    {
        "collectionId": _id("collection"),
        "name": texts,
        "variables": st.lists(
            st.fixed_dictionaries({"name": texts, "value": texts, "secret": st.booleans()}),
            max_size=3,
        ),
        "auth": st.fixed_dictionaries(
            {
                "kind": st.one_of(
                    st.sampled_from(["bearer", "basic", "api_key", "oauth2_client_credentials"]),
                    texts,
                ),
                "tokenUrl": st.one_of(st.just("http://127.0.0.1:1/token"), texts),
                "headerName": texts,
                "token": texts,
            }
        ),
    },
    optional={"id": _id("environment")},
)
files = st.lists(
    st.fixed_dictionaries(
        {"path": texts, "content": st.one_of(texts, json_values.map(json.dumps))}
    ),
    max_size=4,
)
BODIES: dict[str, st.SearchStrategy[Any]] = {
    "ListCollections": st.just({}),
    "GetCollection": st.fixed_dictionaries({"id": _id("collection")}),
    "SaveCollection": st.fixed_dictionaries(
        {"name": texts, "team": texts}, optional={"id": _id("collection")}
    ),
    "DeleteCollection": st.fixed_dictionaries({"id": texts}),
    "SaveRequest": st.fixed_dictionaries({"request": saved_request}),
    "DeleteRequest": st.fixed_dictionaries({"id": texts}),
    "DuplicateRequest": st.fixed_dictionaries({"id": _id("request")}),
    "ReorderRequests": st.fixed_dictionaries(
        {"collectionId": _id("collection"), "requestIds": st.lists(_id("request"), max_size=3)}
    ),
    "SaveEnvironment": st.fixed_dictionaries({"environment": environment}),
    "DeleteEnvironment": st.fixed_dictionaries({"id": texts}),
    "RunRequests": st.fixed_dictionaries(
        {
            "collectionId": _id("collection"),
            "requestIds": st.lists(_id("request"), max_size=2),
            "environment": st.one_of(st.just("e"), texts),
        }
    ),
    "ExportCollection": st.fixed_dictionaries({"id": _id("collection")}),
    "ImportCollection": st.fixed_dictionaries({"files": files, "team": texts}),
}


def test_every_method_has_a_strategy() -> None:
    assert sorted(BODIES) == sorted(METHODS)


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@") and value[1:] in ids:
        return ids[value[1:]]
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(data=st.data())
def test_fuzz_every_rpc(catalog: Catalog, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(METHODS))
    body = data.draw(st.one_of(BODIES[method], json_values), label=method)
    r = catalog.post(method, _resolve(body, catalog.ids))
    assert catalog.alive(), "the catalog died"
    assert r.status_code < 500 or r.status_code == 503, (method, body, r.text)
    if r.status_code != 200:
        assert r.json()["code"] not in ("internal", "unknown"), (method, body, r.text)
    assert not any("Traceback" in line for line in catalog.stderr), "".join(catalog.stderr)[-3000:]
