"""The shared base schema every new session starts from, and its default targets."""

from __future__ import annotations

from collections.abc import Mapping

from .descriptors import EMPTY, Schema
from .gen.catalog.v1 import catalog_pb

__all__ = ["Base"]


class Base:
    """The start-up schema shared (never copied) by all sessions; swapped whole on reload."""

    __slots__ = ("origins", "schema", "targets", "version")

    def __init__(
        self, schema: Schema = EMPTY, targets: Mapping[str, catalog_pb.Target] | None = None
    ) -> None:
        self.schema = schema
        self.targets: dict[str, catalog_pb.Target] = dict(targets or {})
        self.origins: dict[str, str] = {}
        """File name → the start-up source it came from ("--proto ./protos")."""
        self.version = 0
        """Bumped on every reload; caches derived from the base key on it."""

    def replace(
        self,
        schema: Schema,
        targets: Mapping[str, catalog_pb.Target],
        origins: Mapping[str, str] | None = None,
    ) -> None:
        """Swap in a reloaded schema and its targets (sessions see it on their next call);
        `origins` names the start-up source of each file, for conflict messages."""
        self.schema = schema
        self.targets = dict(targets)
        self.origins = dict(origins or {})
        self.version += 1

    def target_for(self, service: str) -> catalog_pb.Target | None:
        """The default target of a service: by its full name, else by its package prefixes."""
        targets = self.targets
        if not targets:
            return None
        name = service.lstrip(".")
        while name:
            hit = targets.get(name)
            if hit is not None:
                return hit
            name = name.rpartition(".")[0]
        return targets.get("*")
