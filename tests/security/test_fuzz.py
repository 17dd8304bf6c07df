"""Bounded fuzzing of every catalog.v1 RPC against one real catalog process.

Random JSON values, random bytes and plausible-but-wrong requests, under every content
type the API speaks (and some it does not), with random session ids, timeouts, encodings
and headers, over HTTP/1.1 and HTTP/2. The catalog runs as the real command, so a crash
shows as a dead process. Reproducible: examples are derived from the test, not the clock.

The RPCs are read from the generated descriptors of every catalog.v1 service
(CatalogService, CollectionService, and any added later): the hand-written strategies of
`PLAUSIBLE` where there is one, else requests derived field by field from the input
message's descriptor (hostile strings, ids that exist, numbers at the edges).

After every example: no 5xx (except 503 `unavailable`, and 504 `deadline_exceeded` when the
request itself asked for a short deadline, and 501 `unimplemented` for a compression it
named), no `internal`/`unknown` error codes (but the specs' "protocol error" ones), every
error code one of Connect's, no server path, secret or exception text in a message, the
process is alive, its RSS stays under 1.5 GB and no Traceback reached its stderr. After
each RPC's run: the loaded session and a collection the fuzz never names are unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import struct
import subprocess
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, timestamp_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import connectrpc_catalog
from connectrpc_catalog.gen.catalog.v1 import catalog_pb, collections_pb
from tests.catalog_server import _wait_listening, run_cli
from tests.upstream.behaviour import Recorder
from tests.upstream.grpc_server import GrpcServer, start_grpc_server
from tests.upstream.schema import PROTO_DIR, SERVICE, load_schema

API = "/catalog.v1.CatalogService/"
COLLECTIONS = "/catalog.v1.CollectionService/"
WEATHER_PROTOS = Path(__file__).parents[1] / "fixtures" / "protos"
WEATHER = "acme.weather.v1.WeatherService"
ADMIN_TOKEN = "fuzz-admin-token"
SECRET_KEY = "fuzz secret key, never shown"
RSS_LIMIT_KB = 1_500 * 1024
GENERATED = (catalog_pb, collections_pb)
"""The generated modules of the catalog.v1 API: every service of each is fuzzed."""
ROUTES: dict[str, tuple[str, Any]] = {
    method.name: (f"/{service.type_name}/{method.name}", method.input.type)
    for module in GENERATED
    for service in module.desc().services
    for method in service.methods
}
"""RPC name → (path, generated input class), for every RPC of every service."""
RPCS = list(ROUTES)
MESSAGES = {rpc: cls for rpc, (_, cls) in ROUTES.items()}
CONNECT_CODES = {
    "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
    "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
    "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
    "unauthenticated",
}  # fmt: skip
PACKAGE_DIR = str(Path(connectrpc_catalog.__file__).parent)
EXCEPTION_TEXT = ("Traceback", 'File "', "site-packages", "Error(", "sqlalchemy", "aiosqlite")
SCALE = float(os.environ.get("CATALOG_FUZZ_SCALE", "1"))
"""More examples for a deeper run (e.g. 5); 1 keeps the whole file under a minute in CI."""
EXAMPLES = {"LoadProtos": 60, "InvokeGRPC": 60, "InvokeStream": 60}
"""Examples per RPC where the default (`DEFAULT_EXAMPLES`) is not enough."""
DEFAULT_EXAMPLES = 30
FUZZ = settings(
    max_examples=DEFAULT_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is the report
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


# ---------------------------------------------------------------- the catalog under test


@dataclass
class Request:
    """One HTTP request, as sent."""

    method: str
    path: str
    headers: list[tuple[str, bytes]]
    body: bytes
    h2: bool = False
    query: dict[str, str] = field(default_factory=dict)
    sid: str = "none"

    def __repr__(self) -> str:
        body = (
            self.body
            if len(self.body) <= 400
            else self.body[:400] + b"...(%d bytes)" % len(self.body)
        )
        return (
            f"Request({self.method} {self.path} h2={self.h2} query={self.query!r} "
            f"sid={self.sid} headers={self.headers!r} body={body!r})"
        )


class Target:
    """The catalog command plus clients; restarted (and the crash recorded) if it died."""

    def __init__(self, upstream: GrpcServer) -> None:
        self.upstream = upstream
        self.crashes: list[str] = []
        self.last: Request | None = None
        self._start()

    def _start(self) -> None:
        self.folder = Path(f"/tmp/security-review-fuzz-{os.getpid()}-{len(self.crashes)}")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self._cm = run_cli(
            "--proto",
            str(PROTO_DIR),
            "--admin-token",
            ADMIN_TOKEN,
            "--database",
            f"sqlite:///{self.folder / 'saved.db'}",
            "--secret-key",
            SECRET_KEY,
        )
        self.url, self.proc = self._cm.__enter__()
        _wait_listening(int(urllib.parse.urlsplit(self.url).port or 0))
        self.lines: list[str] = []
        threading.Thread(target=self._drain, args=(self.proc, self.lines), daemon=True).start()
        self.h1 = httpx.Client(timeout=30)
        self.h2 = httpx.Client(http1=False, http2=True, timeout=30)
        r = self.h1.post(
            self.url + API + "LoadProtos",
            json={"protoPath": str(WEATHER_PROTOS)},
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200 and r.json()["success"], r.text
        self.loaded = str(r.headers["x-session-id"])
        self.ids = self._saved_ids()
        self.victim = self._collection("victim")
        self.victim_before = self.victim_view()

    def call(self, path: str, body: dict[str, Any], sid: str | None = None) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if sid:
            headers["x-session-id"] = sid
        return self.h1.post(self.url + path, content=json.dumps(body), headers=headers)

    def _collection(self, name: str) -> dict[str, str]:
        """A collection with one request and one environment (with a secret): its ids."""
        coll = self.call(COLLECTIONS + "SaveCollection", {"name": name, "team": "*"}).json()
        saved = {
            "collectionId": coll["id"],
            "name": "current",
            "endpoint": self.upstream.address,
            "service": SERVICE,
            "method": "Echo",
            "requestMessagesJson": ['{"message": "{{word}}"}'],
            "assertions": [{"kind": "status", "op": "eq", "value": "OK"}],
        }
        req = self.call(COLLECTIONS + "SaveRequest", {"request": saved}).json()
        env = {
            "collectionId": coll["id"],
            "name": "env",
            "variables": [
                {"name": "word", "value": "hello"},
                {"name": "pw", "value": "fuzz-secret-variable", "secret": True},
            ],
        }
        made = self.call(COLLECTIONS + "SaveEnvironment", {"environment": env}).json()
        return {"collection": coll["id"], "request": req["id"], "environment": made["id"]}

    def _saved_ids(self) -> dict[str, str]:
        """Ids the fuzz may name (and so change): a collection, a request, an
        environment, and a live call of the loaded session."""
        ids = self._collection("fuzz")
        call = {
            "endpoint": self.upstream.address,
            "service": SERVICE,
            "method": "BidiStream",
            "transport": "TRANSPORT_GRPC",
        }
        r = self.call(API + "StartCall", {"call": call}, self.loaded)
        ids["call"] = str(r.json().get("callId", "")) if r.status_code == 200 else ""
        return ids

    def victim_view(self) -> Any:
        r = self.call(COLLECTIONS + "GetCollection", {"id": self.victim["collection"]})
        assert r.status_code == 200, r.text
        return r.json()

    @staticmethod
    def _drain(proc: subprocess.Popen[str], lines: list[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    def ensure_alive(self) -> None:
        rc = self.proc.poll()
        if rc is not None:
            self.crashes.append(f"exit code {rc}")
            self.stop()
            self._start()

    def reconnect(self) -> None:
        """New connections (after one was broken)."""
        with contextlib.suppress(Exception):
            self.h1.close()
            self.h2.close()
        self.h1 = httpx.Client(timeout=30)
        self.h2 = httpx.Client(http1=False, http2=True, timeout=30)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.h1.close()
            self.h2.close()
        self._cm.__exit__(None, None, None)
        shutil.rmtree(self.folder, ignore_errors=True)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def session_id(self, choice: str) -> str | None:
        if choice == "loaded":
            return self.loaded
        if choice == "fresh":
            r = self.h1.post(
                self.url + API + "GetSession",
                content=b"{}",
                headers={"content-type": "application/json"},
            )
            return str(r.headers.get("x-session-id", ""))
        return None

    def send(self, req: Request) -> httpx.Response:
        client = self.h2 if req.h2 else self.h1
        headers = list(req.headers)
        sid = self.session_id(req.sid)
        if sid:
            headers.append(("x-session-id", sid.encode()))
        request = client.build_request(
            req.method,
            self.url + req.path,
            params=req.query or None,
            headers=headers,
            content=req.body if req.method not in ("GET", "HEAD") or req.body else None,
        )
        return client.send(request)


@pytest.fixture(scope="module")
def upstream() -> Iterator[GrpcServer]:
    server = start_grpc_server(Recorder())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def target(upstream: GrpcServer) -> Iterator[Target]:
    t = Target(upstream)
    try:
        yield t
    finally:
        t.stop()


# ---------------------------------------------------------------- checking one answer


def _frames(raw: bytes) -> list[tuple[int, bytes]]:
    out = []
    pos = 0
    while pos + 5 <= len(raw):
        flags, size = struct.unpack(">BI", raw[pos : pos + 5])
        out.append((flags, raw[pos + 5 : pos + 5 + size]))
        pos += 5 + size
    return out


_GRPC_NAMES = {"2": "unknown", "13": "internal", "14": "unavailable", "15": "data_loss"}


def _errors(r: httpx.Response) -> list[tuple[str, str]]:
    """Every (code, message) the answer carries: Connect JSON or end-stream, gRPC status."""
    found: list[tuple[str, str]] = []
    ctype = r.headers.get("content-type", "")
    raw = r.content
    if ctype.startswith("application/connect+"):
        for flags, payload in _frames(raw):
            if flags & 2:
                with contextlib.suppress(ValueError, AttributeError):
                    err = json.loads(payload or b"{}").get("error") or {}
                    found.append((str(err.get("code", "")), str(err.get("message", ""))))
    elif ctype.startswith("application/grpc"):
        fields = [(r.headers.get("grpc-status"), r.headers.get("grpc-message", ""))]
        for flags, payload in _frames(raw):
            if flags & 0x80:
                lines = payload.decode("latin-1").split("\r\n")
                pairs = dict(line.lower().partition(":")[::2] for line in lines if ":" in line)
                fields.append((pairs.get("grpc-status"), pairs.get("grpc-message", "")))
        for number, message in fields:
            if number is not None:
                name = _GRPC_NAMES.get(number.strip(), number.strip())
                found.append((name, urllib.parse.unquote(message.strip())))
    elif ctype.startswith("application/json"):
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
            if isinstance(body, dict) and "code" in body:
                found.append((str(body["code"]), str(body.get("message", ""))))
    return found


def _is_bug(code: str, message: str) -> bool:
    """An error that means the catalog failed, not the request.

    The Connect and gRPC specs make a message flagged compressed without a negotiated
    encoding an `internal` error ("protocol error: ..."); that one is the client's doing.
    """
    if code == "internal" and message.startswith("protocol error"):
        return False
    return code in ("internal", "unknown", "data_loss")


def _asked_for_a_deadline(req: Request) -> bool:
    return any(k in ("connect-timeout-ms", "grpc-timeout") for k, _ in req.headers) or any(
        k in req.body for k in (b"timeoutSeconds", b"timeout_seconds")
    )


def _named_an_encoding(req: Request) -> bool:
    return any(k.endswith("encoding") for k, _ in req.headers) or "compression" in req.query


def _leaks(target: Target, message: str, req: Request) -> list[str]:
    """What an error message shows that only the server knows (and the request did not
    send): its files, its secret key, a stored secret, exception text."""
    secrets = [SECRET_KEY, "fuzz-secret-variable", str(target.folder), PACKAGE_DIR]
    found = [s for s in secrets if s in message and s.encode() not in req.body]
    found += [t for t in EXCEPTION_TEXT if t in message and t.encode() not in req.body]
    return found


def exchange(target: Target, req: Request) -> None:
    """Send one request and check the answer and the process."""
    mark = len(target.lines)
    try:
        r = target.send(req)
    except httpx.LocalProtocolError:
        return  # the client refused to send it: not a request the server could see
    except httpx.TransportError as exc:
        time.sleep(0.2)
        rc = target.proc.poll()
        if rc is not None:
            raise AssertionError(f"the catalog died (exit code {rc}) on {req!r}") from exc
        target.reconnect()
        raise AssertionError(
            f"no proper answer ({exc!r}) to {req!r}; the request before: {target.last!r}"
        ) from exc
    finally:
        target.last = req
    status = r.status_code
    errors = _errors(r)
    codes = [code for code, _ in errors]
    if status >= 500:
        documented = (
            (status == 503 and set(codes) <= {"unavailable"})
            # Protocol-mandated: a deadline the request itself set, a compression it named.
            or (
                status == 504 and set(codes) <= {"deadline_exceeded"} and _asked_for_a_deadline(req)
            )
            or (status == 501 and set(codes) == {"unimplemented"} and _named_an_encoding(req))
        )
        assert documented, f"HTTP {status} {codes} {r.content[:300]!r} for {req!r}"
    bad = [e for e in errors if _is_bug(*e)]
    assert not bad, f"error code {bad} (HTTP {status}) {r.content[:300]!r} for {req!r}"
    odd = [code for code in codes if code not in CONNECT_CODES and not code.isdigit()]
    assert not odd, f"error code {odd} is not a Connect code (HTTP {status}) for {req!r}"
    leaks = [leak for _, message in errors for leak in _leaks(target, message, req)]
    assert not leaks, f"error message shows {leaks}: {r.content[:600]!r} for {req!r}"
    assert target.proc.poll() is None, f"the catalog died on {req!r}"
    rss = target.rss_kb()
    assert rss < RSS_LIMIT_KB, f"RSS {rss} kB after {req!r}"
    new = "".join(target.lines[mark:])
    assert "Traceback" not in new, f"{new[-3000:]}\nafter {req!r}"


# ---------------------------------------------------------------- strategies

_SAFE_HEADER_BYTES = bytes(b for b in range(0x20, 0x100) if b != 0x7F)
header_bytes = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c in _SAFE_HEADER_BYTES).strip(b" \t")
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30
).map(lambda s: s.encode())
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=25,
)


def _deep(depth: int, shape: str) -> str:
    if shape == "arrays":
        return "[" * depth + "]" * depth
    if shape == "objects":
        return '{"a":' * depth + "1" + "}" * depth
    if shape == "mixed":
        return '{"a":[' * depth + "]}" * depth
    return "[" * depth


deep_json = st.builds(
    _deep,
    st.integers(min_value=1, max_value=20_000),
    st.sampled_from(["arrays", "objects", "mixed", "unbalanced"]),
)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


json_text = st.one_of(json_value.map(_dumps), st.text(max_size=60), deep_json, st.just(""))

PROTO_SNIPPETS = [
    'syntax = "proto3";\npackage fz;\nmessage M { string a = 1; }\n',
    'syntax = "proto3";\npackage fz;\nservice S { rpc Do(M) returns (M); }\nmessage M {}\n',
    'syntax = "proto3";\nimport "nowhere.proto";\n',
    'syntax = "proto3";\nimport "a.proto";\n',
    'syntax = "proto2";\npackage fz;\nmessage M { optional int32 a = 1 [default = 7]; }\n',
    'syntax = "proto3";\npackage acme.weather.v1;\nmessage Conditions { int32 x = 1; }\n',
    'syntax = "proto3";\npackage testsvc.v1;\nservice TestService { rpc Echo(E) returns (E); }\n'
    "message E {}\n",
    'syntax = "editions";\nedition = "2023";\npackage fz;\nmessage M { string a = 1; }\n',
    "message " + "N" * 5000 + " {}\n",
    'syntax = "proto3";\n' + "message M { M m = 1; }\n",
    "\x00\xff garbage",
]
file_names = st.one_of(
    st.sampled_from(
        [
            "a.proto",
            "x/y.proto",
            "../up.proto",
            "/abs.proto",
            "a/../../b.proto",
            "dir/",
            "",
            ".proto",
            "google/protobuf/any.proto",
            "c:\\w.proto",
            "a\x00.proto",
            "./a.proto",
            "a//b.proto",
            "readme.txt",
        ]
    ),
    st.text(max_size=20).map(lambda t: t + ".proto"),
    st.text(max_size=12),
)
file_maps = st.dictionaries(
    file_names, st.one_of(st.sampled_from(PROTO_SNIPPETS), st.text(max_size=200)), max_size=4
)


@cache
def _descriptor_set() -> bytes:
    return load_schema().descriptor_set


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out[: len(out) - cut % (len(out) + 1)] if cut else out)


descriptor_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda edits, cut: _mutate(_descriptor_set(), edits, cut),
        st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
        st.integers(0, 400),
    ),
)
ENDPOINT_CHOICES = [
    "",
    "127.0.0.1:1",
    "localhost:1",
    "[::1]:1",
    "http://127.0.0.1:1",
    "https://127.0.0.1:1/prefix",
    "grpc+http://127.0.0.1:1",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    ":::",
    "a b",
    "\x00",
    "unix:///nonexistent.sock",
    "UPSTREAM",
    "http://UPSTREAM",
    "SELF",
]
endpoints = st.sampled_from(ENDPOINT_CHOICES)
int32s = st.one_of(
    st.sampled_from([0, 1, -1, 5, 300, 301, 2**31 - 1, -(2**31), 2**31, 2**40]),
    st.integers(-(2**31), 2**31 - 1),
)
pems = st.one_of(
    st.just(""),
    st.text(max_size=80),
    st.just("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    st.just("-----BEGIN PRIVATE KEY-----\n" + "A" * 64 + "\n-----END PRIVATE KEY-----\n"),
)
services = st.one_of(
    st.sampled_from([WEATHER, SERVICE, "", ".", "x.Y", f".{WEATHER}", "google.protobuf.Any"]),
    st.text(max_size=30),
)
methods = st.one_of(
    st.sampled_from(
        [
            "GetCurrent",
            "StreamForecast",
            "UploadReadings",
            "Chat",
            "Echo",
            "ClientStream",
            "BidiStream",
            "Fail",
            "EchoMetadata",
            "",
        ]
    ),
    st.text(max_size=20),
)
plausible_messages = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "message": st.text(max_size=30),
            "number": int32s,
            "tags": st.lists(st.text(max_size=8), max_size=4),
            "extra": st.one_of(
                json_value,
                st.just({"@type": "type.googleapis.com/testsvc.v1.CustomDetail", "reason": "r"}),
                st.just({"@type": "type.googleapis.com/no.Such", "x": 1}),
            ),
            "location": st.fixed_dictionaries(
                {}, optional={"latitude": json_leaf, "longitude": json_leaf}
            ),
            "units": st.one_of(st.sampled_from(["UNITS_METRIC", "NOPE", 7]), json_leaf),
            "stationId": json_leaf,
            "temperature": json_leaf,
            "horizon": st.sampled_from(["1s", "-1s", "3153600000000s", "x", 5]),
        },
    ).map(_dumps),
    json_text,
)
call_fields = {
    "endpoint": endpoints,
    "service": services,
    "method": methods,
    "useTls": st.booleans() | json_leaf,
    "serverName": st.text(max_size=20),
    "timeoutSeconds": int32s | json_leaf,
    "metadata": st.dictionaries(
        st.one_of(
            st.sampled_from(["x-a", "x-a-bin", "content-type", "te", "host", ":path", "X-UP"]),
            st.text(max_size=10),
        ),
        st.text(max_size=20),
        max_size=3,
    ),
    "transport": st.sampled_from(
        ["TRANSPORT_CONNECT", "TRANSPORT_GRPC", "TRANSPORT_GRPC_WEB", 0, 1, 2, 7, -1, "NOPE"]
    ),
    "connectCodec": st.sampled_from(["", "json", "proto", "xml"]) | st.text(max_size=8),
    "clientCertPem": pems,
    "clientKeyPem": pems,
    "caCertPem": pems,
    "insecureSkipVerify": st.booleans(),
}
load_sources = st.one_of(
    file_maps.map(lambda f: {"protoFiles": {"files": f}}),
    descriptor_bytes.map(lambda b: {"descriptorSet": base64.b64encode(b).decode()}),
    st.sampled_from(["", "not base64!", "AAAA", "=" * 8]).map(lambda s: {"descriptorSet": s}),
    endpoints.map(lambda e: {"reflectionEndpoint": e}),
    st.sampled_from(
        [
            str(WEATHER_PROTOS),
            str(WEATHER_PROTOS / "acme" / "weather" / "v1" / "weather.proto"),
            str(PROTO_DIR / "testsvc"),
            "/nonexistent/fuzz/dir",
            "",
        ]
    ).map(lambda p: {"protoPath": p}),
    json_value.map(lambda v: {"protoFiles": v}),
    st.just({}),
)
reflection_options = st.fixed_dictionaries(
    {},
    optional={
        "useTls": st.booleans(),
        "serverName": st.text(max_size=20),
        "timeoutSeconds": st.sampled_from([0, 1, 2, -1, 2**31 - 1]),
    },
)


def _load_request(source: dict[str, Any], options: dict[str, Any] | None) -> dict[str, Any]:
    return {**source, **({"reflectionOptions": options} if options is not None else {})}


PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "LoadProtos": st.builds(_load_request, load_sources, st.none() | reflection_options),
    "ListServices": st.just({}),
    "GetServiceSchema": st.fixed_dictionaries({}, optional={"serviceName": services}),
    "InvokeGRPC": st.fixed_dictionaries(
        {}, optional={**call_fields, "requestJson": plausible_messages}
    ),
    "InvokeStream": st.fixed_dictionaries(
        {},
        optional={
            **call_fields,
            "requestMessagesJson": st.one_of(
                st.lists(plausible_messages, max_size=5),
                st.sampled_from([10_000, 10_001]).map(lambda n: ["{}"] * n),
                json_value,
            ),
        },
    ),
    "GetSession": st.just({}),
    "CloseSession": st.just({}),
    "ReloadBase": st.just({}),
}

# Requests derived from the input message's descriptor: every RPC without a hand-written
# strategy (the CollectionService, the live calls, any RPC added later) is covered.

PLACEHOLDERS = ("@collection", "@request", "@environment", "@call")
"""Replaced by the ids `Target` made (see `_resolve`)."""
HOSTILE_TEXT = [
    "",
    " ",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "-rf",
    "--upload-pack=touch /tmp/x",
    "{{",
    "{{word}}",
    "{{nope}}",
    "{{ word }}" * 300,
    "$..*..*..*",
    "$[?match(@, '(a|a)*b')]",
    "\x00",
    "é" * 300,
    "a" * 5000,
    "*",
    "null",
    '{"message": "{{word}}"}',
    "[" * 3000,
    "UPSTREAM",
    "http://UPSTREAM",
    "http://127.0.0.1:1/token",
    "collection.json",
    "requests/../../x.json",
    *PLACEHOLDERS,
]
hostile_text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    """The catalog.v1 files (from the generated modules' descriptor sets) in one pool."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(timestamp_pb2.DESCRIPTOR.serialized_pb))
    for name in ("catalog.binpb", "collections.binpb"):
        data = (Path(catalog_pb.__file__).parent / name).read_bytes()
        for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
            pool.Add(file)
    return pool


_F = descriptor.FieldDescriptor
_INTS = (_F.TYPE_INT32, _F.TYPE_SINT32, _F.TYPE_SFIXED32, _F.TYPE_UINT32, _F.TYPE_FIXED32)


def _scalar(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == _F.TYPE_STRING:
        return hostile_text
    if kind == _F.TYPE_BOOL:
        return st.booleans()
    if kind in _INTS:
        return int32s
    if kind in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["NaN"]))
    if kind == _F.TYPE_BYTES:
        return st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
    if kind == _F.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        return st.one_of(st.sampled_from(names), st.integers(-2, 12))
    return st.integers(-(2**63), 2**64 - 1).map(str)  # 64-bit: JSON strings


