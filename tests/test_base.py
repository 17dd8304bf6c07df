"""Start-up sources form a shared base schema: visible to every session, reloadable, targeted."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.registry import Registry
from connectrpc_catalog.startup import BaseSpec, StartupSource, parse_target

from .catalog_server import run_catalog, run_cli

API = "/catalog.v1.CatalogService/"


def call(url: str, method: str, body: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.post(url + API + method, json=body, headers=headers, timeout=30)


def names(url: str, sid: str | None = None) -> list[str]:
    headers = {"x-session-id": sid} if sid else {}
    return [s["name"] for s in call(url, "ListServices", {}, **headers).json().get("services", [])]


def other_proto(folder: Path, package: str, service: str = "Svc") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{package}.proto").write_text(
        f'syntax = "proto3";\npackage {package};\n'
        f"service {service} {{ rpc Ping(P) returns (P); }}\nmessage P {{}}\n"
    )
    return folder


def test_cli_base_is_visible_to_a_session_without_header(weather_protos: Path) -> None:
    with run_cli(
        "--proto", str(weather_protos), "--target-for", "acme.weather=localhost:50051"
    ) as (url, _):
        r = call(url, "ListServices", {})
        [svc] = r.json()["services"]
        assert svc["name"] == "acme.weather.v1.WeatherService"
        assert svc["fromBase"] is True
        assert svc["defaultTarget"] == {
            "endpoint": "localhost:50051",
            "transport": "TRANSPORT_GRPC",
        }
        info = call(url, "GetSession", {}).json()
        assert info["baseServices"] == ["acme.weather.v1.WeatherService"]
        assert info.get("sessionServices", []) == []


def test_sessions_add_on_top_without_seeing_each_other(
    weather_protos: Path, tmp_path: Path
) -> None:
    spec = BaseSpec(sources=[StartupSource(kind="proto_path", value=str(weather_protos))])
    with run_catalog(AppConfig(base=spec)) as cat:
        cat.call(cat.app.reload_base())
        a = call(cat.url, "LoadProtos", {"protoPath": str(other_proto(tmp_path / "a", "alpha"))})
        b = call(cat.url, "LoadProtos", {"protoPath": str(other_proto(tmp_path / "b", "beta"))})
        sid_a, sid_b = a.headers["x-session-id"], b.headers["x-session-id"]
        assert names(cat.url, sid_a) == ["acme.weather.v1.WeatherService", "alpha.Svc"]
        assert names(cat.url, sid_b) == ["acme.weather.v1.WeatherService", "beta.Svc"]
        info = call(cat.url, "GetSession", {}, **{"x-session-id": sid_a}).json()
        assert info["sessionServices"] == ["alpha.Svc"]
        assert info["baseServices"] == ["acme.weather.v1.WeatherService"]
        listing = call(cat.url, "ListServices", {}, **{"x-session-id": sid_a}).json()["services"]
        assert {s["name"]: s.get("fromBase", False) for s in listing} == {
            "acme.weather.v1.WeatherService": True,
            "alpha.Svc": False,
        }


def test_base_is_shared_not_copied(weather_protos: Path) -> None:
    spec = BaseSpec(sources=[StartupSource(kind="proto_path", value=str(weather_protos))])
    with run_catalog(AppConfig(base=spec)) as cat:
        cat.call(cat.app.reload_base())
        sids = [call(cat.url, "ListServices", {}).headers["x-session-id"] for _ in range(50)]
        views = []
        for sid in sids:
            state = cat.app.manager.get(sid)
            assert state is not None and isinstance(state.registry, Registry)
            views.append(state.registry.view)
        assert all(v is cat.app.base.schema for v in views)  # one object, 50 sessions
        assert len(cat.app.base.schema.service_names) == 1


def test_failing_start_up_source_stops_the_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "--port", "0", "--proto", "/no/such/dir"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--proto /no/such/dir" in result.stderr and "no such file" in result.stderr
    assert "--keep-going" in result.stderr and "Traceback" not in result.stderr


def test_keep_going_skips_the_failing_source(weather_protos: Path) -> None:
    with run_cli("--proto", "/no/such/dir", "--proto", str(weather_protos), "--keep-going") as (
        url,
        _,
    ):
        assert names(url) == ["acme.weather.v1.WeatherService"]


def test_sighup_reloads_a_changed_proto(tmp_path: Path) -> None:
    folder = other_proto(tmp_path / "protos", "first")
    with run_cli("--proto", str(folder)) as (url, proc):
        assert names(url) == ["first.Svc"]
        (folder / "first.proto").unlink()
        other_proto(folder, "second")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while names(url) != ["second.Svc"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert names(url) == ["second.Svc"]


def test_reload_base_rpc_is_authenticated(tmp_path: Path) -> None:
    folder = other_proto(tmp_path / "protos", "first")
    spec = BaseSpec(sources=[StartupSource(kind="proto_path", value=str(folder))])
    with run_catalog(AppConfig(base=spec, admin_token="s3cret")) as cat:
        cat.call(cat.app.reload_base())
        r = call(cat.url, "ReloadBase", {})
        assert r.json()["code"] == "unauthenticated"
        r = call(cat.url, "ReloadBase", {}, authorization="Bearer wrong")
        assert r.json()["code"] == "unauthenticated"
        sid = call(cat.url, "ListServices", {}).headers["x-session-id"]
        other_proto(folder, "extra", "More")
        r = call(cat.url, "ReloadBase", {}, authorization="Bearer s3cret")
        assert r.json()["success"] is True and r.json()["serviceCount"] == 2
        assert names(cat.url, sid) == ["extra.More", "first.Svc"]  # existing session sees it
        shutil.rmtree(folder)
        r = call(cat.url, "ReloadBase", {}, authorization="Bearer s3cret").json()
        assert r.get("success") is not True and "previous base stays" in r["error"]
        assert names(cat.url, sid) == ["extra.More", "first.Svc"]


def test_reload_base_is_off_without_a_token() -> None:
    with run_catalog() as cat:
        r = call(cat.url, "ReloadBase", {}, authorization="Bearer anything")
        assert r.json()["code"] == "failed_precondition"
        assert "--admin-token" in r.json()["message"]


@pytest.mark.parametrize(
    ("text", "endpoint", "transport", "tls"),
    [
        ("localhost:50051", "localhost:50051", 1, False),
        ("api.example.com:443", "api.example.com:443", 1, True),
        ("https://api.example.com", "https://api.example.com", 0, True),
        ("connect+http://127.0.0.1:8080/prefix", "http://127.0.0.1:8080/prefix", 0, False),
        ("grpc-web+https://web.example", "https://web.example", 2, True),
    ],
)
def test_parse_target(text: str, endpoint: str, transport: int, tls: bool) -> None:
    t = parse_target(text)
    assert (t.endpoint, int(t.transport), t.use_tls) == (endpoint, transport, tls)
