"""Sign-in: who a request comes from, before anything else of the API runs.

Modes (`--auth`): `none` (everyone is `anonymous`), `token` (one shared bearer token:
`Authorization: Bearer TOKEN` or `X-Catalog-Token: TOKEN`), `proxy` (an identity header
set by an authenticating proxy, trusted only from `--trusted-proxy` addresses) and
`oidc` (OpenID Connect sign-in: authorization code with PKCE; the ID token is checked
with the provider's keys by joserfc, Authlib's JOSE library, and kept as a signed
cookie; API clients may send the ID token as a bearer token instead).

`AuthGate` makes the identity current (identity.py) for the request, or refuses it with
UNAUTHENTICATED before any handler runs. Health, readiness, metrics, the sign-in
routes and the static UI are public (the UI's page asks the API, which needs sign-in).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from connectrpc.code import Code
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..audit import AuditLog
from ..identity import ANONYMOUS, Identity, reset_identity, use_identity
from ..metrics import Metrics
from ..settings import AuthSettings
from .basepath import root_of
from .refusal import ASGIApp, Receive, Scope, Send, drain, header, refuse

__all__ = ["AuthGate", "Authenticator", "authenticator_for"]

_log = logging.getLogger("connectrpc_catalog.auth")
AUTH_COOKIE = "catalog_auth"
AUTH_MODE_HEADER = b"x-catalog-auth"
"""On an UNAUTHENTICATED refusal: the sign-in mode (token, proxy, oidc)."""
FLOW_COOKIE = "catalog_oidc"
_MAX_NAME = 256
_MAX_GROUPS = 64
_FLOW_SECONDS = 600


class Authenticator(Protocol):
    """One sign-in mode."""

    mode: str

    async def identify(self, scope: Scope) -> Identity | str:
        """The request's identity, or why it has none (a message for the caller)."""
        ...

    def routes(self) -> dict[str, ASGIApp]:
        """Extra routes the mode serves (OpenID sign-in), by exact path."""
        ...


class NoAuth:
    """`--auth none`: everyone is `anonymous`."""

    mode = "none"

    async def identify(self, scope: Scope) -> Identity | str:
        """Always anonymous."""
        return ANONYMOUS

    def routes(self) -> dict[str, ASGIApp]:
        """None."""
        return {}


class TokenAuth:
    """`--auth token`: one bearer token for the whole team. Browsers may also sign in
    once at /auth/login (a form), which sets a signed cookie that never holds the token."""

    mode = "token"
    _COOKIE_SECONDS = 12 * 3600

    def __init__(
        self,
        token: str,
        *,
        clock: Callable[[], float] = time.time,
        cookie_secret: str = "",
        audit: AuditLog | None = None,
    ) -> None:
        self._digest = hashlib.sha256(token.encode()).digest()
        self.clock = clock
        self.audit = audit
        self.signer = _Signer(cookie_secret.encode() or secrets.token_bytes(32))

    def _matches(self, given: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._digest)

    async def identify(self, scope: Scope) -> Identity | str:
        """`token` when the request carries the token (or the sign-in cookie)."""
        given = (
            _bearer(scope) or (header(scope, b"x-catalog-token") or b"").decode("latin-1").strip()
        )
        if not given:
            cookie = _cookie(scope, AUTH_COOKIE)
            if cookie and self.signer.unsign(cookie, self.clock()) is not None:
                return Identity(name="token", via="token")
            return (
                "sign in first: send the catalog's token as Authorization: Bearer TOKEN "
                "(or X-Catalog-Token: TOKEN), or sign in at /auth/login"
            )
        if self._matches(given):
            return Identity(name="token", via="token")
        return "the token sent is not this catalog's token"

    def routes(self) -> dict[str, ASGIApp]:
        """/auth/login (a form for the token) and /auth/logout."""
        return {"/auth/login": self._login, "/auth/logout": self._logout}

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            await drain(receive)
            await _html(send, 200, _TOKEN_FORM.format(note=""))
            return
        body = await _read_form(receive)
        given = urllib.parse.parse_qs(body.decode("latin-1")).get("token", [""])[0].strip()
        if not given or not self._matches(given):
            if self.audit is not None:
                self.audit.write("refused", ANONYMOUS, what="sign-in", reason="wrong token")
            await _html(send, 401, _TOKEN_FORM.format(note="<p>That is not the token.</p>"))
            return
        exp = int(self.clock()) + self._COOKIE_SECONDS
        cookie = self.signer.sign({"n": "token", "exp": exp})
        if self.audit is not None:
            self.audit.write("sign_in", Identity(name="token", via="token"))
        await _redirect(
            scope, send, "/", [_set_cookie(scope, AUTH_COOKIE, cookie, "/", self._COOKIE_SECONDS)]
        )

    async def _logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        await drain(receive)
        await _redirect(scope, send, "/auth/login", [_set_cookie(scope, AUTH_COOKIE, "", "/", 0)])


