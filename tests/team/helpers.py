"""Calling a catalog's API as a person: Connect JSON with a session and sign-in headers."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx

API = "/catalog.v1.CatalogService/"


def call(
    client: httpx.Client,
    url: str,
    method: str,
    body: dict[str, Any] | None = None,
    *,
    sid: str = "",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One unary API call."""
    h = {"content-type": "application/json", **(headers or {})}
    if sid:
        h["x-session-id"] = sid
    return client.post(url + API + method, json=body or {}, headers=h)


def stream(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    *,
    sid: str = "",
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """InvokeStream: every frame, the end-of-stream one as {"end": …}."""
    data = json.dumps(body).encode()
    h = {"content-type": "application/connect+json", **(headers or {})}
    if sid:
        h["x-session-id"] = sid
    r = client.post(
        url + API + "InvokeStream", content=struct.pack(">BI", 0, len(data)) + data, headers=h
    )
    out: list[dict[str, Any]] = []
    raw, pos = r.content, 0
    while pos + 5 <= len(raw):
        flags, size = struct.unpack(">BI", raw[pos : pos + 5])
        frame = json.loads(raw[pos + 5 : pos + 5 + size] or b"{}")
        pos += 5 + size
        out.append({"end": frame} if flags & 2 else frame)
    return out