def _field_value(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        return st.dictionaries(_scalar(key).map(str), _single(value, depth), max_size=3)
    if field.is_repeated:
        return st.lists(_single(field, depth), max_size=3)
    return _single(field, depth)


def _single(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is None:
        return _scalar(field)
    if field.message_type.full_name == "google.protobuf.Timestamp":
        return st.sampled_from(["1970-01-01T00:00:00Z", "x", 0])
    return _derived(field.message_type.full_name, depth + 1)


@cache
def _derived(full_name: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Random but well-typed JSON for a message (nested messages to depth 3)."""
    message = _pool().FindMessageTypeByName(full_name)
    if depth > 3:
        return st.just({})
    optional = {f.json_name: _field_value(f, depth) for f in message.fields}
    return st.fixed_dictionaries({}, optional=optional)


def plausible(rpc: str) -> st.SearchStrategy[Any]:
    """The hand-written strategy, else one derived from the descriptor."""
    if rpc in PLAUSIBLE:
        return PLAUSIBLE[rpc]
    return _derived(MESSAGES[rpc].desc().type_name)


STANDARD_TYPES = [
    "application/json",
    "application/proto",
    "application/connect+json",
    "application/connect+proto",
    "application/grpc-web+proto",
    "text/plain",
    None,
]
ODD_TYPES = [
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "APPLICATION/JSON",
    "application/grpc",
    "application/grpc+json",
    "application/grpc-web-text",
    "application/grpc-web+json",
    "application/connect+gzip",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/",
    "",
]
content_types = st.one_of(
    st.sampled_from(STANDARD_TYPES),
    st.sampled_from(ODD_TYPES),
    header_text.map(lambda b: b.decode()),
)
ENCODINGS = ["gzip", "identity", "br", "zstd", "deflate", "snappy", "gzip, gzip", ""]


@cache
def _gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed to about 1 MiB."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [comp.compress(chunk) for _ in range(1024)]
    parts.append(comp.flush())
    return b"".join(parts)


def _binary(rpc: str, obj: Any) -> bytes | None:
    """The plausible request as protobuf binary, when the catalog's own types accept it."""
    try:
        return bytes(MESSAGES[rpc].from_json(_dumps(obj)).to_binary())
    except Exception:
        return None


@st.composite
def requests(draw: st.DrawFn, rpc: str) -> Request:
    ctype = draw(content_types)
    kind = draw(st.sampled_from(["plausible", "plausible", "plausible", "json", "deep", "bytes"]))
    wants_binary = ctype is not None and ("proto" in ctype or ctype == "application/grpc")
    if kind == "plausible":
        obj = draw(plausible(rpc))
        encoded = _binary(rpc, obj) if wants_binary else None
        payload = encoded if encoded is not None else _dumps(obj).encode()
    elif kind == "json":
        payload = _dumps(draw(json_value)).encode()
    elif kind == "deep":
        payload = draw(deep_json).encode()
    else:
        payload = draw(st.binary(max_size=2000))
    framed = ctype is not None and (
        ctype.startswith("application/connect+") or ctype.startswith("application/grpc")
    )
    if draw(st.booleans()) if framed else draw(st.integers(0, 9)) == 0:
        flags = draw(st.sampled_from([0, 0, 0, 1, 2, 0x80, 0xFF]))
        length = len(payload) + draw(st.sampled_from([0, 0, 0, -1, 1, 1 << 20, -len(payload)]))
        payload = struct.pack(">BI", flags, max(0, min(length, 0xFFFFFFFF))) + payload

    headers: list[tuple[str, bytes]] = []
    if ctype is not None:
        headers.append(("content-type", ctype.encode()))
    if draw(st.integers(0, 3)) == 0:
        encoding = draw(st.sampled_from(ENCODINGS) | header_text.map(lambda b: b.decode()))
        name = draw(
            st.sampled_from(["content-encoding", "connect-content-encoding", "grpc-encoding"])
        )
        headers.append((name, encoding.encode()))
        how = draw(st.sampled_from(["as-is", "gzip", "bomb"]))
        if how == "gzip":
            payload = zlib.compress(payload, wbits=31)
        elif how == "bomb":
            payload = _gzip_bomb()
    optional = {
        "connect-protocol-version": st.sampled_from([b"1", b"2", b"", b"01"]) | header_bytes,
        "connect-timeout-ms": st.sampled_from(
            [b"0", b"1", b"-1", b"abc", b"99999999999999999999", b"1e3", b" 5", b"10000"]
        )
        | header_bytes,
        "grpc-timeout": st.sampled_from([b"1S", b"1n", b"99999999H", b"S", b"-1m", b"10S"])
        | header_bytes,
        "origin": st.sampled_from([b"null", b"https://evil.example", b"SELF"]) | header_bytes,
        "sec-fetch-site": st.sampled_from([b"same-origin", b"cross-site", b"none", b"x"]),
        "authorization": st.sampled_from(
            [
                b"Bearer " + ADMIN_TOKEN.encode(),
                b"bearer " + ADMIN_TOKEN.encode(),
                b"Bearer wrong",
                b"Basic Zm9vOmJhcg==",
                b"Bearer",
            ]
        )
        | header_bytes,
        "accept-encoding": st.sampled_from([b"gzip", b"br", b"identity;q=0", b"*"]),
        "connect-accept-encoding": st.sampled_from([b"gzip", b"br", b"x"]),
        "x-grpc-web": st.sampled_from([b"1", b"0"]),
        "te": st.sampled_from([b"trailers"]),
    }
    for name, strategy in optional.items():
        if draw(st.integers(0, 4)) == 0:
            value = draw(strategy)
            headers.append((name, value))
    extra = draw(
        st.lists(st.tuples(st.from_regex(r"\Ax-[a-z0-9-]{1,15}\Z"), header_bytes), max_size=3)
    )
    headers.extend(extra)
    sid = draw(st.sampled_from(["none", "loaded", "fresh", "random", "random", "text"]))
    if rpc in ("CloseSession", "LoadProtos") and sid == "loaded":
        sid = "fresh"  # keep the loaded session (and what it loaded) for the other RPCs
    if sid == "random":
        headers.append(("x-session-id", draw(header_bytes)))
    elif sid == "text":
        headers.append(("x-session-id", draw(header_text)))
    method = draw(st.sampled_from(["POST"] * 12 + ["GET", "PUT", "OPTIONS", "HEAD", "DELETE"]))
    query: dict[str, str] = {}
    if method == "GET" and draw(st.booleans()):
        query = {
            "connect": draw(st.sampled_from(["v1", "v2", ""])),
            "encoding": draw(st.sampled_from(["json", "proto", "x"])),
            "message": payload.decode("latin-1")[:1000],
        }
        if draw(st.booleans()):
            query["base64"] = "1"
            query["message"] = base64.urlsafe_b64encode(payload[:1000]).decode()
        if draw(st.booleans()):
            query["compression"] = draw(st.sampled_from(["gzip", "br", "x"]))
    if method == "OPTIONS" and draw(st.booleans()):
        headers.append(("access-control-request-method", b"POST"))
    h2 = draw(st.integers(0, 4)) == 0
    return Request(
        method=method,
        path=ROUTES[rpc][0],
        headers=headers,
        body=payload,
        h2=h2,
        query=query,
        sid=sid if sid in ("loaded", "fresh") else "none",
    )


def _resolve(target: Target, req: Request) -> Request:
    """Fill in the addresses only known at run time (the upstream, the catalog itself)."""
    own = target.url.removeprefix("http://").encode()
    up = target.upstream.address.encode()

    def fix(value: bytes) -> bytes:
        value = value.replace(b"UPSTREAM", up).replace(b"SELF", own)
        for name in PLACEHOLDERS:
            value = value.replace(name.encode(), target.ids.get(name[1:], "").encode())
        return value

    return Request(
        method=req.method,
        path=req.path,
        headers=[(k, target.url.encode() if v == b"SELF" else v) for k, v in req.headers],
        body=fix(req.body) if len(req.body) < 1 << 20 else req.body,
        h2=req.h2,
        query=req.query,
        sid=req.sid,
    )


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("rpc", RPCS)
def test_fuzz_rpc(target: Target, rpc: str) -> None:
    target.ensure_alive()
    start = len(target.lines)

    @settings(FUZZ, max_examples=max(1, int(SCALE * EXAMPLES.get(rpc, DEFAULT_EXAMPLES))))
    @given(req=requests(rpc))
    def run(req: Request) -> None:
        if target.proc.poll() is not None:
            raise AssertionError(f"the catalog is dead (exit code {target.proc.returncode})")
        exchange(target, _resolve(target, req))

    run()
    assert target.proc.poll() is None
    r = target.h1.post(
        target.url + API + "GetSession",
        content=b"{}",
        headers={"content-type": "application/json", "x-session-id": target.loaded},
    )
    assert r.status_code == 200, r.text
    assert r.json()["sessionId"] == target.loaded  # the loaded session survived the fuzz
    assert r.json()["serviceCount"] >= 2
    assert target.victim_view() == target.victim_before  # never named: never changed
    time.sleep(0.3)  # let the drain thread read what the process wrote last
    err = "".join(target.lines[start:])
    assert "Traceback" not in err, err[-3000:]
    assert target.rss_kb() < RSS_LIMIT_KB
