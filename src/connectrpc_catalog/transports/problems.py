"""The invoker's typed errors: calls it refuses before they reach the upstream.

Upstream failures are never raised (they are a `CallStatus`). These are the caller's
to fix; each carries the `Code` it deserves and, where one is at fault, the request
field (its proto name). The API maps them to Connect codes in one table.
"""

from __future__ import annotations

from .status import Code

__all__ = ["InvalidRequestError", "InvokerClosedError", "RequestError", "UnsupportedCallError"]


class RequestError(Exception):
    """A call refused before it was sent: `code`, a message for a person, `field`."""

    code: Code = Code.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str = "", code: Code | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


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
