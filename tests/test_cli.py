"""The connectrpc-catalog command: flags, environment, start-up line, clean shutdown."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from connectrpc_catalog.config import ConfigError, load_settings, parse_duration

from .catalog_server import run_cli


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5h", 5400), ("500ms", 0.5), ("45", 45),
        ("1h30m", 5400), ("2h 15m", 8100), ("1m30s", 90),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5s", "0s", "1h30", "h30m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_defaults_and_environment() -> None:
    s = load_settings([], env={})
    assert (s.host, s.port, s.session_ttl, s.log_level) == ("127.0.0.1", 8080, 3600, "info")
    env = {
        "CONNECTRPC_CATALOG_PORT": "9191",
        "CONNECTRPC_CATALOG_SESSION_TTL": "30m",
        "CONNECTRPC_CATALOG_LOG_LEVEL": "DEBUG",
        "CONNECTRPC_CATALOG_HOST": "0.0.0.0",
        "CONNECTRPC_CATALOG_AUTH": "none",
    }
    s = load_settings([], env=env)
    assert (s.host, s.port, s.session_ttl, s.log_level) == ("0.0.0.0", 9191, 1800, "debug")
    assert load_settings(["--port", "7000"], env=env).port == 7000  # flags beat the environment


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError, match="session_ttl"):
        load_settings([], env={"CONNECTRPC_CATALOG_SESSION_TTL": "forever"})


def test_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "catalog.toml"
    cfg.write_text(
        'port = 9000\nsession-ttl = "2h"\nproto = ["/srv/protos"]\nplaintext = true\n'
        '[targets]\n"acme.weather.v1" = "weather:50051"\n'
    )
    s = load_settings(["--config", str(cfg), "--proto", "/more"], env={})
    assert (s.port, s.session_ttl) == (9000, 7200)
    assert [src.value for src in s.base.sources] == ["/srv/protos", "/more"]
    target = s.base.targets["acme.weather.v1"]
    assert target.endpoint == "weather:50051" and not target.use_tls
    cfg.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(["--config", str(cfg)], env={})
    cfg.write_text("port = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(["--config", str(cfg)], env={})


def test_bad_flag_exits_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "--session-ttl", "soon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid duration 'soon'" in result.stderr


def test_starts_serves_and_stops_cleanly_on_sigterm() -> None:
    with run_cli("--session-ttl", "90s") as (url, proc):
        assert url.startswith("http://127.0.0.1:")
        r = httpx.post(url + "/catalog.v1.CatalogService/GetSession", json={}, timeout=30)
        assert r.json()["ttlSeconds"] == "90"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
        assert "Traceback" not in err


def test_port_in_use_is_a_clear_error() -> None:
    with run_cli() as (url, _proc):
        port = url.rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "connectrpc_catalog", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_a_network_bind_warns_and_a_null_origin_is_refused() -> None:
    with run_cli("--host", "0.0.0.0", "--auth", "none") as (_url, proc):
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    assert "listening on a network address" in err and "--allowed-host" in err
    assert "--auth none on the network address" in err
    done = subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "--cors-origin", "null"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "'null' is never allowed" in done.stderr


def _descends(pid: int, ancestor: int) -> bool:
    from pathlib import Path

    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == ancestor:
            return True
    return False


def test_ctrl_c_in_a_terminal_stops_without_a_traceback() -> None:
    """Ctrl+C reaches the terminal's process group; the workers and the compile worker are
    not in it (the supervisor stops them)."""
    import os
    import re
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "connectrpc_catalog", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.search(r"listening on", line), line
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the compile worker is started after listening
            kids = [
                pid
                for pid in subprocess.run(
                    ["pgrep", "-f", "sources.compiler"], capture_output=True, text=True
                ).stdout.split()
                if _descends(int(pid), proc.pid)  # the server worker's child
            ]
            if kids:
                break
            time.sleep(0.1)
        assert kids, "the compile worker did not start"
        assert os.getsid(int(kids[0])) != proc.pid  # not in the terminal's session
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode == 0
