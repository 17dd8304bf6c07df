"""The invoker's typed errors: calls it refuses before they reach the upstream.

Upstream failures are never raised (they are a `CallStatus`). These are the caller's
to fix: `RequestError`s (see `connectrpc_catalog.problems`) with the code each deserves.
"""

from __future__ import annotations

from ..problems import Code, RequestError

__all__ = ["InvalidRequestError", "InvokerClosedError", "RequestError", "UnsupportedCallError"]


class InvalidRequestError(RequestError):
    """Part of the request cannot be used (TLS material that does not load):
    INVALID_ARGUMENT."""

    code = Code.INVALID_ARGUMENT


class UnsupportedCallError(RequestError):
    """The chosen transport cannot carry this kind of method (gRPC-Web and client
    streams): FAILED_PRECONDITION."""

    code = Code.FAILED_PRECONDITION


class InvokerClosedError(RequestError):
    """The invoker (its session) was closed: FAILED_PRECONDITION."""

    code = Code.FAILED_PRECONDITION