_TOKEN_FORM = """<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title>
<meta name="viewport" content="width=device-width"></head>
<body style="font-family:system-ui;max-width:28rem;margin:4rem auto">
<h1>connectrpc-catalog</h1>{note}
<form method="post" action="login"><label>Team token
<input type="password" name="token" autocomplete="current-password" autofocus required>
</label> <button>Sign in</button></form></body></html>"""
_MAX_FORM = 4096


async def _read_form(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += bytes(message.get("body", b""))
        if len(body) > _MAX_FORM:
            await drain(receive)
            return b""
        if not message.get("more_body", False):
            return body


async def _html(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-frame-options", b"DENY"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


class ProxyAuth:
    """`--auth proxy`: the identity header of a trusted proxy."""

    mode = "proxy"

    def __init__(self, header_name: str, groups_header: str, proxies: Iterable[str]) -> None:
        self.header = header_name.strip().lower().encode()
        self.groups_header = groups_header.strip().lower().encode()
        self.proxies = tuple(ipaddress.ip_network(p, strict=False) for p in proxies)

    async def identify(self, scope: Scope) -> Identity | str:
        """The header's identity, when the request comes from a trusted proxy."""
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            addr = None
        if addr is None or not any(
            addr.version == net.version and addr in net for net in self.proxies
        ):
            return (
                "this catalog takes sign-ins only through its proxy: the request did not "
                "come from a --trusted-proxy address"
            )
        raw = header(scope, self.header)
        name = raw.decode("utf-8", "replace").strip() if raw else ""
        if not name:
            return f"the proxy sent no {self.header.decode()} header: sign in through the proxy"
        if len(name) > _MAX_NAME:
            return f"the {self.header.decode()} header is longer than {_MAX_NAME} characters"
        groups: frozenset[str] = frozenset()
        if self.groups_header:
            text = (header(scope, self.groups_header) or b"").decode("utf-8", "replace")
            groups = frozenset(g.strip() for g in text.split(",")[:_MAX_GROUPS] if g.strip())
        return Identity(name=name, groups=groups, via="proxy")

    def routes(self) -> dict[str, ASGIApp]:
        """None."""
        return {}


class _Signer:
    """Signed, expiring cookie values: base64url(JSON).base64url(HMAC-SHA256)."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"connectrpc-catalog cookie\0" + secret).digest()

    def sign(self, data: dict[str, Any]) -> str:
        body = _b64(json.dumps(data, separators=(",", ":")).encode())
        mac = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def unsign(self, value: str, now: float) -> dict[str, Any] | None:
        body, _, mac = value.partition(".")
        want = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not mac or not hmac.compare_digest(mac, want):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int | float):
            return None
        return data if data["exp"] > now else None


class OIDCAuth:
    """`--auth oidc`: OpenID Connect sign-in (authorization code + PKCE)."""

    mode = "oidc"

    def __init__(
        self,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.time,
        audit: AuditLog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.clock = clock
        self.audit = audit
        self.metrics = metrics
        secret = settings.cookie_secret.encode() or secrets.token_bytes(32)
        self.signer = _Signer(secret)
        self._meta: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    # -- provider ---------------------------------------------------------------------

    async def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=10.0, follow_redirects=False)

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once)."""
        if self._meta is None:
            async with await self._client() as client:
                r = await client.get(self.issuer + "/.well-known/openid-configuration")
                r.raise_for_status()
                meta = r.json()
            if not isinstance(meta, dict) or meta.get("issuer", "").rstrip("/") != self.issuer:
                raise ValueError("the provider's discovery document names another issuer")
            self._meta = meta
        return self._meta

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys (refetched at most once a minute on demand)."""
        if self._keys is None or (refresh and time.monotonic() - self._keys_at > 60):
            meta = await self.metadata()
            async with await self._client() as client:
                r = await client.get(meta["jwks_uri"])
                r.raise_for_status()
                self._keys = KeySet.import_key_set(r.json())
                self._keys_at = time.monotonic()
        return self._keys

    async def verify(self, id_token: str, nonce: str | None = None) -> dict[str, Any]:
        """The claims of a valid ID token from this provider for this client; ValueError
        (with a reason for the log, never the token) when it is not."""
        algorithms = ["RS256", "ES256", "PS256", "EdDSA", "RS384", "ES384", "RS512"]
        try:
            try:
                token = jwt.decode(id_token, await self.keys(), algorithms=algorithms)
            except JoseError:
                token = jwt.decode(id_token, await self.keys(refresh=True), algorithms=algorithms)
            options: dict[str, Any] = {
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.settings.oidc_client_id},
                "exp": {"essential": True},
                "sub": {"essential": True},
            }
            if nonce is not None:
                options["nonce"] = {"essential": True, "value": nonce}
            jwt.JWTClaimsRegistry(now=lambda: int(self.clock()), **options).validate(token.claims)
        except (JoseError, ValueError, KeyError) as exc:
            raise ValueError(f"the ID token is not valid: {type(exc).__name__}") from None
        return dict(token.claims)

    def identity_of(self, claims: dict[str, Any]) -> Identity:
        """The person an ID token names, with the groups of the group claim."""
        name = str(claims.get("email") or claims.get("preferred_username") or claims["sub"])
        raw = claims.get(self.settings.oidc_group_claim, [])
        groups = (
            frozenset(str(g) for g in raw[:_MAX_GROUPS]) if isinstance(raw, list) else frozenset()
        )
        return Identity(name=name[:_MAX_NAME], groups=groups, via="oidc")

    # -- requests ---------------------------------------------------------------------

    async def identify(self, scope: Scope) -> Identity | str:
        """The identity of the sign-in cookie, or of a bearer ID token."""
        bearer = _bearer(scope)
        if bearer:
            try:
                return self.identity_of(await self.verify(bearer))
            except ValueError as exc:
                _log.info("bearer token refused: %s", exc)
                return (
                    "the bearer token is not a valid, unexpired ID token of this catalog's provider"
                )
            except httpx.HTTPError:
                return "the OpenID provider cannot be reached to check the token; try again"
        cookie = _cookie(scope, AUTH_COOKIE)
        if cookie:
            data = self.signer.unsign(cookie, self.clock())
            if data is not None:
                groups = frozenset(str(g) for g in data.get("g", [])[:_MAX_GROUPS])
                return Identity(name=str(data["n"]), groups=groups, via="oidc")
            return "your sign-in has expired: sign in again at /auth/login"
        return (
            "sign in first: open /auth/login (API clients: send an ID token as "
            "Authorization: Bearer)"
        )

    def routes(self) -> dict[str, ASGIApp]:
        """/auth/login, /auth/callback and /auth/logout."""
        return {
            "/auth/login": self._login,
            "/auth/callback": self._callback,
            "/auth/logout": self._logout,
        }

    def _redirect_uri(self, scope: Scope) -> str:
        if self.settings.oidc_redirect_url:
            return self.settings.oidc_redirect_url
        return _origin(scope) + root_of(scope) + "/auth/callback"

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        await drain(receive)
        try:
            meta = await self.metadata()
        except (httpx.HTTPError, ValueError) as exc:
            _log.warning("OpenID discovery failed: %s", exc)
            await _text(send, 502, "the OpenID provider cannot be reached; try again later")
            return
        state, nonce, verifier = (secrets.token_urlsafe(24) for _ in range(3))
        verifier += secrets.token_urlsafe(24)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.oidc_client_id,
                "redirect_uri": self._redirect_uri(scope),
                "scope": self.settings.oidc_scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        flow = self.signer.sign(
            {"s": state, "n": nonce, "v": verifier, "exp": int(self.clock()) + _FLOW_SECONDS}
        )
        await _redirect(
            scope,
            send,
            f"{meta['authorization_endpoint']}?{query}",
            [_set_cookie(scope, FLOW_COOKIE, flow, "/auth/", _FLOW_SECONDS)],
        )

    async def _callback(self, scope: Scope, receive: Receive, send: Send) -> None:
        await drain(receive)
        params = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        flow = self.signer.unsign(_cookie(scope, FLOW_COOKIE) or "", self.clock())
        state = params.get("state", [""])[0]
        code = params.get("code", [""])[0]
        if params.get("error"):
            await self._failed(send, "the provider refused the sign-in: " + params["error"][0][:80])
            return
        if flow is None or not state or not hmac.compare_digest(state, str(flow["s"])) or not code:
            await self._failed(send, "this sign-in link is stale or not yours: sign in again")
            return
        try:
            meta = await self.metadata()
            data = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self._redirect_uri(scope),
                "code_verifier": str(flow["v"]),
                "client_id": self.settings.oidc_client_id,
            }
            secret = self.settings.oidc_client_secret
            async with await self._client() as client:
                if secret:
                    basic = (self.settings.oidc_client_id, secret)
                    r = await client.post(meta["token_endpoint"], data=data, auth=basic)
                else:
                    r = await client.post(meta["token_endpoint"], data=data)
            if r.status_code != 200:
                raise ValueError(f"the token endpoint answered HTTP {r.status_code}")
            claims = await self.verify(str(r.json()["id_token"]), nonce=str(flow["n"]))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            _log.warning("OpenID sign-in failed: %s", exc)
            await self._failed(send, "the sign-in could not be completed; try again")
            return
        who = self.identity_of(claims)
        cookie = self.signer.sign(
            {"n": who.name, "g": sorted(who.groups), "exp": int(claims["exp"])}
        )
        max_age = max(1, int(claims["exp"] - self.clock()))
        if self.audit is not None:
            self.audit.write("sign_in", who)
        if self.metrics is not None:
            self.metrics.sign_ins.labels("oidc", "ok").inc()
        await _redirect(
            scope,
            send,
            "/",
            [
                _set_cookie(scope, AUTH_COOKIE, cookie, "/", max_age),
                _set_cookie(scope, FLOW_COOKIE, "", "/auth/", 0),
            ],
        )

    async def _failed(self, send: Send, message: str) -> None:
        if self.metrics is not None:
            self.metrics.sign_ins.labels("oidc", "failed").inc()
        await _text(send, 401, message + "\n")

    async def _logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        await drain(receive)
        who = await self.identify(scope)
        if isinstance(who, Identity) and self.audit is not None:
            self.audit.write("sign_out", who)
        target = "/"
        try:
            end = (await self.metadata()).get("end_session_endpoint")
        except (httpx.HTTPError, ValueError):
            end = None
        if isinstance(end, str) and end:
            target = (
                end
                + "?"
                + urllib.parse.urlencode(
                    {
                        "client_id": self.settings.oidc_client_id,
                        "post_logout_redirect_uri": _origin(scope) + root_of(scope) + "/",
                    }
                )
            )
        await _redirect(scope, send, target, [_set_cookie(scope, AUTH_COOKIE, "", "/", 0)])


def authenticator_for(
    settings: AuthSettings,
    *,
    clock: Callable[[], float] = time.time,
    audit: AuditLog | None = None,
    metrics: Metrics | None = None,
) -> Authenticator:
    """The authenticator of the configured mode."""
    if settings.mode == "token":
        return TokenAuth(
            settings.token, clock=clock, cookie_secret=settings.cookie_secret, audit=audit
        )
    if settings.mode == "proxy":
        return ProxyAuth(settings.header, settings.groups_header, settings.trusted_proxies)
    if settings.mode == "oidc":
        return OIDCAuth(settings, clock=clock, audit=audit, metrics=metrics)
    return NoAuth()


_PUBLIC = ("/healthz", "/readyz", "/metrics", "/auth/")


class AuthGate:
    """Makes the request's identity current, or refuses a request that needs one."""

    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator,
        protected: tuple[str, ...],
        *,
        audit: AuditLog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.protected = protected
        self.audit = audit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or isinstance(self.auth, NoAuth):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(_PUBLIC):
            await self.app(scope, receive, send)
            return
        who = await self.auth.identify(scope)
        needed = path.startswith(self.protected)
        if isinstance(who, str):
            if not needed:
                # OpenID: the page sends people to their provider. Token: the page asks
                # for the token itself (and keeps it in the tab's session storage).
                if self.auth.mode == "oidc" and path in ("/", "/index.html"):
                    await _redirect(scope, send, "/auth/login", [])
                    return
                await self.app(scope, receive, send)  # the page and its assets
                return
            if self.metrics is not None:
                self.metrics.refused_by("unauthenticated")
            if self.audit is not None:
                self.audit.write("refused", ANONYMOUS, what=f"request {path[:120]}", reason=who)
            # the page reads the mode to ask for the token, or to offer a sign-in link
            mode = [(AUTH_MODE_HEADER, self.auth.mode.encode())]
            await refuse(scope, receive, send, Code.UNAUTHENTICATED, who, extra_headers=mode)
            return
        token = use_identity(who)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_identity(token)


# -- helpers ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _bearer(scope: Scope) -> str:
    raw = header(scope, b"authorization")
    if not raw:
        return ""
    scheme, _, value = raw.decode("latin-1").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", ()):
        if bytes(key).lower() != b"cookie":
            continue
        for part in bytes(value).decode("latin-1").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
    return None


def _origin(scope: Scope) -> str:
    host = (header(scope, b"host") or b"localhost").decode("latin-1")
    proto = (header(scope, b"x-forwarded-proto") or b"").decode("latin-1").strip().lower()
    scheme = proto if proto in ("http", "https") else scope.get("scheme", "http")
    return f"{scheme}://{host}"


def _set_cookie(
    scope: Scope, name: str, value: str, path: str, max_age: int
) -> tuple[bytes, bytes]:
    secure = "; Secure" if _origin(scope).startswith("https://") else ""
    path = root_of(scope) + path  # the cookie is sent to this catalog's paths only
    return (
        b"set-cookie",
        f"{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}".encode(),
    )


async def _redirect(
    scope: Scope, send: Send, location: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """302 to `location`; a path (not a URL) is under the root the client reached."""
    if location.startswith("/"):
        location = root_of(scope) + location
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [
                (b"location", location.encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _text(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})
