"""The core's one code enum and its typed errors; the API maps them to Connect codes.

Everything below the API layer raises these (never connectrpc's errors): a
`RequestError` carries the `Code` it deserves, a message written for a person, and,
where one request field is at fault, its JSON name. `api/errors.py` turns every
`RequestError` into a Connect error in one place. Imports nothing of the package.
"""

from __future__ import annotations

import enum

__all__ = ["Code", "RequestError"]


class Code(enum.IntEnum):
    """A gRPC status code (the same 17 codes Connect uses)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @property
    def connect_name(self) -> str:
        """The code's name in the Connect protocol ("canceled", "invalid_argument", …)."""
        return "canceled" if self is Code.CANCELLED else self.name.lower()


class RequestError(Exception):
    """A request the catalog refuses: `code`, a message for a person, `field` (JSON name)."""

    code: Code = Code.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str = "", code: Code | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
