"""Auth helpers of an environment: the request headers they add to a call.

bearer (`authorization: Bearer …`), basic, an API key in a named header, and OAuth 2
client credentials: the catalog asks the token endpoint itself (httpx, bounded in time
and size), keeps the token until shortly before it expires, and shares one request per
client among concurrent calls. Tokens never go back to the browser: they are headers
of the upstream call only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..gen.catalog.v1 import collections_pb as pb
from ..problems import Code, RequestError

__all__ = ["TokenCache", "TokenError", "auth_headers"]

TargetCheck = Callable[[str, int], Awaitable[str | None]]
"""Refuses (raises a RequestError) a host and port the caller may not reach; else the
address to connect to (the one checked: the name is not resolved again), or None."""

_MAX_TOKEN_RESPONSE = 64 * 1024
_TIMEOUT = 10.0
_DEFAULT_LIFETIME = 300.0
"""How long a token without `expires_in` is kept, in seconds."""


class TokenError(RequestError):
    """The token endpoint refused or did not answer (no secret in the message)."""

    code = Code.UNAUTHENTICATED


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float


def _where(url: str) -> str:
    """The URL as messages show it: no credentials, no query."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TokenError(
            f"auth.tokenUrl {_where(url)!r} is not an http(s) URL", field="auth.tokenUrl"
        )
    try:
        port = parts.port
    except ValueError:
        raise TokenError(f"auth.tokenUrl {_where(url)!r} has no valid port") from None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


class TokenCache:
    """OAuth 2 client-credentials tokens by client, until shortly before they expire."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self.fetches = 0
        """How many times a token endpoint was asked (for tests and metrics)."""
        self._tokens: OrderedDict[str, _Token] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._transport = transport

    @staticmethod
    def _key(auth: pb.AuthHelper) -> str:
        parts = (auth.token_url, auth.client_id, auth.client_secret, auth.scopes, auth.audience)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    async def token(self, auth: pb.AuthHelper, check: TargetCheck | None = None) -> str:
        """A valid access token for the client `auth` names, fetched when needed. The
        token endpoint is checked (`check`) on every call, cached token or not: a token
        another caller fetched is no way around the caller's own policy."""
        dial = await check(*_host_port(auth.token_url)) if check is not None else None
        key = self._key(auth)
        cached = self._fresh(key)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._fresh(key)
            if cached is not None:
                return cached
            try:
                token = await self._fetch(auth, dial)
            except BaseException:  # no token: no lock kept for it (one per failed client)
                if key not in self._tokens:
                    self._locks.pop(key, None)
                raise
            self._tokens[key] = token
            self._tokens.move_to_end(key)
            while len(self._tokens) > self.max_entries:
                old, _ = self._tokens.popitem(last=False)
                self._locks.pop(old, None)
            return token.value

    def _fresh(self, key: str) -> str | None:
        token = self._tokens.get(key)
        if token is None or token.expires_at <= self.clock():
            return None
        return token.value

    async def _fetch(self, auth: pb.AuthHelper, dial: str | None = None) -> _Token:
        url = auth.token_url.strip()
        where = _where(url)
        host, port = _host_port(url)  # an http(s) URL with a host
        headers, extensions = {"accept": "application/json"}, {}
        if dial and dial != host:  # connect to the checked address (DNS rebinding)
            parts = urlsplit(url)
            headers["host"] = parts.netloc.rpartition("@")[2]
            extensions["sni_hostname"] = host  # and check the certificate for the name
            address = f"[{dial}]" if ":" in dial else dial
            url = urlunsplit(parts._replace(netloc=f"{address}:{port}"))
        form = {"grant_type": "client_credentials"}
        if auth.scopes.strip():
            form["scope"] = auth.scopes.strip()
        if auth.audience.strip():
            form["audience"] = auth.audience.strip()
        basic = base64.b64encode(f"{auth.client_id}:{auth.client_secret}".encode()).decode()
        self.fetches += 1
        started = self.clock()
        try:
            async with (
                httpx.AsyncClient(timeout=_TIMEOUT, transport=self._transport) as client,
                client.stream(
                    "POST",
                    url,
                    data=form,
                    headers={"authorization": f"Basic {basic}", **headers},
                    extensions=extensions,
                ) as response,
            ):
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_TOKEN_RESPONSE:
                        raise TokenError(f"the token endpoint {where} answered more than 64 KiB")
        except httpx.HTTPError as exc:
            raise TokenError(
                f"the token endpoint {where} did not answer ({type(exc).__name__})",
                code=Code.UNAVAILABLE,
            ) from None
        return _parse(response.status_code, bytes(body), where, started)


def _parse(status: int, body: bytes, where: str, started: float) -> _Token:
    import json

    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise TokenError(f"the token endpoint {where} answered HTTP {status} without JSON")
    if status != 200 or not isinstance(data.get("access_token"), str):
        error = str(data.get("error", ""))[:60]
        raise TokenError(
            f"the token endpoint {where} refused the client credentials: HTTP {status}"
            + (f" ({error})" if error else "")
        )
    lifetime = data.get("expires_in")
    seconds = (
        float(lifetime)
        if isinstance(lifetime, int | float) and 0 < lifetime <= 10**9  # a float, not inf
        else _DEFAULT_LIFETIME
    )
    margin = min(30.0, seconds / 10)  # renewed a little before it expires
    return _Token(data["access_token"], started + seconds - margin)


async def auth_headers(
    auth: pb.AuthHelper, tokens: TokenCache, check: TargetCheck | None = None
) -> dict[str, str]:
    """The headers `auth` adds to a call (none for kind "")."""
    kind = auth.kind
    if kind == "bearer" and auth.token:
        return {"authorization": f"Bearer {auth.token}"}
    if kind == "basic":
        pair = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        return {"authorization": f"Basic {pair}"}
    if kind == "api_key" and auth.header_name:
        return {auth.header_name.strip().lower(): auth.api_key}
    if kind == "oauth2_client_credentials":
        return {"authorization": f"Bearer {await tokens.token(auth, check)}"}
    return {}
