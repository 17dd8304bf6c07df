"""Header helpers shared by the transports: `-bin` values, wire pairs, the response head."""

from __future__ import annotations

import base64
import binascii

from .base import CallEvent, Metadata, Pair, ResponseHeaders
from .status import Code, failure

__all__ = ["decode_bin", "header_pairs", "normalize_bin", "stream_head", "wire_headers"]


def decode_bin(value: str) -> bytes | None:
    """A base64 value (padded or not, standard or URL alphabet) as bytes; None if invalid."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def normalize_bin(value: str) -> str:
    """Re-encode a base64 `-bin` header value as padded standard base64 (as is if invalid)."""
    raw = decode_bin(value)
    return value if raw is None else base64.b64encode(raw).decode()


def header_pairs(items: list[tuple[str, str]]) -> tuple[Pair, ...]:
    """Wire header pairs with `-bin` values normalized (see `normalize_bin`)."""
    return tuple((k, normalize_bin(v) if k.endswith("-bin") else v) for k, v in items)


def wire_headers(metadata: Metadata) -> list[Pair]:
    """Request metadata as HTTP header pairs (raw `-bin` bytes as padded base64)."""
    return [
        (key, base64.b64encode(value).decode() if isinstance(value, bytes) else value)
        for key, value in metadata
    ]


def stream_head(
    headers: tuple[Pair, ...], *, content_type: str, encoding_header: str, server: str
) -> tuple[str, list[CallEvent], bool]:
    """Check a streaming response's content type: (encoding, events, done).

    When the content type is not `content_type…`, the events end the call with UNKNOWN and
    a message asking whether the endpoint really is a `server`.
    """
    found = encoding = ""
    for key, value in headers:
        if key == "content-type":
            found = value
        elif key == encoding_header:
            encoding = value.strip().lower()
    events: list[CallEvent] = [ResponseHeaders(headers=headers)]
    if not found.lower().startswith(content_type):
        events.append(
            failure(
                Code.UNKNOWN, f"upstream answered with content-type {found!r}: is it a {server}?"
            )
        )
        return encoding, events, True
    return encoding, events, False
