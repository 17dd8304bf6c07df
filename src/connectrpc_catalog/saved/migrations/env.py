"""Alembic's environment for the saved-request tables: migrations run on the connection
that `db.upgrade` hands over (never from an ini file or a URL of their own)."""

from __future__ import annotations

from alembic import context

from connectrpc_catalog.saved.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table="saved_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
