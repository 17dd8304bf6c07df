"""Auth and TLS by URL: a password-protected Redis and a TLS-only Redis, each started by
the test; a wrong password is a clear start-up error that never repeats it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import trustme

from tests.catalog_server import run_cli

from .conftest import API, OwnRedis, free_port, store_args

PASSWORD = "catalog-test-pw-0451"
CLI = (sys.executable, "-m", "connectrpc_catalog", "--port", "0")


def _start(folder: Path, *extra: str) -> OwnRedis:
    server = OwnRedis(port=free_port(), folder=folder, extra=extra)
    server.start()
    return server


def _session_round_trip(url: str) -> None:
    with httpx.Client(timeout=30) as http:
        r = http.post(url + API + "GetSession", json={})
        assert r.status_code == 200, r.text
        sid = r.headers["x-session-id"]
        again = http.post(url + API + "GetSession", json={}, headers={"x-session-id": sid})
        assert again.headers["x-session-id"] == sid
        assert http.get(url + "/readyz").json()["checks"]["session_store"] is True


def test_password_by_url(tmp_path: Path) -> None:
    server = _start(tmp_path, "--requirepass", PASSWORD)
    try:
        wrong = f"redis://:not-{PASSWORD}@127.0.0.1:{server.port}/9"
        done = subprocess.run(
            [*CLI, *store_args(wrong, "pw")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "the user name or password was refused" in done.stderr, done.stderr
        assert PASSWORD not in done.stderr and PASSWORD not in done.stdout
        right = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/9"
        with run_cli(*store_args(right, "pw")) as (url, _proc):
            _session_round_trip(url)
    finally:
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait()


def test_tls_by_url(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls_port = free_port()
    server = _start(
        tmp_path,
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(cert_file),
        "--tls-key-file", str(key_file),
        "--tls-ca-cert-file", str(ca_file),
        "--tls-auth-clients", "no",
    )  # fmt: skip
    try:
        url = f"rediss://127.0.0.1:{tls_port}/9?ssl_ca_certs={ca_file}"
        with run_cli(*store_args(url, "tls")) as (catalog, _proc):
            _session_round_trip(catalog)
        untrusted = f"rediss://127.0.0.1:{tls_port}/9"  # the system's CAs do not know it
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "connectrpc_catalog",
                "--port",
                "0",
                *store_args(untrusted, "t"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "cannot reach the session store rediss://127.0.0.1" in done.stderr, done.stderr
    finally:
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait()
