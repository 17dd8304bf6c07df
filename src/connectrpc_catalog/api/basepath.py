"""Serving under a path prefix (`--base-path /catalog`), pure ASGI, outermost.

Behind a reverse proxy the catalog's page may live at `https://tools.example/catalog/`.
Proxies come in two kinds: those that forward the path as it is (`/catalog/…`) and those
that strip the prefix (`/…`). Both are served: a path under the prefix loses it, any
other path is taken as already stripped, and either way `root_path` is the prefix — what
the sign-in redirects, cookie paths and the OpenID redirect URL are built from
(`root_of`). The page itself uses relative URLs only, so it works wherever it is loaded.

`GET /catalog` (no slash) is redirected to `/catalog/`: relative URLs resolve against the
page's folder, so the page must be loaded with its slash. gRPC clients, which cannot put
a prefix before `/package.Service/Method`, are served at the root as before.
"""

from __future__ import annotations

from .refusal import ASGIApp, Receive, Scope, Send

__all__ = ["BasePath", "root_of"]


def root_of(scope: Scope) -> str:
    """The path prefix the client reached the catalog at ("" at the root)."""
    root = scope.get("root_path", "")
    return root if isinstance(root, str) else ""


class BasePath:
    """Strips `prefix` from paths under it and sets `root_path` for every request."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self._slash = prefix + "/"
        self._raw = prefix.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == self.prefix and scope.get("method") in ("GET", "HEAD"):
            await _to_folder(scope, send, self._slash)
            return
        scope = dict(scope)
        scope["root_path"] = self.prefix
        if path.startswith(self._slash) or path == self.prefix:
            scope["path"] = path[len(self.prefix) :] or "/"
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.startswith(self._raw):
                scope["raw_path"] = raw[len(self._raw) :] or b"/"
        await self.app(scope, receive, send)


async def _to_folder(scope: Scope, send: Send, location: str) -> None:
    query = scope.get("query_string", b"")
    target = location.encode() + (b"?" + query if query else b"")
    await send(
        {
            "type": "http.response.start",
            "status": 308,
            "headers": [(b"location", target), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
