"""The API edge: CORS, Host checks, deep JSON, header bytes, session and call caps, event loop.

Every test talks to a real catalog on 127.0.0.1 (in-process with `run_catalog`, or the real
command with `run_cli` where a request may crash the process) over real HTTP/gRPC clients.
"""

from __future__ import annotations

import contextlib
import http.client as httplib
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.transports.envelope import EnvelopeReader
from connectrpc_catalog.transports.envelope import envelope as wire_envelope
from tests.catalog_server import RunningCatalog, _wait_listening, run_catalog, run_cli
from tests.upstream.behaviour import Recorder
from tests.upstream.grpc_server import GrpcServer, start_grpc_server
from tests.upstream.schema import PROTO_DIR, SERVICE

API = "/catalog.v1.CatalogService/"
WEATHER_PROTOS = Path(__file__).parents[1] / "fixtures" / "protos"
WEATHER = "acme.weather.v1.WeatherService"
UNARY_RPCS = [
    "LoadProtos",
    "ListServices",
    "GetServiceSchema",
    "InvokeGRPC",
    "GetSession",
    "CloseSession",
    "ReloadBase",
]
DEEP = 15_000
DEEP_SHAPES = {
    "arrays": "[" * DEEP + "]" * DEEP,
    "objects": '{"a":' * DEEP + "1" + "}" * DEEP,
    "unbalanced": "[" * DEEP,
}
EVIL_ORIGIN = "https://evil.example"
UI_ORIGIN = "http://ui.example:3000"
REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


# ---------------------------------------------------------------- helpers


def post(
    client: httpx.Client,
    url: str,
    method: str,
    body: dict[str, Any] | None = None,
    *,
    sid: str | None = None,
    headers: dict[str, str] | None = None,
    content: bytes | str | None = None,
) -> httpx.Response:
    """POST a Connect unary JSON request to a catalog RPC."""
    h = {"content-type": "application/json"}
    if sid:
        h["x-session-id"] = sid
    h.update(headers or {})
    data = content if content is not None else json.dumps(body or {})
    return client.post(url + API + method, content=data, headers=h)


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return wire_envelope(flags, payload)


def frames(raw: bytes) -> list[tuple[int, bytes]]:
    """The whole frames of a body, read by the catalog's own EnvelopeReader."""
    return EnvelopeReader().feed(raw)


