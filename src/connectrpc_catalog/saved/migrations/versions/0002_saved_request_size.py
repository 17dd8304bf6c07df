"""Saved requests: each row's size (characters of its JSON body and description), and
indexes holding it with the writer and with the collection, so the saved-bytes budget
(--max-saved-bytes-per-identity) sums sizes from an index instead of reading every body
on each save.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("saved_requests") as batch:
        batch.add_column(sa.Column("size", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE saved_requests SET size = length(body) + length(description)")
    op.create_index("ix_saved_requests_writer_size", "saved_requests", ["updated_by", "size"])
    op.create_index(
        "ix_saved_requests_collection_size", "saved_requests", ["collection_id", "size"]
    )


def downgrade() -> None:
    op.drop_index("ix_saved_requests_collection_size", "saved_requests")
    op.drop_index("ix_saved_requests_writer_size", "saved_requests")
    with op.batch_alter_table("saved_requests") as batch:
        batch.drop_column("size")
