"""The tables of saved requests (SQLAlchemy 2 declarative models).

JSON-shaped parts (metadata, messages, assertions, variables) are stored as JSON text;
secret values inside them are sealed (`secrets.Sealer`) before they are written.
Migrations in `migrations/versions/` create exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "CollectionRow", "EnvironmentRow", "RequestRow"]


class Base(DeclarativeBase):
    """The declarative base of the saved-request tables."""


class CollectionRow(Base):
    """A collection: personal (`owner` set) or shared with a team (`team` set)."""

    __tablename__ = "saved_collections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(300), default="", index=True)
    """The owner's identity key for a personal collection; "" for a team one."""
    team: Mapped[str] = mapped_column(String(200), default="", index=True)
    """The group that shares it ("*": everyone); "" for a personal one."""
    created_by: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[float] = mapped_column(default=0.0)
    updated_at: Mapped[float] = mapped_column(default=0.0)


class RequestRow(Base):
    """A saved request of a collection, at `position` in its order."""

    __tablename__ = "saved_requests"
    __table_args__ = (
        Index("ix_saved_requests_order", "collection_id", "position"),
        # covering the saved-bytes sums: a row's size is read without its body
        Index("ix_saved_requests_writer_size", "updated_by", "size"),
        Index("ix_saved_requests_collection_size", "collection_id", "size"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("saved_collections.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    folder: Mapped[str] = mapped_column(String(500), default="")
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    service: Mapped[str] = mapped_column(String(500), default="")
    method: Mapped[str] = mapped_column(String(200), default="")
    endpoint: Mapped[str] = mapped_column(String(2000), default="")
    transport: Mapped[str] = mapped_column(String(20), default="grpc")
    body: Mapped[str] = mapped_column(Text, default="{}")
    """JSON: metadata, messages, tls, assertions, timeout and codec."""
    updated_by: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[float] = mapped_column(default=0.0)
    size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Characters of `body` and `description` (what --max-saved-bytes-per-identity counts)."""


class EnvironmentRow(Base):
    """A named environment of a collection: variables, auth helper, client TLS."""

    __tablename__ = "saved_environments"
    __table_args__ = (UniqueConstraint("collection_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("saved_collections.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text, default="{}")
    """JSON: variables, auth and tls; secret values sealed."""
    updated_at: Mapped[float] = mapped_column(default=0.0)
