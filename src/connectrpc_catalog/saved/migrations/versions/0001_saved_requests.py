"""Saved requests: collections, requests and environments.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_collections",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(300), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_saved_collections_owner", "saved_collections", ["owner"])
    op.create_index("ix_saved_collections_team", "saved_collections", ["team"])
    op.create_table(
        "saved_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "collection_id",
            sa.String(32),
            sa.ForeignKey("saved_collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(500), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("service", sa.String(500), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("transport", sa.String(20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(300), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_saved_requests_order", "saved_requests", ["collection_id", "position"])
    op.create_table(
        "saved_environments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "collection_id",
            sa.String(32),
            sa.ForeignKey("saved_collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("collection_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("saved_environments")
    op.drop_index("ix_saved_requests_order", "saved_requests")
    op.drop_table("saved_requests")
    op.drop_index("ix_saved_collections_team", "saved_collections")
    op.drop_index("ix_saved_collections_owner", "saved_collections")
    op.drop_table("saved_collections")
