"""Status codes: the catalog's one code enum, its wire names, and how a call ended.

`Code` holds the 17 gRPC codes (values are the gRPC numbers, names the gRPC names).
Every table the transports need is derived from it here: Connect's lower-case names,
and the HTTP status → code mapping that the gRPC and Connect specs share for responses
that carry no protocol-level error. The "upstream returned …" text is built only by
`upstream_status`. Nothing here imports connectrpc or grpc.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..problems import Code

__all__ = [
    "HTTP_STATUS_CODES",
    "CallStatus",
    "Code",
    "RawDetail",
    "code_from_connect",
    "code_from_http",
    "code_name",
    "failure",
    "upstream_status",
]

Pair = tuple[str, str]


_BY_CONNECT_NAME: Mapping[str, Code] = {c.connect_name: c for c in Code if c is not Code.OK}

HTTP_STATUS_CODES: Mapping[int, Code] = {
    400: Code.INTERNAL,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.UNIMPLEMENTED,
    429: Code.UNAVAILABLE,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.UNAVAILABLE,
}
"""HTTP status → code for a response without a protocol-level status (gRPC's
"HTTP to gRPC Status Code Mapping", which Connect's "HTTP to Error Code" repeats);
every other status is UNKNOWN."""


def code_name(code: int) -> str:
    """The gRPC name of a code number ("CODE_42" for a number outside the enum)."""
    try:
        return Code(code).name
    except ValueError:
        return f"CODE_{code}"


def code_from_http(status: int) -> Code:
    """The code for an HTTP status without a protocol-level error."""
    return HTTP_STATUS_CODES.get(status, Code.UNKNOWN)


def code_from_connect(name: str) -> Code:
    """The code for a Connect error code name (UNKNOWN for names Connect does not define)."""
    return _BY_CONNECT_NAME.get(name, Code.UNKNOWN)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawDetail:
    """One error detail as sent: an Any's type URL and serialized value."""

    type_url: str
    value: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStatus:
    """How a call ended: code, message, details, trailers and a readable error."""

    code: int
    message: str = ""
    details: tuple[RawDetail, ...] = ()
    trailers: tuple[Pair, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the code is OK."""
        return self.code == Code.OK

    @property
    def name(self) -> str:
        """The code's gRPC name."""
        return code_name(self.code)


def upstream_status(
    code: int,
    message: str = "",
    *,
    details: tuple[RawDetail, ...] = (),
    trailers: tuple[Pair, ...] = (),
    error: str = "",
) -> CallStatus:
    """The status an upstream sent; a non-OK one gets "upstream returned NAME: message"
    as its readable error unless `error` says something more precise."""
    if code != Code.OK and not error:
        name = code_name(code)
        error = f"upstream returned {name}: {message}" if message else f"upstream returned {name}"
    return CallStatus(code=code, message=message, details=details, trailers=trailers, error=error)


def failure(code: Code, error: str, message: str = "") -> CallStatus:
    """A status for a failure the catalog observed itself (no upstream status)."""
    return CallStatus(code=code, message=message or error, error=error)
