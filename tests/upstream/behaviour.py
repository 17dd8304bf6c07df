"""What TestService does, shared by the grpcio and the connectrpc implementations."""

from __future__ import annotations

import threading
from collections import Counter

from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from .schema import load_schema

HEADER_KEY = "x-served-by"
HEADER_VALUE = "testsvc"
TRAILER_KEY = "x-done"
FAIL_CODE = 3  # INVALID_ARGUMENT
FAIL_MESSAGE = "request is invalid"
ECHO_PREFIX = "x-echo-"


class Recorder:
    """Thread-safe record of what the servers observed (cancellations, calls)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.cancelled: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.peers: set[str] = set()

    def call(self, method: str, peer: str | None) -> None:
        """Count one call of a method and remember the client's address (one per connection)."""
        with self._cond:
            self.calls[method] += 1
            if peer:
                self.peers.add(peer)

    def cancel(self, method: str) -> None:
        """Record that a call of `method` saw its client go away."""
        with self._cond:
            self.cancelled[method] += 1
            self._cond.notify_all()

    def wait_cancelled(self, method: str, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait (bounded) until `count` cancellations of `method` were seen."""
        with self._cond:
            return self._cond.wait_for(lambda: self.cancelled[method] >= count, timeout)


def echo(req: Message, index: int = 0) -> Message:
    """An EchoResponse mirroring an EchoRequest."""
    out = load_schema().cls("EchoResponse")()
    out.message = req.message
    out.number = req.number
    out.index = index
    out.tags.extend(req.tags)
    if req.HasField("extra"):
        out.extra.CopyFrom(req.extra)
    return out


def stream_item(req: Message, i: int) -> Message:
    """The i-th response of ServerStream."""
    out = load_schema().cls("EchoResponse")()
    out.message = f"{req.message} {i}"
    out.index = i
    return out


def joined(reqs: list[Message]) -> Message:
    """The ClientStream answer: messages joined with ',', numbers summed."""
    out = load_schema().cls("EchoResponse")()
    out.message = ",".join(r.message for r in reqs)
    out.number = sum(r.number for r in reqs)
    out.index = len(reqs)
    return out


def text_response(text: str) -> Message:
    """An EchoResponse with only a message."""
    out = load_schema().cls("EchoResponse")()
    out.message = text
    return out


def fail_details(req: Message) -> list[any_pb2.Any]:
    """The rich details of Fail: a google.rpc.BadRequest and a testsvc.v1.CustomDetail."""
    bad = error_details_pb2.BadRequest()
    violation = bad.field_violations.add()
    violation.field = req.field or "name"
    violation.description = req.reason or "must not be empty"
    custom = load_schema().cls("CustomDetail")(reason="quota", retry_after_ms=1500)
    first = any_pb2.Any()
    first.Pack(bad)
    second = any_pb2.Any(
        type_url="type.googleapis.com/testsvc.v1.CustomDetail",
        value=custom.SerializeToString(),
    )
    return [first, second]


def fail_status(req: Message) -> status_pb2.Status:
    """The google.rpc.Status sent by Fail."""
    return status_pb2.Status(code=FAIL_CODE, message=FAIL_MESSAGE, details=fail_details(req))


def echo_pairs(
    headers: list[tuple[str, str | bytes]],
) -> tuple[list[tuple[str, str | bytes]], list[tuple[str, str | bytes]]]:
    """(response headers, trailers) for EchoMetadata from the request headers."""
    head: list[tuple[str, str | bytes]] = []
    tail: list[tuple[str, str | bytes]] = []
    for key, value in headers:
        if key.startswith(ECHO_PREFIX):
            rest = key[len(ECHO_PREFIX) :]
            head.append((f"x-header-{rest}", value))
            tail.append((f"x-trailer-{rest}", value))
    return head, tail
