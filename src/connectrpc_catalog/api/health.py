"""Operations endpoints: /healthz (the process answers), /readyz (the base is loaded and
the compiler's worker is alive) and /metrics (Prometheus text format). GET or HEAD only;
they need no sign-in and carry no identities."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from ..metrics import CONTENT_TYPE, Metrics
from .refusal import ASGIApp, Receive, Scope, Send, drain

__all__ = ["ops_routes"]

Ready = Callable[[], Awaitable[dict[str, bool]]]


def ops_routes(ready: Ready, metrics: Metrics | None) -> dict[str, ASGIApp]:
    """The routes by exact path."""

    async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
        await _answer(scope, receive, send, 200, b'{"status":"ok"}\n')

    async def readyz(scope: Scope, receive: Receive, send: Send) -> None:
        checks = await ready()
        ok = all(checks.values())
        body = json.dumps(
            {"status": "ready" if ok else "not ready", "checks": checks}, separators=(",", ":")
        )
        await _answer(scope, receive, send, 200 if ok else 503, body.encode() + b"\n")

    async def metrics_route(scope: Scope, receive: Receive, send: Send) -> None:
        assert metrics is not None
        await _answer(scope, receive, send, 200, metrics.render(), CONTENT_TYPE.encode())

    routes: dict[str, ASGIApp] = {"/healthz": healthz, "/readyz": readyz}
    if metrics is not None:
        routes["/metrics"] = metrics_route
    return routes


async def _answer(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
) -> None:
    await drain(receive)
    if scope.get("method") not in ("GET", "HEAD"):
        status, body, content_type = 405, b"use GET\n", b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send(
        {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body}
    )
