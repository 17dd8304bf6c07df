"""Where `Invoker` used to live: it is `connectrpc_catalog.transports.Invoker` now."""

from .transports import Invoker

__all__ = ["Invoker"]
