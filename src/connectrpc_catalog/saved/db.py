"""The saved requests' database: `--database URL` parsed, the async engine, migrations.

`sqlite:///PATH` (aiosqlite) and `postgresql://...` (asyncpg) are accepted; the default
is a SQLite file in the user's data folder. Alembic migrations ship in the package
(`migrations/`) and run when the database is opened, so a new or an older database
is brought to the current schema before the first query.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["DatabaseError", "default_url", "describe", "engine_url", "open_engine", "upgrade"]

_log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x5A7ED_0001
"""The PostgreSQL advisory lock that migrations hold (one process at a time)."""


class DatabaseError(ValueError):
    """A --database URL the catalog cannot use (the message names no credentials)."""


def default_url() -> str:
    """`sqlite:///<user data folder>/connectrpc-catalog/saved.db` (XDG on Linux)."""
    from platformdirs import user_data_path

    return f"sqlite:///{user_data_path('connectrpc-catalog') / 'saved.db'}"


def describe(url: str) -> str:
    """The URL as messages show it: no user name or password."""
    try:
        return make_url(url).render_as_string(hide_password=True).replace(":***@", "@")
    except ArgumentError:
        return "the --database URL"


def engine_url(url: str) -> str:
    """The SQLAlchemy async URL for `sqlite:///PATH` or `postgresql://...`."""
    text = url.strip()
    scheme = urlsplit(text).scheme.lower()
    if scheme == "sqlite":
        if not text.lower().startswith("sqlite:///") or text.rstrip("/").lower() == "sqlite:":
            raise DatabaseError("a SQLite --database is sqlite:///PATH (three slashes)")
        return "sqlite+aiosqlite:///" + text[len("sqlite:///") :]
    if scheme in ("postgresql", "postgres"):
        return "postgresql+asyncpg://" + text.split("://", 1)[1]
    if scheme in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        return text
    raise DatabaseError(
        f"--database must be sqlite:///PATH or postgresql://..., not {scheme or 'a bare path'}://"
    )


def open_engine(url: str) -> AsyncEngine:
    """An engine for the database (the SQLite file's folder is created)."""
    real = engine_url(url)
    if real.startswith("sqlite+aiosqlite:///"):
        path = real[len("sqlite+aiosqlite:///") :]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(real, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(real, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    """Foreign keys on (cascading deletes) and WAL (readers do not wait for a writer)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    cursor.close()


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Run the migrations up to the newest (a no-op on a current database), one process
    at a time: PostgreSQL by an advisory lock, SQLite by a lock file beside the database
    (SQLite runs DDL outside transactions, so two processes would both see it empty)."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        await _upgrade_locked(engine)
        return
    with open(f"{database}.migrate.lock", "a+b") as lock:  # noqa: ASYNC230 - opening is instant
        await asyncio.to_thread(_flock, lock.fileno(), True)
        try:
            await _upgrade_locked(engine)
        finally:
            _flock(lock.fileno(), False)


def _flock(fd: int, take: bool) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock (one process per file there)
        return
    fcntl.flock(fd, fcntl.LOCK_EX if take else fcntl.LOCK_UN)


async def _upgrade_locked(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # replicas starting together migrate in turn
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        await conn.run_sync(_upgrade)
