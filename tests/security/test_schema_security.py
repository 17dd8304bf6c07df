"""GetServiceSchema is linear in the schema, bounded, and built off the event loop.

Regression tests for "Safe by default": a chain of 400 messages used to answer 24.5 MiB
(every message carried every message it reaches in its own `$defs`), built on the event
loop, so one such request stalled every client; merges after a base reload ran on the
loop too.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from connectrpc_catalog.api import service as service_module
from connectrpc_catalog.descriptors import Schema, SchemaCache
from tests.catalog_server import run_catalog

API = "/catalog.v1.CatalogService/"
_F = descriptor_pb2.FieldDescriptorProto


def chain_set(count: int, package: str = "chain", extra: int = 0, width: int = 0) -> bytes:
    """A serialized FileDescriptorSet: `service Chain { rpc Get(M0) returns (M0); }` where
    M0 → M1 → … → M{count-1} (each also has scalars, `width` more strings and a shared
    enum), plus `extra` unrelated top-level messages X0 → X1 → … of the same package."""
    fd = descriptor_pb2.FileDescriptorProto(
        name=f"{package}.proto", package=package, syntax="proto3"
    )
    enum = fd.enum_type.add(name="Kind")
    for number, name in enumerate(("KIND_UNSPECIFIED", "KIND_A", "KIND_B")):
        enum.value.add(name=name, number=number)
    for prefix, n in (("M", count), ("X", extra)):
        for i in range(n):
            msg = fd.message_type.add(name=f"{prefix}{i}")
            msg.field.add(name="label", number=1, type=_F.TYPE_STRING, json_name="label")
            msg.field.add(name="size", number=2, type=_F.TYPE_INT64, json_name="size")
            msg.field.add(
                name="kind", number=3, type=_F.TYPE_ENUM, type_name=f".{package}.Kind",
                json_name="kind",
            )  # fmt: skip
            for k in range(width):
                msg.field.add(name=f"note{k}", number=10 + k, type=_F.TYPE_STRING,
                              json_name=f"note{k}")  # fmt: skip
            if i + 1 < n:
                msg.field.add(
                    name="next", number=4, type=_F.TYPE_MESSAGE,
                    type_name=f".{package}.{prefix}{i + 1}", json_name="next",
                )  # fmt: skip
    svc = fd.service.add(name="Chain")
    svc.method.add(name="Get", input_type=f".{package}.M0", output_type=f".{package}.M0")
    return descriptor_pb2.FileDescriptorSet(file=[fd]).SerializeToString()


def post(
    client: httpx.Client, url: str, method: str, body: dict[str, Any], sid: str | None = None
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if sid:
        headers["x-session-id"] = sid
    return client.post(url + API + method, json=body, headers=headers)


def load_set(client: httpx.Client, url: str, data: bytes, sid: str | None = None) -> str:
    r = post(client, url, "LoadProtos", {"descriptorSet": base64.b64encode(data).decode()}, sid)
    assert r.status_code == 200 and r.json()["success"] is True, r.text
    return r.headers["x-session-id"]


def schema_of(
    client: httpx.Client, url: str, sid: str, name: str = "chain.Chain"
) -> httpx.Response:
    return post(client, url, "GetServiceSchema", {"serviceName": name}, sid)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120) as client:
        yield client


class Gate:
    """Wraps `service._schemas` so a build waits until released, and counts builds."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.started = threading.Event()
        self.release = threading.Event()
        self.builds = 0

    def __call__(self, *args: Any) -> Any:
        self.builds += 1
        self.started.set()
        self.release.wait(60)
        return self.real(*args)


