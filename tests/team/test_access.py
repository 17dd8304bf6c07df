"""Sign-in by token and by proxy, sessions bound to identities, the access policy
(--proto-root, --allow-target with aliases), limits per identity, /healthz, /readyz,
/metrics and the audit log: real catalogs on 127.0.0.1, real upstream servers."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.settings import AuthSettings, OpsSettings, PolicySettings
from tests.catalog_server import RunningCatalog, run_catalog
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.schema import PROTO_DIR, SERVICE

from .helpers import call, stream

pytest_plugins = ["tests.upstream.fixtures"]

TOKEN = "team-token-0123456789abcdef"
BEARER = {"authorization": f"Bearer {TOKEN}"}
FIXTURES = Path(__file__).parents[1] / "fixtures" / "protos"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def _proxy(name: str, groups: str = "") -> dict[str, str]:
    h = {"x-forwarded-email": name}
    if groups:
        h["x-forwarded-groups"] = groups
    return h


PROXY = AuthSettings(
    mode="proxy", trusted_proxies=("127.0.0.1/32",), groups_header="X-Forwarded-Groups"
)


# -- sign-in ---------------------------------------------------------------------------


def test_token_sign_in(client: httpx.Client) -> None:
    with run_catalog(AppConfig(auth=AuthSettings(mode="token", token=TOKEN))) as c:
        r = call(client, c.url, "GetSession")
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        assert "Authorization: Bearer" in r.json()["message"] and "x-session-id" not in r.headers
        r = call(client, c.url, "GetSession", headers={"authorization": "Bearer wrong-token"})
        assert r.status_code == 401 and "not this catalog's token" in r.json()["message"]
        assert TOKEN not in r.text
        r = call(client, c.url, "GetSession", headers=BEARER)
        assert r.status_code == 200, r.text
        assert r.json()["identity"] == "token" and r.json()["authMode"] == "token"
        r = call(client, c.url, "GetSession", headers={"x-catalog-token": TOKEN})
        assert r.status_code == 200
        # health and the page need no sign-in; reflection of the API does
        assert client.get(c.url + "/healthz").status_code == 200
        page = client.get(c.url + "/")  # the page asks for the token itself
        assert page.status_code == 200 and "<html" in page.text.lower()
        r = call(client, c.url, "ListServices")
        assert r.status_code == 401 and r.headers["x-catalog-auth"] == "token"
        r = client.post(
            c.url + "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            headers={"content-type": "application/grpc-web+proto"},
            content=b"",
        )
        assert r.headers.get("grpc-status") == "16"


def test_no_sign_in_on_loopback_is_anonymous(client: httpx.Client) -> None:
    with run_catalog() as c:
        body = call(client, c.url, "GetSession").json()
        assert (body["identity"], body["authMode"]) == ("anonymous", "none")


def test_proxy_sign_in_trusts_only_its_proxy(client: httpx.Client) -> None:
    with run_catalog(AppConfig(auth=PROXY)) as c:
        r = call(client, c.url, "GetSession", headers=_proxy("alice@example.com", "eng, ops"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["identity"] == "alice@example.com" and body["groups"] == ["eng", "ops"]
        r = call(client, c.url, "GetSession")
        assert r.status_code == 401 and "X-Forwarded-Email".lower() in r.json()["message"]
    untrusted = AuthSettings(mode="proxy", trusted_proxies=("10.9.0.0/16",))
    with run_catalog(AppConfig(auth=untrusted)) as c:
        r = call(client, c.url, "GetSession", headers=_proxy("mallory@example.com"))
        assert r.status_code == 401 and "--trusted-proxy" in r.json()["message"]


def test_a_session_id_replayed_by_another_identity_gets_a_fresh_session(
    client: httpx.Client,
) -> None:
    with run_catalog(AppConfig(auth=PROXY)) as c:
        alice, bob = _proxy("alice@example.com"), _proxy("bob@example.com")
        r = call(client, c.url, "LoadProtos", {"protoPath": str(FIXTURES)}, headers=alice)
        assert r.json()["success"], r.text
        sid = r.headers["x-session-id"]
        r = call(client, c.url, "ListServices", sid=sid, headers=bob)
        assert r.headers["x-session-id"] != sid
        assert r.headers["x-session-status"] == "unknown"
        assert r.json().get("services", []) == []
        r = call(client, c.url, "CloseSession", sid=sid, headers=bob)  # closes bob's own
        r = call(client, c.url, "ListServices", sid=sid, headers=alice)
        assert r.headers["x-session-id"] == sid and len(r.json()["services"]) == 1


# -- the access policy: files ------------------------------------------------------------------


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "ok").mkdir(parents=True)
    outside.mkdir()
    proto = 'syntax = "proto3"; package p.v1; service S { rpc M(R) returns (R); } message R {}'
    (root / "ok" / "a.proto").write_text(proto)
    (outside / "secret.proto").write_text(proto.replace("p.v1", "secret.v1"))
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "link.proto").symlink_to(outside / "secret.proto")
    return root, outside


def test_proto_root_refuses_traversal_and_symlink_escapes(
    client: httpx.Client, tmp_path: Path
) -> None:
    root, outside = _layout(tmp_path)
    with run_catalog(AppConfig(policy=PolicySettings(proto_roots=(str(root),)))) as c:
        r = call(client, c.url, "LoadProtos", {"protoPath": str(root / "ok")})
        assert r.status_code == 200 and r.json()["success"], r.text
        # the root itself holds link.proto -> outside/secret.proto: not followed
        r = call(client, c.url, "LoadProtos", {"protoPath": str(root)})
        assert "secret.v1" not in r.text, r.text
        (root / "ok" / "b.proto").write_text('syntax = "proto3"; import "link.proto";')
        (root / "ok" / "link.proto").symlink_to(outside / "secret.proto")
        r = call(client, c.url, "LoadProtos", {"protoPath": str(root / "ok" / "b.proto")})
        assert "secret.v1" not in r.text and not r.json().get("success"), r.text
        for path in (
            str(outside),
            str(root / ".." / "outside"),
            str(root / "ok" / ".." / ".." / "outside" / "secret.proto"),
            str(root / "escape"),
            str(root / "escape" / "secret.proto"),
            str(root / "link.proto"),
            "/etc/passwd",
        ):
            r = call(client, c.url, "LoadProtos", {"protoPath": path})
            assert r.status_code == 403, (path, r.text)
            assert r.json()["code"] == "permission_denied" and "--proto-root" in r.json()["message"]
        for body in (
            {"bufModule": str(outside)},
            {"protoRepo": f"file://{outside}"},
            {"protoRepo": f"file://{root}/../outside//sub"},
        ):
            r = call(client, c.url, "LoadProtos", body)
            assert r.status_code == 403 and "--proto-root" in r.json()["message"], (body, r.text)


def test_disk_loading_is_off_on_a_network_address_unless_a_root_allows_it(
    client: httpx.Client, tmp_path: Path
) -> None:
    config = AppConfig(bind_host="0.0.0.0", auth=AuthSettings(mode="token", token=TOKEN))
    with run_catalog(config) as c:
        r = call(client, c.url, "LoadProtos", {"protoPath": str(FIXTURES)}, headers=BEARER)
        assert r.status_code == 403 and "--proto-root DIR" in r.json()["message"]
        files = {"a.proto": 'syntax = "proto3"; package a; message A {}'}
        r = call(client, c.url, "LoadProtos", {"protoFiles": {"files": files}}, headers=BEARER)
        assert r.json()["success"], r.text  # uploads are not the server's disk


def test_group_proto_roots(client: httpx.Client, tmp_path: Path) -> None:
    root, outside = _layout(tmp_path)
    policy = PolicySettings(proto_roots=(str(root),), group_proto_roots=(("sec", str(outside)),))
    with run_catalog(AppConfig(auth=PROXY, policy=policy)) as c:
        body = {"protoPath": str(outside)}
        r = call(client, c.url, "LoadProtos", body, headers=_proxy("a@x", "eng"))
        assert r.status_code == 403
        r = call(client, c.url, "LoadProtos", body, headers=_proxy("b@x", "eng,sec"))
        assert r.json()["success"], r.text


# -- the access policy: targets ------------------------------------------------------------------


def _loaded(client: httpx.Client, c: RunningCatalog, headers: dict[str, str] | None = None) -> str:
    r = call(client, c.url, "LoadProtos", {"protoPath": str(PROTO_DIR)}, headers=headers)
    assert r.json()["success"], r.text
    return r.headers["x-session-id"]


def _echo(endpoint: str) -> dict[str, object]:
    return {
        "service": SERVICE,
        "method": "Echo",
        "endpoint": endpoint,
        "transport": "TRANSPORT_GRPC",
        "requestJson": '{"message": "hi"}',
    }


ALIASES = [
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
    "[::]",
    "localhost",
    "LOCALHOST.",
    "127.0.0.2",
    "169.254.169.254",
]


def test_targets_outside_the_allow_list_and_their_aliases_are_refused(
    client: httpx.Client, grpc_upstream: GrpcServer
) -> None:
    port = grpc_upstream.port
    policy = PolicySettings(allow_targets=("*.staging.internal:443", "local*", "10.0.0.0/8"))
    with run_catalog(AppConfig(policy=policy)) as c:
        sid = _loaded(client, c)
        for host in ALIASES:
            r = call(client, c.url, "InvokeGRPC", _echo(f"{host}:{port}"), sid=sid)
            assert r.status_code == 403, (host, r.text)
            message = r.json()["message"]
            assert r.json()["code"] == "permission_denied" and "--allow-target" in message
        r = call(client, c.url, "LoadProtos", {"reflectionEndpoint": f"127.1:{port}"}, sid=sid)
        assert r.status_code == 403 and "--allow-target" in r.json()["message"]
        body = {**_echo(f"[::1]:{port}"), "requestMessagesJson": ["{}"]}
        del body["requestJson"]
        events = stream(client, c.url, body, sid=sid)
        assert events[-1]["end"]["error"]["code"] == "permission_denied"


def test_an_address_rule_allows_its_address_only(
    client: httpx.Client, grpc_upstream: GrpcServer
) -> None:
    port = grpc_upstream.port
    policy = PolicySettings(allow_targets=(f"127.0.0.1:{port}",))
    with run_catalog(AppConfig(policy=policy)) as c:
        sid = _loaded(client, c)
        r = call(client, c.url, "InvokeGRPC", _echo(f"127.0.0.1:{port}"), sid=sid)
        assert r.status_code == 200 and r.json()["success"], r.text
        # the same address written another way passes the policy (gRPC's resolver then
        # may not take it, which is the call's own failure, not a refusal)
        r = call(client, c.url, "InvokeGRPC", _echo(f"2130706433:{port}"), sid=sid)
        assert r.status_code == 200, r.text
        r = call(client, c.url, "InvokeGRPC", _echo(f"127.0.0.1:{port + 1}"), sid=sid)
        assert r.status_code == 403
        r = call(client, c.url, "LoadProtos", {"reflectionEndpoint": f"127.0.0.1:{port}"}, sid=sid)
        assert r.status_code == 200


def test_any_target_on_loopback_by_default_and_per_group(
    client: httpx.Client, grpc_upstream: GrpcServer
) -> None:
    with run_catalog() as c:  # loopback, nothing configured: as permissive as before
        sid = _loaded(client, c)
        r = call(client, c.url, "InvokeGRPC", _echo(f"localhost:{grpc_upstream.port}"), sid=sid)
        assert r.json()["success"], r.text
    policy = PolicySettings(group_targets=(("sre", "127.0.0.1"),))
    with run_catalog(AppConfig(auth=PROXY, policy=policy)) as c:
        for who, groups, status in (("dev@x", "eng", 403), ("sre@x", "eng,sre", 200)):
            sid = _loaded(client, c, _proxy(who, groups))
            r = call(
                client,
                c.url,
                "InvokeGRPC",
                _echo(grpc_upstream.address),
                sid=sid,
                headers=_proxy(who, groups),
            )
            assert r.status_code == status, (who, r.text)


# -- limits per identity ------------------------------------------------------------------------


def test_sessions_per_identity(client: httpx.Client) -> None:
    with run_catalog(AppConfig(auth=PROXY, sessions_per_identity=2)) as c:
        a = _proxy("alice@x")
        for _ in range(2):
            r = call(client, c.url, "LoadProtos", {"protoPath": str(FIXTURES)}, headers=a)
            assert r.status_code == 200
        r = call(client, c.url, "LoadProtos", {"protoPath": str(FIXTURES)}, headers=a)
        assert r.status_code == 429 and r.json()["code"] == "resource_exhausted"
        assert "--sessions-per-identity" in r.json()["message"]
        text = client.get(c.url + "/metrics").text
        assert _metric(text, "catalog_refusals_total", reason="sessions_per_identity") == 1
        r = call(client, c.url, "GetSession", headers=_proxy("bob@x"))  # others are not held up
        assert r.status_code == 200


def test_calls_per_minute(client: httpx.Client, grpc_upstream: GrpcServer) -> None:
    with run_catalog(AppConfig(auth=PROXY, calls_per_minute=2)) as c:
        a = _proxy("alice@x")
        sid = _loaded(client, c, a)
        for _ in range(2):
            r = call(client, c.url, "InvokeGRPC", _echo(grpc_upstream.address), sid=sid, headers=a)
            assert r.json()["success"], r.text
        r = call(client, c.url, "InvokeGRPC", _echo(grpc_upstream.address), sid=sid, headers=a)
        assert r.status_code == 429 and "--calls-per-minute" in r.json()["message"]
        text = client.get(c.url + "/metrics").text
        assert _metric(text, "catalog_refusals_total", reason="calls_per_minute") == 1
        b = _proxy("bob@x")
        sid_b = _loaded(client, c, b)
        r = call(client, c.url, "InvokeGRPC", _echo(grpc_upstream.address), sid=sid_b, headers=b)
        assert r.json()["success"]


def test_streams_per_identity(client: httpx.Client, grpc_upstream: GrpcServer) -> None:
    with run_catalog(AppConfig(auth=PROXY, streams_per_identity=1)) as c:
        a = _proxy("alice@x")
        sids = [_loaded(client, c, a), _loaded(client, c, a)]
        slow = {
            "service": SERVICE,
            "method": "ServerStream",
            "endpoint": grpc_upstream.address,
            "transport": "TRANSPORT_GRPC",
            "requestMessagesJson": ['{"message": "s", "count": 40, "intervalMs": 50}'],
        }
        first: list[list[dict[str, object]]] = []
        thread = threading.Thread(
            target=lambda: first.append(
                stream(httpx.Client(timeout=30), c.url, slow, sid=sids[0], headers=a)
            )
        )
        thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not c.app.identity_limits.counters._open:
            time.sleep(0.02)
        events = stream(client, c.url, slow, sid=sids[1], headers=a)
        assert events[-1]["end"]["error"]["code"] == "resource_exhausted"
        assert "--streams-per-identity" in events[-1]["end"]["error"]["message"]
        thread.join(30)
        assert "status" in first[0][-2], first[0][-2:]


# -- operations ----------------------------------------------------------------------------------


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_readiness_and_metrics_change_as_calls_happen(
    client: httpx.Client, grpc_upstream: GrpcServer
) -> None:
    with run_catalog() as c:
        assert client.get(c.url + "/healthz").json() == {"status": "ok"}
        r = client.get(c.url + "/readyz")
        assert r.status_code == 200 and r.json()["checks"] == {
            "base_loaded": True,
            "worker_alive": True,
        }
        before = client.get(c.url + "/metrics")
        assert before.headers["content-type"].startswith("text/plain")
        sid = _loaded(client, c)
        _loaded(client, c)  # the same files again: from the cache
        call(client, c.url, "LoadProtos", {"protoPath": "/no/such/dir"}, sid=sid)
        call(client, c.url, "InvokeGRPC", _echo(grpc_upstream.address), sid=sid)
        stream(
            client,
            c.url,
            {
                "service": SERVICE,
                "method": "ServerStream",
                "endpoint": grpc_upstream.address,
                "transport": "TRANSPORT_GRPC",
                "requestMessagesJson": ['{"message": "s", "count": 2}'],
            },
            sid=sid,
        )
        after = client.get(c.url + "/metrics").text
        b = before.text
        for name, labels, grew in [
            ("catalog_sessions_created_total", {}, 2),
            ("catalog_sessions_active", {}, 2),
            ("catalog_loads_total", {"source": "proto_path", "result": "ok"}, 2),
            ("catalog_loads_total", {"source": "proto_path", "result": "failed"}, 1),
            ("catalog_invocations_total", {"transport": "grpc", "kind": "unary", "code": "OK"}, 1),
            ("catalog_invocations_total", {"kind": "server-streaming", "code": "OK"}, 1),
            ("catalog_invocation_seconds_count", {"kind": "unary"}, 1),
            ("catalog_load_seconds_count", {"source": "proto_path"}, 3),
            ("catalog_schema_cache_builds_total", {}, 1),
            ("catalog_cache_hits_total", {"cache": "source"}, 1),
        ]:
            assert _metric(after, name, **labels) - _metric(b, name, **labels) == grew, (
                name,
                labels,
                after,
            )
        assert "catalog_session_oldest_age_seconds" in after
        assert sid not in after and "127.0.0.1" not in after  # no ids, no targets


def test_refusals_are_counted(client: httpx.Client) -> None:
    with run_catalog(AppConfig(auth=AuthSettings(mode="token", token=TOKEN))) as c:
        call(client, c.url, "GetSession")
        text = client.get(c.url + "/metrics").text
        assert _metric(text, "catalog_refusals_total", reason="unauthenticated") == 1


def test_metrics_can_be_turned_off(client: httpx.Client) -> None:
    with run_catalog(AppConfig(ops=OpsSettings(metrics=False))) as c:
        assert client.get(c.url + "/metrics").status_code != 200


def test_the_audit_log_attributes_without_secrets(
    client: httpx.Client, tmp_path: Path, grpc_upstream: GrpcServer
) -> None:
    log = tmp_path / "audit.jsonl"
    config = AppConfig(
        auth=AuthSettings(mode="token", token=TOKEN),
        ops=OpsSettings(audit_log=str(log)),
        policy=PolicySettings(allow_targets=(grpc_upstream.address,)),
    )
    with run_catalog(config) as c:
        sid = _loaded(client, c, BEARER)
        body = {
            **_echo(grpc_upstream.address),
            "requestJson": '{"message": "payload-secret"}',
            "metadata": {"x-api-key": "metadata-secret"},
        }
        r = call(client, c.url, "InvokeGRPC", body, sid=sid, headers=BEARER)
        assert r.json()["success"], r.text
        call(client, c.url, "InvokeGRPC", _echo("127.1:9"), sid=sid, headers=BEARER)
        call(
            client,
            c.url,
            "LoadProtos",
            {"protoRepo": "https://user:repo-password@git.invalid/o/r"},
            sid=sid,
            headers=BEARER,
        )
        call(client, c.url, "GetSession", headers={"authorization": "Bearer wrong-guess-123"})
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    events = [(x["event"], x.get("result") or x.get("code") or "") for x in lines]
    assert ("load", "ok") in events and ("call", "OK") in events
    assert any(e == "refused" for e, _ in events)
    call_line = next(x for x in lines if x["event"] == "call")
    assert call_line["who"] == "token" and call_line["via"] == "token"
    assert (
        call_line["method"] == f"/{SERVICE}/Echo" and call_line["target"] == grpc_upstream.address
    )
    assert call_line["session"] == sid[:8] and re.match(r"\d{4}-\d\d-\d\dT", call_line["ts"])
    for secret in (
        TOKEN,
        "payload-secret",
        "metadata-secret",
        "repo-password",
        sid,
        "wrong-guess-123",
    ):
        assert secret not in text, secret


def test_json_logs(tmp_path: Path) -> None:
    from tests.catalog_server import run_cli

    with run_cli(
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "--host",
        "0.0.0.0",
        "--auth",
        "none",
        env={"CONNECTRPC_CATALOG_LOOP": "asyncio"},
    ) as (_url, proc):
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any("--auth none" in x["message"] and x["level"] == "warning" for x in lines), err
    assert all({"ts", "level", "logger", "message"} <= x.keys() for x in lines)
    assert os.environ.get("CONNECTRPC_CATALOG_LOOP") != "x"


def test_token_sign_in_from_a_browser_form(client: httpx.Client) -> None:
    with run_catalog(AppConfig(auth=AuthSettings(mode="token", token=TOKEN))) as c:
        form = client.get(c.url + "/auth/login")  # for browsers without JavaScript
        assert form.status_code == 200 and 'name="token"' in form.text
        wrong = client.post(c.url + "/auth/login", data={"token": "not-the-token-at-all"})
        assert wrong.status_code == 401 and "catalog_auth" not in wrong.headers.get(
            "set-cookie", ""
        )
        r = client.post(c.url + "/auth/login", data={"token": TOKEN})
        assert r.status_code == 302 and "catalog_auth=" in r.headers["set-cookie"]
        assert TOKEN not in r.headers["set-cookie"]
        assert client.get(c.url + "/").status_code == 200  # the cookie signs the page in
        assert call(client, c.url, "GetSession").json()["identity"] == "token"
        r = client.get(c.url + "/auth/logout")
        assert r.status_code == 302
        assert call(client, c.url, "GetSession").status_code == 401


def test_readiness_waits_for_the_start_up_sources(client: httpx.Client) -> None:
    from connectrpc_catalog.startup import BaseSpec, StartupSource

    spec = BaseSpec(sources=(StartupSource(kind="proto_path", value=str(FIXTURES)),))
    with run_catalog(AppConfig(base=spec)) as c:
        r = client.get(c.url + "/readyz")
        assert r.status_code == 503 and r.json()["checks"]["base_loaded"] is False
        assert client.get(c.url + "/healthz").status_code == 200
        c.call(c.app.reload_base())
        assert client.get(c.url + "/readyz").status_code == 200
        assert client.head(c.url + "/readyz").content == b""
        assert client.post(c.url + "/healthz").status_code == 405


def test_the_command_writes_the_audit_log_and_reopens_it_on_sighup(tmp_path: Path) -> None:
    import signal

    from tests.catalog_server import run_cli

    log = tmp_path / "audit.jsonl"
    with (
        run_cli("--audit-log", str(log), env={"CONNECTRPC_CATALOG_LOOP": "asyncio"}) as (
            url,
            proc,
        ),
        httpx.Client(timeout=30) as client,
    ):
        call(client, url, "LoadProtos", {"protoPath": str(FIXTURES)})
        log.rename(tmp_path / "audit.jsonl.1")  # as logrotate does
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        call(client, url, "LoadProtos", {"protoPath": str(FIXTURES)})
        proc.terminate()
        proc.communicate(timeout=15)
    old = (tmp_path / "audit.jsonl.1").read_text().splitlines()
    new = log.read_text().splitlines()
    assert len(old) == 1 and len(new) == 1
    assert json.loads(new[0])["event"] == "load" and json.loads(new[0])["who"] == "anonymous"
