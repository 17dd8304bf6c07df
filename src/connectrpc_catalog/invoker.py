"""Per-session upstream connection pool (being written; this placeholder only closes)."""

from __future__ import annotations

__all__ = ["Invoker"]


class Invoker:
    """A session's upstream connections."""

    async def close(self) -> None:
        """Close every connection."""
