"""Reading a Connect server stream in tests: frames through the catalog's own
`EnvelopeReader`, the end-of-stream frame ending it (with its error, if any)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from connectrpc_catalog.transports.envelope import EnvelopeReader

END_STREAM = 2


async def stream_frames(r: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each message of `r` as JSON; the end-of-stream frame yields `{"error": …}` if it has one."""
    reader = EnvelopeReader()
    async for chunk in r.aiter_bytes():
        for flags, data in reader.feed(chunk):
            frame = json.loads(data or b"{}")
            if flags & END_STREAM:
                if "error" in frame:
                    yield {"error": frame["error"]}
                return
            yield frame
