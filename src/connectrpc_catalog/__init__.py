"""connectrpc-catalog: a proto-native API explorer for Connect, gRPC and gRPC-Web services."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
