"""Upstream calls over gRPC, Connect and gRPC-Web, behind one `Transport` interface.

Layout: `base` (the call description, events and the `Transport` Protocol), `status`
(the one `Code` enum and `CallStatus`), `problems` (typed errors for refused calls),
one module per transport (`grpc`, `connect`, `grpcweb`, the last two over the shared
HTTP client in `http`), their I/O-free wire parsers (`envelope`, `connect_wire`,
`grpcweb_wire`, `headers`), `diagnose` (what a server speaks, and hints), `tls`,
`errdetails`, the `registry` table (protocol → transport class) and the pooling
`invoker`.
"""

from .base import (
    Call,
    CallEvent,
    CallTarget,
    HttpVersion,
    Metadata,
    MethodRef,
    Pair,
    Payloads,
    ResponseHeaders,
    ResponseMessage,
    TLSConfig,
    Transport,
    UnaryResult,
    WireProtocol,
)
from .invoker import Invoker
from .problems import InvalidRequestError, InvokerClosedError, RequestError, UnsupportedCallError
from .registry import TRANSPORTS, refusal
from .status import CallStatus, Code, RawDetail, code_name
from .tls import TLSMaterialError

__all__ = [
    "TRANSPORTS",
    "Call",
    "CallEvent",
    "CallStatus",
    "CallTarget",
    "Code",
    "HttpVersion",
    "InvalidRequestError",
    "Invoker",
    "InvokerClosedError",
    "Metadata",
    "MethodRef",
    "Pair",
    "Payloads",
    "RawDetail",
    "RequestError",
    "ResponseHeaders",
    "ResponseMessage",
    "TLSConfig",
    "TLSMaterialError",
    "Transport",
    "UnaryResult",
    "UnsupportedCallError",
    "WireProtocol",
    "code_name",
    "refusal",
]
