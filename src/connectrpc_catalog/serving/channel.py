"""The private channel between the supervisor and one worker process: a socket pair whose
child end the worker finds by the number in `FD_ENV`, carrying length-prefixed frames.

Supervisor → worker: the pickled `Settings` first, then commands (`reload`, `reopen`).
Worker → supervisor: one JSON answer to the start-up (`{"ready": …}` or `{"failed": text}`).
The worker stops when the channel closes (its supervisor is gone).
"""

from __future__ import annotations

import asyncio
import struct

__all__ = ["FD_ENV", "RELOAD", "REOPEN", "ChannelClosed", "frame", "read_frame"]

FD_ENV = "_CONNECTRPC_CATALOG_WORKER_FD"
"""Set by the supervisor only: the worker's end of its channel (not a setting)."""
RELOAD = b"reload"
"""SIGHUP: reopen the audit log and reload the base (announced to the other processes
through a shared session store)."""
REOPEN = b"reopen"
"""SIGHUP for the other workers of a shared store: reopen the audit log only."""
_HEADER = struct.Struct(">I")
_MAX_FRAME = 64 * 1024 * 1024


class ChannelClosed(Exception):
    """The other end closed the channel (or sent a frame out of bounds)."""


def frame(payload: bytes) -> bytes:
    """One frame: a 4-byte big-endian length, then the payload."""
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame's payload; ChannelClosed at the end of the stream."""
    try:
        (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if size > _MAX_FRAME:
            raise ChannelClosed(f"a frame of {size} bytes")
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise ChannelClosed("the channel closed") from exc
