"""`connectrpc-catalog TARGET`: reflect a server at start-up and call it with no endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection

from .catalog_server import run_cli
from .upstream.behaviour import Recorder
from .upstream.grpc_server import _handler
from .upstream.schema import SERVICE, load_schema

API = "/catalog.v1.CatalogService/"


@pytest.fixture(scope="module")
def reflecting_upstream() -> Iterator[str]:
    """TestService on grpcio with server reflection (v1alpha, as grpcio-reflection serves)."""
    schema = load_schema()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((_handler(Recorder()),))
    reflection.enable_server_reflection(
        [SERVICE, reflection.SERVICE_NAME], server, pool=schema.pool
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def post(url: str, method: str, body: dict[str, object], sid: str | None = None) -> httpx.Response:
    headers = {"x-session-id": sid} if sid else {}
    return httpx.post(url + API + method, json=body, headers=headers, timeout=30)


def test_target_is_reflected_and_called_without_an_endpoint(reflecting_upstream: str) -> None:
    with run_cli(reflecting_upstream) as (url, _):
        r = post(url, "ListServices", {})  # a brand-new session, no header
        services = {s["name"]: s for s in r.json()["services"]}
        assert SERVICE in services
        svc = services[SERVICE]
        assert svc["fromBase"] is True
        assert svc["defaultTarget"]["endpoint"] == reflecting_upstream
        assert svc["defaultTarget"]["transport"] == "TRANSPORT_GRPC"
        sid = r.headers["x-session-id"]
        r = post(
            url,
            "InvokeGRPC",
            {"service": SERVICE, "method": "Echo", "requestJson": json.dumps({"message": "hi"})},
            sid,
        )
        body = r.json()
        assert body.get("success") is True, body
        assert "hi" in json.loads(body["responseJson"])["message"]


def test_empty_endpoint_without_a_default_is_invalid(reflecting_upstream: str) -> None:
    with run_cli("--proto", str(load_schema().proto_dir)) as (url, _):
        r = post(url, "InvokeGRPC", {"service": SERVICE, "method": "Echo"})
        assert r.status_code == 400
        assert r.json()["code"] == "invalid_argument"
        assert "endpoint" in r.json()["message"]


def test_target_for_overrides_and_streams_use_it(reflecting_upstream: str) -> None:
    with run_cli(
        "--proto", str(load_schema().proto_dir), "--target-for", f"testsvc.v1={reflecting_upstream}"
    ) as (url, _):
        r = post(url, "ListServices", {})
        [svc] = [s for s in r.json()["services"] if s["name"] == SERVICE]
        assert svc["defaultTarget"]["endpoint"] == reflecting_upstream
        r = httpx.post(
            url + API + "InvokeStream",
            content=_envelope(
                json.dumps({"service": SERVICE, "method": "Echo", "requestMessagesJson": ["{}"]})
            ),
            headers={"content-type": "application/connect+json"},
            timeout=30,
        )
        assert r.status_code == 200
        assert b'"success":true' in r.content.replace(b" ", b"")


def _envelope(text: str) -> bytes:
    data = text.encode()
    return b"\x00" + len(data).to_bytes(4, "big") + data


def test_unreachable_target_stops_start_up() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "--port", "0", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "TARGET 127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
