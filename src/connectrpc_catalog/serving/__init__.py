"""Serving: the HTTP servers behind one Protocol (servers.py), the worker processes' app
(worker.py) and their supervisor (supervisor.py). Importing this package imports neither
the app nor a server."""

from __future__ import annotations

from .servers import SERVERS, Server, ServingError, choose
from .supervisor import StartupFailed, Supervisor, worker_count

__all__ = [
    "SERVERS",
    "Server",
    "ServingError",
    "StartupFailed",
    "Supervisor",
    "choose",
    "worker_count",
]
