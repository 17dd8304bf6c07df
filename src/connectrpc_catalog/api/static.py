"""Serving the built web UI that ships inside the package."""

from __future__ import annotations

import mimetypes
from importlib import resources
from pathlib import Path

from .sessions import Receive, Scope, Send

__all__ = ["StaticFiles"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


class StaticFiles:
    """GET/HEAD of the package's `static/` files; `/` is index.html (the UI routes in the hash).

    Files are read once and kept in memory: the bundle is small and never changes at run time.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(str(resources.files("connectrpc_catalog") / "static"))
        self._cache: dict[str, tuple[bytes, str]] = {}

    def _load(self, rel: str) -> tuple[bytes, str] | None:
        hit = self._cache.get(rel)
        if hit is not None:
            return hit
        path = (self.root / rel).resolve()
        root = self.root.resolve()
        if root not in path.parents or not path.is_file():
            return None
        ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        entry = (path.read_bytes(), ctype or "application/octet-stream")
        self._cache[rel] = entry
        return entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        path: str = scope["path"]
        if method not in ("GET", "HEAD"):
            await _send(send, 405, b"method not allowed\n", "text/plain", method)
            return
        rel = path.lstrip("/")
        entry = self._load(rel) if rel else None
        cache = "public, max-age=31536000, immutable" if rel.startswith("assets/") else "no-cache"
        if entry is None:
            if rel:
                await _send(send, 404, b"not found\n", "text/plain", method)
                return
            entry = self._load("index.html")
            cache = "no-cache"
            if entry is None:
                body = b"connectrpc-catalog: the web UI is not built into this installation\n"
                await _send(send, 404, body, "text/plain", method)
                return
        await _send(send, 200, entry[0], entry[1], method, cache)


async def _send(
    send: Send, status: int, body: bytes, ctype: str, method: str, cache: str = "no-cache"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", ctype.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", cache.encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