def stream(
    client: httpx.Client, url: str, body: dict[str, Any] | bytes, sid: str | None = None
) -> httpx.Response:
    """InvokeStream over Connect streaming JSON (one request envelope)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"content-type": "application/connect+json"}
    if sid:
        h["x-session-id"] = sid
    return client.post(url + API + "InvokeStream", content=envelope(data), headers=h)


def stream_events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(p or b"{}") for _, p in frames(raw)]


def error_of(r: httpx.Response) -> dict[str, Any]:
    """The Connect error of a response, unary (JSON body) or streaming (end-stream frame)."""
    if r.headers.get("content-type", "").startswith("application/connect+"):
        for flags, payload in frames(r.content):
            if flags & 2:
                err: dict[str, Any] = json.loads(payload or b"{}").get("error") or {}
                return err
        return {}
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) and "code" in body else {}


def code_of(r: httpx.Response) -> str | None:
    code = error_of(r).get("code")
    return str(code) if code is not None else None


def session(client: httpx.Client, url: str) -> str:
    r = post(client, url, "GetSession")
    assert r.status_code == 200, r.text
    return str(r.headers["x-session-id"])


def load(client: httpx.Client, url: str, path: Path, sid: str | None = None) -> str:
    r = post(client, url, "LoadProtos", {"protoPath": str(path)}, sid=sid)
    assert r.status_code == 200 and r.json()["success"], r.text
    return str(r.headers["x-session-id"])


def port_of(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    return port


def raw_post(
    url: str, path: str, headers: list[tuple[str, bytes]], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """POST with header bytes sent exactly as given (http.client writes bytes values as is)."""
    u = urllib.parse.urlsplit(url)
    conn = httplib.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
    try:
        conn.putrequest("POST", path)
        for key, value in headers:
            conn.putheader(key, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


@contextlib.contextmanager
def serve_cli(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """run_cli, then wait until the port accepts (the line is printed before listen())."""
    with run_cli(*args) as (url, proc):
        _wait_listening(port_of(url))
        yield url, proc


class CLICatalog:
    """The real command, stderr drained in a thread; restarted when a request killed it."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.crashes: list[int] = []
        self._start()

    def _start(self) -> None:
        self._cm = serve_cli(*self.args)
        self.url, self.proc = self._cm.__enter__()
        self.lines: list[str] = []
        threading.Thread(target=self._drain, args=(self.proc, self.lines), daemon=True).start()

    @staticmethod
    def _drain(proc: subprocess.Popen[str], lines: list[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    def ensure_alive(self) -> None:
        rc = self.proc.poll()
        if rc is not None:
            self.crashes.append(rc)
            self.stop()
            self._start()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def mark(self) -> int:
        return len(self.lines)

    def stderr_since(self, mark: int) -> str:
        time.sleep(0.2)  # let the drain thread catch up with what the process wrote
        return "".join(self.lines[mark:])

    def stop(self) -> None:
        self._cm.__exit__(None, None, None)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def default_catalog() -> Iterator[RunningCatalog]:
    """An in-process catalog with the default configuration."""
    with run_catalog(AppConfig()) as running:
        yield running


@pytest.fixture(scope="module")
def cli_holder() -> Iterator[CLICatalog]:
    holder = CLICatalog()
    try:
        yield holder
    finally:
        holder.stop()


@pytest.fixture
def cli(cli_holder: CLICatalog) -> CLICatalog:
    """The real command with defaults (a fresh one if an earlier test crashed it)."""
    cli_holder.ensure_alive()
    return cli_holder


@pytest.fixture(scope="module")
def grpc_upstream() -> Iterator[GrpcServer]:
    server = start_grpc_server(Recorder())
    yield server
    server.stop()


# ---------------------------------------------------------------- 1. CORS


def test_default_config_sends_no_cors_headers_to_a_foreign_origin(
    default_catalog: RunningCatalog, http: httpx.Client
) -> None:
    r = post(http, default_catalog.url, "GetSession", headers={"origin": EVIL_ORIGIN})
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-expose-headers" not in r.headers
    r = http.get(default_catalog.url + "/", headers={"origin": EVIL_ORIGIN})
    assert "access-control-allow-origin" not in r.headers


def test_cross_origin_post_is_refused_before_the_handler_runs(
    default_catalog: RunningCatalog, http: httpx.Client
) -> None:
    url = default_catalog.url
    sid = session(http, url)
    r = post(
        http,
        url,
        "LoadProtos",
        {"protoPath": str(WEATHER_PROTOS)},
        sid=sid,
        headers={"origin": EVIL_ORIGIN},
    )
    assert r.status_code == 403, r.text
    err = r.json()
    assert err["code"] == "permission_denied"
    assert err["message"]
    assert "access-control-allow-origin" not in r.headers
    r = post(http, url, "ListServices", sid=sid)
    assert r.headers["x-session-id"] == sid
    assert r.json().get("services", []) == []  # the load was not performed


def test_cross_origin_post_mints_no_session(
    default_catalog: RunningCatalog, http: httpx.Client
) -> None:
    before = len(default_catalog.app.manager)
    r = post(
        http,
        default_catalog.url,
        "LoadProtos",
        {"protoPath": str(WEATHER_PROTOS)},
        headers={"origin": EVIL_ORIGIN},
    )
    assert r.status_code == 403
    assert code_of(r) == "permission_denied"
    assert "x-session-id" not in r.headers
    assert len(default_catalog.app.manager) == before


def test_sec_fetch_site_cross_site_is_refused(
    default_catalog: RunningCatalog, http: httpx.Client
) -> None:
    url = default_catalog.url
    sid = session(http, url)
    r = post(
        http,
        url,
        "LoadProtos",
        {"protoPath": str(WEATHER_PROTOS)},
        sid=sid,
        headers={"sec-fetch-site": "cross-site"},
    )
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "permission_denied"
    assert post(http, url, "ListServices", sid=sid).json().get("services", []) == []


def test_preflight_from_a_foreign_origin_is_refused(
    default_catalog: RunningCatalog, http: httpx.Client
) -> None:
    r = http.options(
        default_catalog.url + API + "LoadProtos",
        headers={
            "origin": EVIL_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-session-id",
        },
    )
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-headers" not in r.headers


@pytest.mark.parametrize("origins", [(), (UI_ORIGIN,)], ids=["default", "list"])
def test_null_origin_is_never_allowed(http: httpx.Client, origins: tuple[str, ...]) -> None:
    with run_catalog(AppConfig(cors_origins=origins)) as cat:
        r = post(http, cat.url, "GetSession", headers={"origin": "null"})
        assert r.status_code == 403
        assert code_of(r) == "permission_denied"
        assert "access-control-allow-origin" not in r.headers
        r = http.options(
            cat.url + API + "GetSession",
            headers={"origin": "null", "access-control-request-method": "POST"},
        )
        assert r.status_code == 403
        assert "access-control-allow-origin" not in r.headers


def test_cli_refuses_cors_origin_null_at_start_up() -> None:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "connectrpc_catalog", "--port", "0", "--cors-origin", "null"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the catalog started (and kept running) with --cors-origin null")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "null" in proc.stderr
    assert "listening on" not in proc.stdout


def test_allowed_origin_preflight_and_post_expose_the_session_id(http: httpx.Client) -> None:
    """The Go catalog's React UI on another origin keeps working when its origin is listed."""
    with run_catalog(AppConfig(cors_origins=(UI_ORIGIN,))) as cat:
        r = http.options(
            cat.url + API + "LoadProtos",
            headers={
                "origin": UI_ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,connect-protocol-version,"
                "x-session-id",
            },
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == UI_ORIGIN
        allowed = r.headers["access-control-allow-headers"].lower()
        for name in ("content-type", "connect-protocol-version", "x-session-id"):
            assert name in allowed
        r = post(
            http,
            cat.url,
            "LoadProtos",
            {"protoPath": str(WEATHER_PROTOS)},
            headers={"origin": UI_ORIGIN, "connect-protocol-version": "1"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True
        assert r.headers["access-control-allow-origin"] == UI_ORIGIN
        exposed = [h.strip() for h in r.headers["access-control-expose-headers"].split(",")]
        assert "x-session-id" in [h.lower() for h in exposed]
        sid = r.headers["x-session-id"]
        r = post(http, cat.url, "ListServices", sid=sid, headers={"origin": UI_ORIGIN})
        assert [s["name"] for s in r.json()["services"]] == [WEATHER]
        # Another origin is still refused when a list is configured.
        r = post(http, cat.url, "GetSession", headers={"origin": EVIL_ORIGIN})
        assert r.status_code == 403
        assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "kind", ["origin", "sec-fetch-same-origin", "sec-fetch-none", "origin+sec-fetch"]
)
def test_same_origin_requests_work(
    default_catalog: RunningCatalog, http: httpx.Client, kind: str
) -> None:
    own = default_catalog.url  # http://127.0.0.1:<port>
    headers = {
        "origin": {"origin": own},
        "sec-fetch-same-origin": {"sec-fetch-site": "same-origin"},
        "sec-fetch-none": {"sec-fetch-site": "none"},
        "origin+sec-fetch": {"origin": own, "sec-fetch-site": "same-origin"},
    }[kind]
    r = post(
        http, default_catalog.url, "LoadProtos", {"protoPath": str(WEATHER_PROTOS)}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    assert len(r.headers["x-session-id"]) == 32


# ---------------------------------------------------------------- 2. Host check


@pytest.mark.parametrize("path", ["api", "ui", "reflection"])
def test_foreign_host_is_refused_on_every_path(
    default_catalog: RunningCatalog, http: httpx.Client, path: str
) -> None:
    url = default_catalog.url
    before = len(default_catalog.app.manager)
    host = {"host": "evil.example:8080"}
    if path == "api":
        r = post(http, url, "GetSession", headers=host)
    elif path == "ui":
        r = http.get(url + "/", headers=host)
    else:
        r = http.post(
            url + REFLECTION,
            content=b"{}",
            headers={**host, "content-type": "application/json"},
        )
    assert r.status_code == 403, r.text[:300]
    assert "--allowed-host" in r.text
    if path == "api":
        assert r.json()["code"] == "permission_denied"
        assert "--allowed-host" in r.json()["message"]
    assert "x-session-id" not in r.headers
    assert len(default_catalog.app.manager) == before


@pytest.mark.parametrize("path", [API + "GetSession", REFLECTION])
def test_foreign_host_is_refused_over_grpc_web(
    default_catalog: RunningCatalog, http: httpx.Client, path: str
) -> None:
    """gRPC-Web clients get the refusal as a gRPC status (7, permission denied)."""
    r = http.post(
        default_catalog.url + path,
        content=envelope(b""),
        headers={
            "host": "evil.example:8080",
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
        },
    )
    status = r.headers.get("grpc-status")
    message = urllib.parse.unquote(r.headers.get("grpc-message", ""))
    if status is None:  # the status may come in a trailers frame of the body
        for flags, payload in frames(r.content):
            if flags & 0x80:
                text = payload.decode("latin-1")
                fields = dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)
                status = fields.get("grpc-status", "").strip()
                message = urllib.parse.unquote(fields.get("grpc-message", "").strip())
    assert r.status_code in (200, 403)
    assert status == "7", (r.status_code, r.headers, r.content[:200])
    assert "--allowed-host" in message
    assert "x-session-id" not in r.headers


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "localhost", "127.0.0.1"]
)
def test_loopback_hosts_are_accepted(
    default_catalog: RunningCatalog, http: httpx.Client, host: str
) -> None:
    value = host.format(port=port_of(default_catalog.url))
    r = post(http, default_catalog.url, "GetSession", headers={"host": value})
    assert r.status_code == 200, r.text
    assert r.json()["sessionId"] == r.headers["x-session-id"]
    r = http.get(default_catalog.url + "/", headers={"host": value})
    assert r.status_code == 200


def test_allowed_hosts_from_the_config(http: httpx.Client) -> None:
    with run_catalog(AppConfig(allowed_hosts=("catalog.internal",))) as cat:
        port = port_of(cat.url)
        for host in ("catalog.internal", f"catalog.internal:{port}", f"localhost:{port}"):
            r = post(http, cat.url, "GetSession", headers={"host": host})
            assert r.status_code == 200, (host, r.text)
        r = post(http, cat.url, "GetSession", headers={"host": "evil.example:8080"})
        assert r.status_code == 403
        assert code_of(r) == "permission_denied"
        r = post(http, cat.url, "GetSession", headers={"host": "sub.catalog.internal"})
        assert r.status_code == 403


def test_allowed_host_star_disables_the_check(http: httpx.Client) -> None:
    with run_catalog(AppConfig(allowed_hosts=("*",))) as cat:
        r = post(http, cat.url, "GetSession", headers={"host": "evil.example:8080"})
        assert r.status_code == 200, r.text


def test_grpc_clients_with_a_foreign_authority_are_refused(
    default_catalog: RunningCatalog,
) -> None:
    from grpc_reflection.v1alpha import reflection_pb2

    target = default_catalog.url.removeprefix("http://")
    empty = catalog_pb.GetSessionRequest().to_binary()
    with grpc.insecure_channel(target) as channel:
        raw, _call = channel.unary_unary(API + "GetSession").with_call(empty, timeout=30)
        assert catalog_pb.GetSessionResponse.from_binary(raw).session_id
    options = [("grpc.default_authority", "evil.example:8080")]
    with grpc.insecure_channel(target, options=options) as channel:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(API + "GetSession")(empty, timeout=30)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        reflect = channel.stream_stream(REFLECTION)
        req = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
        with pytest.raises(grpc.RpcError) as info:
            list(reflect(iter([req]), timeout=30))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_cli_flags_allowed_host_and_cors_origin(http: httpx.Client) -> None:
    with serve_cli("--allowed-host", "catalog.internal", "--cors-origin", UI_ORIGIN) as (url, _):
        r = post(http, url, "GetSession", headers={"host": "catalog.internal"})
        assert r.status_code == 200, r.text
        r = post(http, url, "GetSession", headers={"host": "evil.example:8080"})
        assert r.status_code == 403
        assert "--allowed-host" in error_of(r).get("message", "")
        r = http.options(
            url + API + "GetSession",
            headers={"origin": UI_ORIGIN, "access-control-request-method": "POST"},
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == UI_ORIGIN
        r = post(http, url, "GetSession", headers={"origin": EVIL_ORIGIN})
        assert r.status_code == 403
        assert code_of(r) == "permission_denied"


# ---------------------------------------------------------------- 3. deep JSON


@pytest.mark.parametrize("shape", list(DEEP_SHAPES))
@pytest.mark.parametrize("method", UNARY_RPCS)
def test_deep_json_body_is_invalid_argument(
    cli: CLICatalog, http: httpx.Client, method: str, shape: str
) -> None:
    mark = cli.mark()
    try:
        r = post(http, cli.url, method, content=DEEP_SHAPES[shape])
    except httpx.TransportError as exc:
        pytest.fail(f"no answer ({exc!r}); catalog exit code {cli.proc.poll()}")
    assert r.status_code == 400, r.text[:300]
    assert r.json()["code"] == "invalid_argument"
    assert "x-session-id" not in r.headers  # a rejected request mints no session
    assert cli.alive()
    assert post(http, cli.url, "GetSession").status_code == 200
    assert "Traceback" not in cli.stderr_since(mark)


@pytest.mark.parametrize("shape", list(DEEP_SHAPES))
def test_deep_json_in_a_connect_stream_envelope_is_invalid_argument(
    cli: CLICatalog, http: httpx.Client, shape: str
) -> None:
    try:
        r = stream(http, cli.url, DEEP_SHAPES[shape].encode())
    except httpx.TransportError as exc:
        pytest.fail(f"no answer ({exc!r}); catalog exit code {cli.proc.poll()}")
    assert r.status_code in (200, 400), r.text[:300]
    assert code_of(r) == "invalid_argument"
    assert cli.alive()
    assert post(http, cli.url, "GetSession").status_code == 200


@pytest.fixture
def weather_sid(cli: CLICatalog, http: httpx.Client) -> str:
    return load(http, cli.url, WEATHER_PROTOS)


@pytest.mark.parametrize("shape", list(DEEP_SHAPES))
def test_deep_request_json_is_invalid_argument(
    cli: CLICatalog, http: httpx.Client, weather_sid: str, shape: str
) -> None:
    body = {
        "endpoint": "127.0.0.1:1",
        "service": WEATHER,
        "method": "GetCurrent",
        "requestJson": DEEP_SHAPES[shape],
    }
    r = post(http, cli.url, "InvokeGRPC", body, sid=weather_sid)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["code"] == "invalid_argument"
    assert cli.alive()
    assert post(http, cli.url, "GetSession", sid=weather_sid).status_code == 200


@pytest.mark.parametrize("shape", list(DEEP_SHAPES))
def test_deep_request_messages_json_is_invalid_argument(
    cli: CLICatalog, http: httpx.Client, weather_sid: str, shape: str
) -> None:
    body = {
        "endpoint": "127.0.0.1:1",
        "service": WEATHER,
        "method": "UploadReadings",
        "requestMessagesJson": ['{"stationId": "a"}', DEEP_SHAPES[shape]],
    }
    r = stream(http, cli.url, body, sid=weather_sid)
    assert r.status_code in (200, 400), r.text[:300]
    assert code_of(r) == "invalid_argument"
    assert cli.alive()
    assert post(http, cli.url, "GetSession", sid=weather_sid).status_code == 200


DEEP_PROTO = """syntax = "proto3";
package deep.v1;
import "google/protobuf/struct.proto";
service Deep { rpc Call(Node) returns (Node); }
message Node { Node child = 1; google.protobuf.Value value = 2; }
"""


def test_moderate_nesting_is_accepted(cli: CLICatalog, http: httpx.Client) -> None:
    # The catalog's own messages do not nest: a body nested 50 deep may be refused for its
    # unknown field, but not for its depth.
    r = post(http, cli.url, "GetSession", content='{"a":' * 50 + "1" + "}" * 50)
    assert "deeper than" not in error_of(r).get("message", ""), r.text[:300]
    # A recursive message of the session's own schema, 50 levels deep, is converted.
    r = post(http, cli.url, "LoadProtos", {"protoFiles": {"files": {"deep.proto": DEEP_PROTO}}})
    assert r.status_code == 200 and r.json()["success"], r.text
    sid = r.headers["x-session-id"]
    call = {"endpoint": "127.0.0.1:1", "service": "deep.v1.Deep", "method": "Call"}
    for nested in (
        '{"child":' * 50 + "{}" + "}" * 50,
        # Each list level of a Value is two messages deep for protobuf (limit 100).
        '{"value":' + "[" * 30 + "]" * 30 + "}",
    ):
        r = post(http, cli.url, "InvokeGRPC", {**call, "requestJson": nested}, sid=sid)
        assert r.status_code == 200, r.text[:300]
        assert r.json().get("success") is not True  # converted, then nothing listens on port 1
    r = post(
        http,
        cli.url,
        "InvokeGRPC",
        {**call, "requestJson": '{"child":' * 150 + "{}" + "}" * 150},
        sid=sid,
    )
    assert r.status_code == 400
    assert code_of(r) == "invalid_argument"


def test_max_json_depth_is_configurable(http: httpx.Client) -> None:
    with run_catalog(AppConfig(max_json_depth=10)) as cat:
        r = post(http, cat.url, "GetSession", content="[" * 20 + "]" * 20)
        assert r.status_code == 400
        assert code_of(r) == "invalid_argument"
        files = {"protoFiles": {"files": {"deep.proto": DEEP_PROTO}}}
        r = post(http, cat.url, "LoadProtos", files)
        assert r.status_code == 200 and r.json()["success"], r.text
        sid = r.headers["x-session-id"]
        call = {"endpoint": "127.0.0.1:1", "service": "deep.v1.Deep", "method": "Call"}
        deep = '{"child":' * 20 + "{}" + "}" * 20
        r = post(http, cat.url, "InvokeGRPC", {**call, "requestJson": deep}, sid=sid)
        assert r.status_code == 400
        assert code_of(r) == "invalid_argument"
        shallow = '{"child":' * 5 + "{}" + "}" * 5
        r = post(http, cat.url, "InvokeGRPC", {**call, "requestJson": shallow}, sid=sid)
        assert r.status_code == 200, r.text
        assert r.json().get("success") is not True


# ---------------------------------------------------------------- 4./5. header bytes, gRPC/1.1


@pytest.mark.parametrize("header", ["X-Session-ID", "X-Custom-Thing", "Connect-Timeout-Ms"])
def test_non_utf8_header_bytes_are_a_4xx(cli: CLICatalog, http: httpx.Client, header: str) -> None:
    mark = cli.mark()
    status, _headers, body = raw_post(
        cli.url,
        API + "GetSession",
        [("Content-Type", b"application/json"), (header, b"\xff\xfe")],
        b"{}",
    )
    assert 400 <= status < 500, (status, body[:300])
    assert json.loads(body)["code"] == "invalid_argument"
    assert cli.alive()
    assert post(http, cli.url, "GetSession").status_code == 200
    assert "Traceback" not in cli.stderr_since(mark)


@pytest.mark.parametrize("content_type", ["application/grpc", "application/grpc+proto"])
def test_grpc_over_http1_is_a_clean_4xx(
    cli: CLICatalog, http: httpx.Client, content_type: str
) -> None:
    mark = cli.mark()
    r = http.post(
        cli.url + API + "GetSession",
        content=envelope(catalog_pb.GetSessionRequest().to_binary()),
        headers={"content-type": content_type, "te": "trailers"},
    )
    assert r.http_version == "HTTP/1.1"
    assert 400 <= r.status_code < 500, (r.status_code, r.headers)
    assert cli.alive()
    assert post(http, cli.url, "GetSession").status_code == 200
    assert "Traceback" not in cli.stderr_since(mark)


def test_a_refused_http2_request_leaves_the_connection_usable(
    cli: CLICatalog, http: httpx.Client
) -> None:
    """A refusal sent before the request body arrived must not kill the HTTP/2 connection
    (and every other call multiplexed on it)."""
    mark = cli.mark()
    with httpx.Client(http1=False, http2=True, timeout=30) as h2:
        for _ in range(5):
            r = h2.post(
                cli.url + API + "GetSession",
                content=b"{" + b" " * 8192 + b"}",
                headers={"content-type": "application/json", "origin": "null"},
            )
            assert r.http_version == "HTTP/2"
            assert r.status_code == 403
            r = h2.post(
                cli.url + API + "GetSession",
                content=b"{}",
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 200
    assert cli.alive()
    assert "Traceback" not in cli.stderr_since(mark)


def test_grpc_clients_see_the_session_cap_as_resource_exhausted(http: httpx.Client) -> None:
    with run_catalog(AppConfig(max_sessions=1)) as cat:
        load(http, cat.url, WEATHER_PROTOS)
        target = cat.url.removeprefix("http://")
        with grpc.insecure_channel(target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary(API + "GetSession")(
                    catalog_pb.GetSessionRequest().to_binary(), timeout=30
                )
            code = info.value.code()  # type: ignore[attr-defined]
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value


# ---------------------------------------------------------------- 6. sessions


def test_session_cap_refuses_new_sessions_but_keeps_old_ones(http: httpx.Client) -> None:
    with run_catalog(AppConfig(max_sessions=5)) as cat:
        # Sessions that hold something (a load): the catalog may recycle blank ones.
        sids = [load(http, cat.url, WEATHER_PROTOS) for _ in range(5)]
        assert len(set(sids)) == 5
        r = post(http, cat.url, "GetSession")
        assert r.status_code == 429, r.text
        assert r.json()["code"] == "resource_exhausted"
        assert "x-session-id" not in r.headers
        r = post(http, cat.url, "GetSession", sid="0" * 32)  # an unknown id is a new session
        assert r.status_code == 429
        assert len(cat.app.manager) == 5
        for sid in sids:
            r = post(http, cat.url, "GetSession", sid=sid)
            assert r.status_code == 200
            assert r.json()["sessionId"] == sid
        load(http, cat.url, WEATHER_PROTOS, sid=sids[0])


def test_cli_max_sessions_and_max_timeout(http: httpx.Client) -> None:
    with serve_cli("--max-sessions", "2", "--max-timeout", "5m") as (url, _):
        sid = load(http, url, WEATHER_PROTOS)
        load(http, url, WEATHER_PROTOS)
        r = post(http, url, "GetSession")
        assert r.status_code == 429
        assert code_of(r) == "resource_exhausted"
        call = {"endpoint": "127.0.0.1:1", "service": WEATHER, "method": "GetCurrent"}
        r = post(http, url, "InvokeGRPC", {**call, "timeoutSeconds": 301}, sid=sid)
        assert r.status_code == 400
        assert code_of(r) == "invalid_argument"
        r = post(http, url, "InvokeGRPC", {**call, "timeoutSeconds": 300}, sid=sid)
        assert r.status_code == 200, r.text
        assert r.json().get("success") is not True  # nothing listens on port 1


@pytest.mark.parametrize(
    "kind",
    [
        "content-type",
        "unknown-method",
        "foreign-host",
        "cross-origin",
        "sec-fetch-cross-site",
        "foreign-preflight",
        "non-utf8-header",
    ],
)
def test_rejected_requests_mint_no_session(
    default_catalog: RunningCatalog, http: httpx.Client, kind: str
) -> None:
    url = default_catalog.url
    before = len(default_catalog.app.manager)
    if kind == "non-utf8-header":
        status, headers, _ = raw_post(
            url,
            API + "GetSession",
            [("Content-Type", b"application/json"), ("X-Session-ID", b"\xff\xfe")],
            b"{}",
        )
    else:
        if kind == "content-type":
            r = post(http, url, "GetSession", headers={"content-type": "text/plain"})
        elif kind == "unknown-method":
            r = post(http, url, "NoSuchMethod")
        elif kind == "foreign-host":
            r = post(http, url, "GetSession", headers={"host": "evil.example:8080"})
        elif kind == "cross-origin":
            r = post(http, url, "GetSession", headers={"origin": EVIL_ORIGIN})
        elif kind == "sec-fetch-cross-site":
            r = post(http, url, "GetSession", headers={"sec-fetch-site": "cross-site"})
        else:
            r = http.options(
                url + API + "GetSession",
                headers={"origin": EVIL_ORIGIN, "access-control-request-method": "POST"},
            )
        status, headers = r.status_code, {k.lower(): v for k, v in r.headers.items()}
    assert 400 <= status < 500, status
    assert "x-session-id" not in headers
    assert len(default_catalog.app.manager) == before


# ---------------------------------------------------------------- 7. deadline


def _limit_named(message: str, limit: str) -> bool:
    named = "timeoutSeconds" in message or "timeout_seconds" in message
    return named and limit in message


def test_timeout_above_the_default_maximum_is_invalid_argument(
    default_catalog: RunningCatalog, http: httpx.Client
) -> None:
    url = default_catalog.url
    sid = load(http, url, WEATHER_PROTOS)
    call = {"endpoint": "127.0.0.1:1", "service": WEATHER, "timeoutSeconds": 100000}
    r = post(http, url, "InvokeGRPC", {**call, "method": "GetCurrent"}, sid=sid)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["code"] == "invalid_argument"
    assert _limit_named(err["message"], "300"), err["message"]
    r = stream(http, url, {**call, "method": "StreamForecast", "requestMessagesJson": ["{}"]}, sid)
    assert code_of(r) == "invalid_argument"
    assert _limit_named(error_of(r)["message"], "300")
    r = post(
        http, url, "InvokeGRPC", {**call, "method": "GetCurrent", "timeoutSeconds": 5}, sid=sid
    )
    assert r.status_code == 200, r.text


def test_max_timeout_is_configurable(http: httpx.Client) -> None:
    with run_catalog(AppConfig(max_timeout=10.0)) as cat:
        sid = load(http, cat.url, WEATHER_PROTOS)
        call = {"endpoint": "127.0.0.1:1", "service": WEATHER, "method": "GetCurrent"}
        r = post(http, cat.url, "InvokeGRPC", {**call, "timeoutSeconds": 11}, sid=sid)
        assert r.status_code == 400
        assert code_of(r) == "invalid_argument"
        assert _limit_named(error_of(r)["message"], "10")
        r = post(http, cat.url, "InvokeGRPC", {**call, "timeoutSeconds": 10}, sid=sid)
        assert r.status_code == 200, r.text


# ---------------------------------------------------------------- 8. caps


def _readings(n: int) -> list[str]:
    return ['{"stationId": "s", "temperature": 1.5}'] * n


def test_stream_message_cap_is_configurable(http: httpx.Client) -> None:
    with run_catalog(AppConfig(max_stream_messages=10)) as cat:
        sid = load(http, cat.url, WEATHER_PROTOS)
        call = {"endpoint": "127.0.0.1:1", "service": WEATHER, "method": "UploadReadings"}
        r = stream(http, cat.url, {**call, "requestMessagesJson": _readings(11)}, sid)
        assert code_of(r) == "resource_exhausted"
        r = stream(http, cat.url, {**call, "requestMessagesJson": _readings(10)}, sid)
        assert r.status_code == 200
        assert code_of(r) is None
        status = [e["status"] for e in stream_events(r.content) if "status" in e]
        assert status
        assert status[0].get("success") is not True  # the upstream is unreachable


def test_stream_message_cap_default(default_catalog: RunningCatalog, http: httpx.Client) -> None:
    url = default_catalog.url
    sid = load(http, url, WEATHER_PROTOS)
    call = {"endpoint": "127.0.0.1:1", "service": WEATHER, "method": "UploadReadings"}
    r = stream(http, url, {**call, "requestMessagesJson": _readings(10_001)}, sid)
    assert code_of(r) == "resource_exhausted"
    r = stream(http, url, {**call, "requestMessagesJson": _readings(10_000)}, sid)
    assert code_of(r) is None
    assert any("status" in e for e in stream_events(r.content))


def _first_frame(chunks: Iterator[bytes]) -> tuple[int, dict[str, Any]]:
    reader = EnvelopeReader()
    for chunk in chunks:
        for flags, data in reader.feed(chunk):
            return flags, json.loads(data or b"{}")
    raise AssertionError(f"stream ended without a frame ({reader.pending} bytes of one)")


@contextlib.contextmanager
def _open_stream(url: str, sid: str, upstream: GrpcServer) -> Iterator[tuple[int, dict[str, Any]]]:
    """A server-streaming InvokeStream that stays open; yields its first frame."""
    body = {
        "endpoint": upstream.address,
        "service": SERVICE,
        "method": "ServerStream",
        "transport": "TRANSPORT_GRPC",
        "timeoutSeconds": 120,
        "requestMessagesJson": [json.dumps({"message": "m", "count": 1200, "intervalMs": 100})],
    }
    data = json.dumps(body).encode()
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST",
            url + API + "InvokeStream",
            content=envelope(data),
            headers={"content-type": "application/connect+json", "x-session-id": sid},
        ) as resp,
    ):
        if resp.status_code != 200:
            resp.read()
            yield 2, {"error": error_of(resp)}
            return
        chunks = resp.iter_raw()  # kept referenced: dropping it would close the stream
        yield _first_frame(chunks)


def _refused(frame: tuple[int, dict[str, Any]]) -> bool:
    flags, payload = frame
    return bool(flags & 2) and (payload.get("error") or {}).get("code") == "resource_exhausted"


def test_concurrent_streams_per_session_are_capped(
    http: httpx.Client, grpc_upstream: GrpcServer
) -> None:
    with run_catalog(AppConfig(max_streams_per_session=2)) as cat:
        sid = load(http, cat.url, PROTO_DIR)
        other = load(http, cat.url, PROTO_DIR)
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(_open_stream(cat.url, sid, grpc_upstream))
            second = stack.enter_context(_open_stream(cat.url, sid, grpc_upstream))
            for frame in (first, second):
                assert frame[0] == 0 and "headers" in frame[1], frame
            with _open_stream(cat.url, sid, grpc_upstream) as third:
                assert _refused(third), third
            with _open_stream(cat.url, other, grpc_upstream) as elsewhere:
                assert elsewhere[0] == 0 and "headers" in elsewhere[1], elsewhere
        # Both streams of `sid` were closed by their clients: the session may stream again.
        for _ in range(100):
            with _open_stream(cat.url, sid, grpc_upstream) as again:
                if not _refused(again):
                    break
            time.sleep(0.1)
        assert again[0] == 0 and "headers" in again[1], again
        assert post(http, cat.url, "GetSession", sid=sid).status_code == 200


def test_loads_in_flight_per_session_are_capped(
    default_catalog: RunningCatalog, http: httpx.Client
) -> None:
    """Eight loads at once in one session against a server that never answers: 4 run."""
    url = default_catalog.url
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(64)  # connections complete in the backlog; nothing ever answers
    try:
        endpoint = f"127.0.0.1:{blackhole.getsockname()[1]}"
        body = {"reflectionEndpoint": endpoint, "reflectionOptions": {"timeoutSeconds": 4}}
        sid = session(http, url)
        other = session(http, url)
        results: list[httpx.Response] = []
        lock = threading.Lock()

        def one(session_id: str) -> None:
            with httpx.Client(timeout=60) as client:
                r = post(client, url, "LoadProtos", body, sid=session_id)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=one, args=(sid,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        codes = [code_of(r) for r in results]
        assert len(results) == 8
        assert codes.count("resource_exhausted") == 4, [(r.status_code, r.text) for r in results]
        for r in results:
            if code_of(r) != "resource_exhausted":
                assert r.status_code == 200 and r.json().get("success") is not True
        # Another session is not affected by this one's loads.
        r = post(http, url, "LoadProtos", {"protoPath": str(WEATHER_PROTOS)}, sid=other)
        assert r.status_code == 200 and r.json()["success"], r.text
    finally:
        blackhole.close()


# ---------------------------------------------------------------- 9. work off the event loop


def _worst_gap_while(url: str, work: Any) -> tuple[float, float, int, Any]:
    """Run `work()` while another client polls GetSession; the worst gap between answers."""
    answers: list[float] = []
    stop = threading.Event()
    started = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=120) as client:
            sid = session(client, url)
            while not stop.is_set():
                r = post(client, url, "GetSession", sid=sid)
                assert r.status_code == 200
                answers.append(time.monotonic())
                if len(answers) >= 3:
                    started.set()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    assert started.wait(30), "the polling client got no answers"
    t0 = time.monotonic()
    result = work()
    t1 = time.monotonic()
    stop.set()
    poller.join(120)
    points = [t0, *[t for t in answers if t0 < t < t1], t1]
    worst = max(b - a for a, b in itertools.pairwise(points))
    return worst, t1 - t0, len(points) - 2, result


def test_a_huge_stream_request_does_not_stall_other_clients(
    http: httpx.Client, grpc_upstream: GrpcServer
) -> None:
    with run_catalog(AppConfig(max_stream_messages=300_000)) as cat:
        sid = load(http, cat.url, PROTO_DIR)
        body = {
            "endpoint": grpc_upstream.address,
            "service": SERVICE,
            "method": "ClientStream",
            "transport": "TRANSPORT_GRPC",
            "timeoutSeconds": 200,
            "requestMessagesJson": ['{"message": "m", "number": 1}'] * 20_000,
        }

        def big() -> httpx.Response:
            with httpx.Client(timeout=280) as client:
                return stream(client, cat.url, body, sid)

        worst, total, count, r = _worst_gap_while(cat.url, big)
        assert r.status_code == 200
        events = stream_events(r.content)
        [status] = [e["status"] for e in events if "status" in e]
        assert status.get("success") is True, status
        [message] = [e["message"] for e in events if "message" in e]
        assert json.loads(message["json"])["number"] == 20_000
        assert worst < total / 3, f"worst gap {worst:.3f}s of {total:.3f}s ({count} answers)"


def test_a_huge_request_json_does_not_stall_other_clients(
    default_catalog: RunningCatalog, http: httpx.Client
) -> None:
    url = default_catalog.url
    sid = load(http, url, PROTO_DIR)
    tags = ["abcdefghij"] * (20 * 1024 * 1024 // 13)
    body = {
        "endpoint": "127.0.0.1:1",
        "service": SERVICE,
        "method": "Echo",
        "timeoutSeconds": 60,
        "requestJson": json.dumps({"message": "big", "tags": tags}),
    }
    assert len(body["requestJson"]) >= 20 * 1024 * 1024 - 64  # type: ignore[arg-type]

    def big() -> httpx.Response:
        with httpx.Client(timeout=280) as client:
            return post(client, url, "InvokeGRPC", body, sid=sid)

    worst, total, count, r = _worst_gap_while(url, big)
    assert r.status_code == 200, r.text[:300]
    assert r.json().get("success") is not True  # nothing listens on port 1
    assert worst < total / 3, f"worst gap {worst:.3f}s of {total:.3f}s ({count} answers)"