class Timed:
    """Wraps `service._schemas`, recording when each build starts and ends."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.windows: list[tuple[float, float]] = []

    def __call__(self, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.real(*args)
        finally:
            self.windows.append((start, time.perf_counter()))


def listing_calls_while(
    busy: threading.Thread, client: httpx.Client, url: str, sid: str
) -> list[tuple[float, float]]:
    """Call ListServices while `busy` runs: (start, end) of each call."""
    calls: list[tuple[float, float]] = []
    while busy.is_alive():
        t0 = time.perf_counter()
        r = post(client, url, "ListServices", {}, sid)
        assert r.status_code == 200
        calls.append((t0, time.perf_counter()))
    return calls


def test_a_chain_of_3000_messages_answers_linearly_while_others_are_served(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed = Timed(service_module._schemas)
    monkeypatch.setattr(service_module, "_schemas", timed)
    with run_catalog() as cat:
        # Wide messages make the build last long enough to count calls served meanwhile.
        small = load_set(http, cat.url, chain_set(300, width=6))
        big = load_set(http, cat.url, chain_set(3000, width=6))
        r = schema_of(http, cat.url, small)
        assert r.status_code == 200, r.text
        small_size = len(r.content)

        answer: list[httpx.Response] = []

        def get_big() -> None:
            with httpx.Client(timeout=120) as own:
                answer.append(schema_of(own, cat.url, big))

        # The server, this client and the build share one GIL in this process: hand it
        # over more often than every 5 ms, so a call is not mostly waiting for the GIL.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        try:
            with httpx.Client(timeout=120) as other:
                sid = post(other, cat.url, "ListServices", {}).headers["x-session-id"]
                worker = threading.Thread(target=get_big)
                worker.start()
                calls = listing_calls_while(worker, other, cat.url, sid)
                worker.join()
        finally:
            sys.setswitchinterval(switch)

        [r] = answer
        assert r.status_code == 200, r.text
        schemas = r.json()["messageSchemas"]
        assert set(schemas) == {f"chain.M{i}" for i in range(3000)} | {"chain.Kind"}
        assert len(r.content) / small_size < 15  # linear: 10x the types, about 10x the bytes
        assert len(r.content) < 8 << 20
        # While the big build ran, another client's calls were answered, each quickly.
        start, end = timed.windows[-1]
        inside = [c for c in calls if start <= c[0] and c[1] <= end]
        overlapping = [c[1] - c[0] for c in calls if c[0] < end and c[1] > start]
        assert len(inside) >= 3, (calls, start, end)
        assert max(overlapping) < (end - start) / 2, (overlapping, end - start)


def test_a_request_validates_against_the_chain_documents(http: httpx.Client) -> None:
    with run_catalog() as cat:
        sid = load_set(http, cat.url, chain_set(50))
        body = schema_of(http, cat.url, sid).json()
        docs = {name: json.loads(text) for name, text in body["messageSchemas"].items()}
        for doc in docs.values():
            Draft202012Validator.check_schema(doc)
            assert "$defs" not in doc
        root = docs["chain.M0"]
        assert root["title"] == "chain.M0" and root["type"] == "object" and root["properties"]
        registry: Registry[Any] = Registry().with_resources(
            (name, Resource.from_contents(doc)) for name, doc in docs.items()
        )
        v = Draft202012Validator(root, registry=registry)
        request: dict[str, Any] = {"label": "leaf", "size": "12", "kind": "KIND_B"}
        for i in range(10):
            request = {"label": f"n{i}", "size": i, "next": request}
        assert not list(v.iter_errors(request))
        request["next"]["next"]["kind"] = "KIND_Z"
        request["next"]["size"] = "twelve"
        errors = {tuple(e.absolute_path) for e in v.iter_errors(request)}
        assert errors == {("next", "next", "kind"), ("next", "size")}


def test_the_build_runs_off_the_loop_once_for_concurrent_requests(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(service_module._schemas)
    monkeypatch.setattr(service_module, "_schemas", gate)
    with run_catalog() as cat:
        sid = load_set(http, cat.url, chain_set(20))
        answers: list[httpx.Response] = []

        def get() -> None:
            with httpx.Client(timeout=120) as own:
                answers.append(schema_of(own, cat.url, sid))

        workers = [threading.Thread(target=get) for _ in range(4)]
        for w in workers:
            w.start()
        assert gate.started.wait(30)
        # The build is stuck in its thread: the loop still answers everyone else.
        for _ in range(5):
            assert post(http, cat.url, "ListServices", {}, sid).status_code == 200
        assert post(http, cat.url, "GetSession", {}, sid).status_code == 200
        assert not answers
        gate.release.set()
        for w in workers:
            w.join(60)
        assert [r.status_code for r in answers] == [200] * 4
        assert gate.builds == 1
        assert len({r.content for r in answers}) == 1
        assert schema_of(http, cat.url, sid).status_code == 200
        assert gate.builds == 1  # cached on the shared schema


def test_past_the_size_limit_resource_exhausted(http: httpx.Client) -> None:
    with run_catalog() as cat:
        cat.app.service.max_schema_bytes = 100_000
        sid = load_set(http, cat.url, chain_set(3000))
        for _ in range(2):
            r = schema_of(http, cat.url, sid)
            err = r.json()
            assert err["code"] == "resource_exhausted", r.text
            assert "chain.Chain" in err["message"] and "100000 bytes" in err["message"]
        # Other services and calls are unaffected.
        small = load_set(http, cat.url, chain_set(5, package="small"), sid)
        assert schema_of(http, cat.url, small, "small.Chain").status_code == 200


def test_the_package_extras_stop_at_the_limit_but_the_methods_types_stay(
    http: httpx.Client,
) -> None:
    with run_catalog() as cat:
        sid = load_set(http, cat.url, chain_set(3, extra=2000))
        full = schema_of(http, cat.url, sid).json()["messageSchemas"]
        assert len(full) == 3 + 2000 + 1  # everything fits under the default limit
        cat.app.service.max_schema_bytes = 60_000
        other = load_set(http, cat.url, chain_set(3, extra=2000))
        r = schema_of(http, cat.url, other)
        assert r.status_code == 200, r.text
        names = set(r.json()["messageSchemas"])
        assert {"chain.M0", "chain.M1", "chain.M2", "chain.Kind"} <= names
        assert not any(n.startswith("chain.X") for n in names)  # X0 reaches all 2000


def test_merges_after_a_base_reload_run_off_the_loop(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged_on: list[int] = []
    real_merge = SchemaCache.merge

    def merge(self: SchemaCache, parts: Any) -> Schema:
        merged_on.append(threading.get_ident())
        return real_merge(self, parts)

    monkeypatch.setattr(SchemaCache, "merge", merge)
    with run_catalog() as cat:

        async def loop_ident() -> int:
            return threading.get_ident()

        loop_thread = cat.call(loop_ident())
        sid = load_set(http, cat.url, chain_set(5))
        for n, method in enumerate(("ListServices", "GetSession", "GetServiceSchema")):
            base = cat.app.schemas.from_set(chain_set(3, package=f"base{n}"))
            cat.loop.call_soon_threadsafe(cat.app.base.replace, base, {})
            time.sleep(0.05)
            merged_on.clear()
            body = {"serviceName": "chain.Chain"} if method == "GetServiceSchema" else {}
            r = post(http, cat.url, method, body, sid)
            assert r.status_code == 200, r.text
            assert merged_on and loop_thread not in merged_on, method
        names = [s["name"] for s in post(http, cat.url, "ListServices", {}, sid).json()["services"]]
        assert names == ["base2.Chain", "chain.Chain"]
