"""Length-prefixed message framing shared by Connect streaming, gRPC-Web (and gRPC)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence

__all__ = [
    "FLAG_COMPRESSED",
    "EnvelopeError",
    "EnvelopeReader",
    "decompress",
    "envelope",
    "enveloped",
]

FLAG_COMPRESSED = 0x01
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class EnvelopeError(ValueError):
    """The body is not valid framing (or a message exceeds the size limit)."""


def envelope(flags: int, data: bytes) -> bytes:
    """One frame: flags byte, big-endian 32-bit length, data."""
    return bytes((flags,)) + len(data).to_bytes(4, "big") + data


def enveloped(payloads: Sequence[bytes] | AsyncIterable[bytes]) -> bytes | AsyncIterator[bytes]:
    """A request body of frames: whole bytes for a list, or frames as the iterator yields."""
    if isinstance(payloads, Sequence):
        return b"".join(envelope(0, p) for p in payloads)
    return _frames_of(payloads)


async def _frames_of(payloads: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for payload in payloads:
        yield envelope(0, payload)


def decompress(encoding: str, data: bytes) -> bytes:
    """Decode a frame flagged compressed (gzip); EnvelopeError for any other encoding,
    and for none: a compressed frame in a response that names no encoding is invalid."""
    if encoding in ("", "identity"):
        raise EnvelopeError("a message is flagged compressed but the response names no encoding")
    if encoding == "gzip":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise EnvelopeError("invalid gzip data in a compressed message") from exc
    raise EnvelopeError(f"unsupported message encoding {encoding!r}")


class EnvelopeReader:
    """Incremental frame parser: feed chunks, get complete (flags, data) frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """Add a chunk and return every frame now complete."""
        frames: list[tuple[int, bytes]] = []
        buf = self._buf
        buf += chunk
        pos = 0
        while len(buf) - pos >= 5:
            size = int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if size > MAX_MESSAGE_BYTES:
                raise EnvelopeError(f"a message of {size} bytes exceeds the limit")
            end = pos + 5 + size
            if len(buf) < end:
                break
            frames.append((buf[pos], bytes(buf[pos + 5 : end])))
            pos = end
        if pos:
            del buf[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buf)
