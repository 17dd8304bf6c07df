"""The table of transports: which class carries each wire protocol.

Adding a transport is a module with a class that satisfies `base.Transport` and one
entry here (plus its `WireProtocol` member); the invoker pools whatever it opens by
`CallTarget.pool_key`.
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import MethodRef, Transport, WireProtocol
from .connect import ConnectTransport
from .grpc import GrpcTransport
from .grpcweb import GrpcWebTransport

__all__ = ["TRANSPORTS", "refusal", "transport_class"]

TRANSPORTS: Mapping[WireProtocol, type[Transport]] = {
    WireProtocol.GRPC: GrpcTransport,
    WireProtocol.CONNECT: ConnectTransport,
    WireProtocol.GRPC_WEB: GrpcWebTransport,
}


def transport_class(protocol: WireProtocol) -> type[Transport]:
    """The transport class for a protocol."""
    return TRANSPORTS[protocol]


def refusal(protocol: WireProtocol, method: MethodRef) -> str:
    """Why the protocol's transport cannot carry the method ("" when it can)."""
    cls = TRANSPORTS[protocol]
    if not method.client_streaming or cls.client_streams:
        return ""
    others = " or ".join(
        f"the {c.label} transport" for c in TRANSPORTS.values() if c.client_streams
    )
    return (
        f"{cls.label} cannot carry client or bidi streams, and this is a {method.kind} "
        f"method: use {others}"
    )
