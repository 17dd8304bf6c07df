"""Databases for the saved-request tests: a SQLite file in pytest's temp folder, and a
database of its own on the real PostgreSQL at 127.0.0.1:5432 (created for the test and
dropped after; skipped with the reason when the server is not there)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

PG_ADMIN = os.environ.get("CATALOG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg_admin() -> object:
    import asyncpg

    return await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://"), timeout=5)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database's URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'saved.db'}"
        return
    try:
        admin = await _pg_admin()
    except (OSError, ImportError, Exception) as exc:  # not reachable: skip, saying why
        pytest.skip(
            f"PostgreSQL at {PG_ADMIN.split('@')[-1]} is not reachable ({type(exc).__name__})"
        )
    name = f"saved_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        await admin.close()  # type: ignore[attr-defined]
