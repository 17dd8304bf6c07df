"""--database, --secret-key and --secret-key-file: checked at start-up, naming the
setting and never repeating a password or the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectrpc_catalog.config import ConfigError, load_settings


def test_database_urls() -> None:
    s = load_settings(["--database", "postgresql://catalog:pw@db.internal/catalog"])
    assert s.saved.database == "postgresql://catalog:pw@db.internal/catalog"
    assert load_settings([]).saved.database == ""  # the user's data folder, on first use
    for bad in ("mysql://u:hunter2@x/db", "/tmp/plain/path", "sqlite://relative"):
        with pytest.raises(ConfigError) as refused:
            load_settings(["--database", bad])
        assert "--database" in str(refused.value) and "hunter2" not in str(refused.value)


def test_secret_key_from_flag_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("a passphrase from a file\n")
    assert (
        load_settings(["--secret-key-file", str(key_file)]).saved.secret_key
        == "a passphrase from a file"
    )
    with pytest.raises(ConfigError) as missing:
        load_settings(["--secret-key-file", str(tmp_path / "nope")])
    assert "--secret-key-file" in str(missing.value)
    monkeypatch.setenv("CONNECTRPC_CATALOG_SECRET_KEY", "a passphrase from the env")
    assert load_settings([]).saved.secret_key == "a passphrase from the env"
    with pytest.raises(ConfigError) as short:
        load_settings(["--secret-key", "tooshort"])
    assert "--secret-key" in str(short.value) and "tooshort" not in str(short.value)
