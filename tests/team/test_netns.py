"""Targets on a non-loopback address: a network namespace joined by a veth pair (the
project's own test host, 10.231.x.2; never a real external address), with the example
gRPC server in it. Skipped where network namespaces cannot be made (not root)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.settings import AuthSettings, PolicySettings
from tests.catalog_server import run_catalog

from .helpers import call

ROOT = Path(__file__).parents[2]
SUBNET = 200 + os.getpid() % 50
HOST_IP, PEER_IP = f"10.231.{SUBNET}.1", f"10.231.{SUBNET}.2"
PORT = 50061
TOKEN = "netns-token-0123456789"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def peer() -> Iterator[str]:
    """`PEER_IP:PORT`: the example gRPC server (with reflection) in its own namespace."""
    ns, veth = f"catalog-t{os.getpid()}", f"cat{os.getpid() % 100000}"
    try:
        _ip("netns", "add", ns)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot create a network namespace here: {exc}")
    server = None
    try:
        _ip("link", "add", veth + "a", "type", "veth", "peer", "name", veth + "b")
        _ip("link", "set", veth + "b", "netns", ns)
        _ip("addr", "add", f"{HOST_IP}/24", "dev", veth + "a")
        _ip("link", "set", veth + "a", "up")
        _ip("-n", ns, "addr", "add", f"{PEER_IP}/24", "dev", veth + "b")
        _ip("-n", ns, "link", "set", veth + "b", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                str(ROOT / "examples" / "server.py"),
                "--host",
                PEER_IP,
                "--port",
                str(PORT),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening" in line, line + (server.stderr.read() if server.stderr else "")
        yield f"{PEER_IP}:{PORT}"
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        subprocess.run(["ip", "link", "del", veth + "a"], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _call(endpoint: str) -> dict[str, object]:
    return {
        "service": "weather.v1.WeatherService",
        "method": "GetCurrentConditions",
        "endpoint": endpoint,
        "transport": "TRANSPORT_GRPC",
        "requestJson": '{"location": {"city": "Lisbon"}}',
    }


def test_a_cidr_rule_allows_a_host_on_the_network_and_nothing_else(peer: str) -> None:
    policy = PolicySettings(allow_targets=(f"10.231.{SUBNET}.0/24:{PORT}",))
    auth = AuthSettings(mode="token", token=TOKEN)
    headers = {"authorization": f"Bearer {TOKEN}"}
    with (
        run_catalog(AppConfig(bind_host="0.0.0.0", auth=auth, policy=policy)) as c,
        httpx.Client(timeout=30) as client,
    ):
        r = call(client, c.url, "LoadProtos", {"reflectionEndpoint": peer}, headers=headers)
        assert r.status_code == 200 and r.json()["success"], r.text
        sid = r.headers["x-session-id"]
        r = call(client, c.url, "InvokeGRPC", _call(peer), sid=sid, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json().get("statusName", "OK") != "PERMISSION_DENIED"
        assert r.json().get("success"), r.text
        for endpoint in (
            f"{PEER_IP}:{PORT + 1}",
            f"127.0.0.1:{PORT}",
            f"[::ffff:127.0.0.1]:{PORT}",
            f"10.232.{SUBNET}.2:{PORT}",
        ):
            r = call(client, c.url, "InvokeGRPC", _call(endpoint), sid=sid, headers=headers)
            assert r.status_code == 403 and "--allow-target" in r.json()["message"], endpoint


def test_a_network_address_calls_nothing_by_default(peer: str) -> None:
    auth = AuthSettings(mode="token", token=TOKEN)
    headers = {"authorization": f"Bearer {TOKEN}"}
    with (
        run_catalog(AppConfig(bind_host="0.0.0.0", auth=auth)) as c,
        httpx.Client(timeout=30) as client,
    ):
        r = call(client, c.url, "LoadProtos", {"reflectionEndpoint": peer}, headers=headers)
        assert r.status_code == 403 and "--allow-target" in r.json()["message"]
