"""The UI bundle shipped in the package is exactly what the current web/ source builds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js 20+ and npm")
@pytest.mark.timeout(600)
def test_shipped_bundle_is_built_from_the_current_source() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_web.sh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_ships_the_ui() -> None:
    static = ROOT / "src" / "connectrpc_catalog" / "static"
    html = (static / "index.html").read_text()
    assets = sorted(p.name for p in (static / "assets").iterdir())
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for name in assets:
        assert f"assets/{name}" in html
