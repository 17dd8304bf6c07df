"""The settings tree: every setting from flags, environment and TOML, listed in --help and
the README, invalid values refused at start-up naming the setting, and the sign-in rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connectrpc_catalog.config import OPTIONS, ConfigError, build_parser, load_settings
from connectrpc_catalog.settings import Settings

README = Path(__file__).parents[2] / "README.md"
TOKEN = "s3cret-team-token-0123456789"


def test_every_option_has_a_flag_an_env_var_a_config_key_and_help(tmp_path: Path) -> None:
    text = build_parser().format_help()
    readme = README.read_text()
    for option in OPTIONS:
        assert option.flag_name in text, option.key
        assert option.help, option.key
        assert f"`{option.flag_name}" in readme, f"README's Options table lacks {option.flag_name}"
    s = load_settings(
        [], env={"CONNECTRPC_CATALOG_MAX_LOAD_FILES": "12", "CONNECTRPC_CATALOG_LOOP": "asyncio"}
    )
    assert s.limits.load.max_files == 12 and s.server.loop == "asyncio"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "schema-cache-entries = 7\nmax-schema-bytes = 1000\n"
        'allow-target = ["*.staging.internal:443"]\n'
        'session-sweep-interval = "30s"\ngit-timeout = "10s"\n'
    )
    s = load_settings(["--config", str(cfg), "--allow-target", "10.0.0.0/8"], env={})
    assert s.limits.schema_cache_entries == 7 and s.limits.max_schema_bytes == 1000
    assert s.policy.allow_targets == ("*.staging.internal:443", "10.0.0.0/8")
    assert s.sessions.cleanup_interval == 30 and s.limits.load.git_timeout == 10
    assert isinstance(s, Settings)
    with pytest.raises(AttributeError):
        s.server.port = 1  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--max-load-files", "0"], {}, "--max-load-files"),
        (
            [],
            {"CONNECTRPC_CATALOG_MAX_SCHEMA_BYTES": "lots"},
            "CONNECTRPC_CATALOG_MAX_SCHEMA_BYTES",
        ),
        (["--allow-target", "exa mple.com"], {}, "--allow-target"),
        (["--allow-target", "10.0.0.0/8:99999"], {}, "--allow-target"),
        (["--proto-root", "/no/such/folder"], {}, "--proto-root"),
        (["--auth", "ldap"], {}, "--auth"),
        (["--auth", "proxy", "--trusted-proxy", "the-proxy"], {}, "--trusted-proxy"),
        (["--log-format", "xml"], {}, "--log-format"),
        (["--oidc-issuer", "issuer.example"], {}, "--oidc-issuer"),
        (["--audit-log", "/no/such/folder/audit.jsonl"], {}, "--audit-log"),
    ],
)
def test_invalid_values_fail_naming_the_setting(
    argv: list[str], env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace("-", r"\-")):
        load_settings(argv, env=env)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--host", "0.0.0.0"], "--auth token"),
        (["--host", "0.0.0.0", "--auth", "token"], "--auth-token"),
        (["--auth-token", "short"], "at least 16"),
        (["--auth", "proxy"], "--trusted-proxy"),
        (["--auth", "oidc", "--oidc-issuer", "https://id.example"], "--oidc-client-id"),
        (["--auth", "oidc", "--oidc-client-id", "c"], "--oidc-issuer"),
        (
            ["--auth", "oidc", "--oidc-client-id", "c", "--oidc-issuer", "http://id.example"],
            "https://",
        ),
        (["--auth", "proxy", "--trusted-proxy", "10.0.0.1", "--auth-token", TOKEN], "--auth"),
    ],
)
def test_start_up_refusals_name_the_flags(argv: list[str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("-", r"\-")) as info:
        load_settings(argv, env={})
    assert TOKEN not in str(info.value)


def test_sign_in_choices_that_start(tmp_path: Path) -> None:
    assert load_settings(["--host", "0.0.0.0", "--auth", "none"], env={}).auth.mode == "none"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    s = load_settings(["--host", "0.0.0.0", "--auth-token-file", str(token_file)], env={})
    assert (s.auth.mode, s.auth.token) == ("token", TOKEN)  # the file implies --auth token
    s = load_settings(["--host", "::"], env={"CONNECTRPC_CATALOG_AUTH_TOKEN": TOKEN})
    assert s.auth.mode == "token"
    s = load_settings(
        ["--host", "0.0.0.0", "--auth", "proxy", "--trusted-proxy", "10.1.2.3"], env={}
    )
    assert s.auth.trusted_proxies == ("10.1.2.3/32",) and s.auth.header == "X-Forwarded-Email"
    s = load_settings(
        ["--auth", "oidc", "--oidc-issuer", "http://127.0.0.1:9/", "--oidc-client-id", "c"],
        env={},
    )
    assert s.auth.oidc_issuer == "http://127.0.0.1:9"  # http:// only on loopback


def test_a_secret_that_does_not_parse_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            [], env={"CONNECTRPC_CATALOG_AUTH_TOKEN": TOKEN, "CONNECTRPC_CATALOG_AUTH": "proxy"}
        )
    assert TOKEN not in str(info.value)


def test_the_command_refuses_a_network_address_without_sign_in() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--auth token" in done.stderr and "--auth none" in done.stderr
    assert "Traceback" not in done.stderr
