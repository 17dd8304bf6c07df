"""A saved request and an environment as plain JSON-shaped dicts: what the database's
`body` columns hold and what export files carry, with every bound checked once here.

A request's messages are JSON text as the person wrote it (they may hold `{{name}}`
that is not yet valid JSON); a file shows a message that parses as a JSON object as
that object, and any other text as a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..gen.catalog.v1 import catalog_pb
from ..gen.catalog.v1 import collections_pb as pb
from ..problems import Code, RequestError
from .assertions import path_problem

__all__ = [
    "ASSERTION_KINDS",
    "ASSERTION_OPS",
    "AUTH_KINDS",
    "AUTH_SECRETS",
    "LIMITS",
    "Invalid",
    "TooMany",
    "check_name",
    "request_body",
    "request_from_file",
    "request_to_file",
    "transport_name",
]


class Invalid(RequestError):
    """A saved request, environment or file that breaks a rule (names the field)."""

    code = Code.INVALID_ARGUMENT


class TooMany(RequestError):
    """More than a collection, request or environment may hold."""

    code = Code.RESOURCE_EXHAUSTED


class _Limits:
    name = 200
    description = 4000
    folder = 500
    endpoint = 2000
    metadata = 64
    header_value = 8192
    messages = 1000
    message_bytes = 1 << 20
    assertions = 64
    assertion_text = 2000
    variables = 200
    variable_name = 64
    variable_value = 64 * 1024
    pem = 64 * 1024
    requests_per_collection = 2000
    environments_per_collection = 50
    collections_per_owner = 500


LIMITS = _Limits()

TRANSPORTS = {
    "grpc": catalog_pb.Transport.GRPC,
    "connect": catalog_pb.Transport.CONNECT,
    "grpc-web": catalog_pb.Transport.GRPC_WEB,
}
_TRANSPORT_NAMES = {v: k for k, v in TRANSPORTS.items()}
ASSERTION_KINDS = ("status", "field", "header", "trailer", "duration")
ASSERTION_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "contains", "exists", "absent")
AUTH_KINDS = ("", "bearer", "basic", "api_key", "oauth2_client_credentials")
AUTH_SECRETS = ("token", "password", "api_key", "client_secret")
"""The AuthHelper fields that are secrets (sealed at rest, masked in answers)."""
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
"""Metadata saved only as {{variables}} (a secret variable or the auth helper holds the
value): a saved request lands in exports and in Git, never with a credential in clear."""
_REFERENCES = re.compile(r"\{\{[^{}]*\}\}")
_SCHEME = re.compile(r"^(?:bearer|basic|token|digest|apikey)(?:\s+|$)", re.IGNORECASE)
"""An auth scheme before the {{variable}} ("Bearer {{token}}")."""


def transport_name(transport: int) -> str:
    """grpc, connect or grpc-web."""
    return _TRANSPORT_NAMES.get(catalog_pb.Transport(transport), "grpc")


def check_name(value: str, field: str, limit: int = LIMITS.name) -> str:
    """A required, bounded, single-line name."""
    text = value.strip()
    if not text:
        raise Invalid(f"{field} is required", field=field)
    _bounded(text, field, limit)
    if any(c in text for c in "\r\n\0"):
        raise Invalid(f"{field} must be one line", field=field)
    return text


def _bounded(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        raise Invalid(f"{field} holds {len(value)} characters; at most {limit}", field=field)
    return value


def _in_clear(value: str) -> bool:
    """Whether a header value holds more than {{variables}} (after an auth scheme)."""
    return bool(_REFERENCES.sub("", _SCHEME.sub("", value.strip(), count=1)).strip())


def _check_request(req: pb.SavedRequest) -> None:
    check_name(req.name, "name")
    _bounded(req.description, "description", LIMITS.description)
    _bounded(req.folder, "folder", LIMITS.folder)
    if (
        any(not part.strip() or part in (".", "..") for part in req.folder.split("/"))
        and req.folder
    ):
        raise Invalid("folder is a path like users/admin (no empty parts, . or ..)", field="folder")
    _bounded(req.endpoint, "endpoint", LIMITS.endpoint)
    _bounded(req.service, "service", LIMITS.folder)
    _bounded(req.method, "method", LIMITS.name)
    if len(req.metadata) > LIMITS.metadata:
        raise TooMany(f"metadata holds {len(req.metadata)} entries; at most {LIMITS.metadata}")
    for key, value in req.metadata.items():
        _bounded(key, "metadata", LIMITS.name)
        _bounded(value, f"metadata {key!r}", LIMITS.header_value)
        if key.strip().lower() in CREDENTIAL_HEADERS and _in_clear(value):
            raise Invalid(
                f"metadata {key[:60]!r} holds a credential: save it as a {{{{variable}}}} "
                "(a secret variable of an environment) or use the environment's auth helper",
                field="metadata",
            )
    if len(req.request_messages_json) > LIMITS.messages:
        raise TooMany(
            f"requestMessagesJson holds {len(req.request_messages_json)} messages; at most "
            f"{LIMITS.messages} are saved"
        )
    size = sum(len(m) for m in req.request_messages_json)
    if size > LIMITS.message_bytes:
        raise TooMany(f"the request messages hold {size} bytes; at most {LIMITS.message_bytes}")
    if len(req.assertions) > LIMITS.assertions:
        raise TooMany(f"assertions holds {len(req.assertions)}; at most {LIMITS.assertions}")
    for i, a in enumerate(req.assertions):
        where = f"assertions[{i}]"
        if a.kind not in ASSERTION_KINDS:
            raise Invalid(f"{where}.kind must be one of {', '.join(ASSERTION_KINDS)}", field=where)
        if a.op not in ASSERTION_OPS:
            raise Invalid(f"{where}.op must be one of {', '.join(ASSERTION_OPS)}", field=where)
        _bounded(a.path, f"{where}.path", LIMITS.assertion_text)
        if a.kind == "field" and path_problem(a.path):
            raise Invalid(f"{where}.path {path_problem(a.path)}", field=where)
        _bounded(a.value, f"{where}.value", LIMITS.assertion_text)
    tls = req.tls or pb.TlsChoice()
    _bounded(tls.ca_cert_pem, "tls.caCertPem", LIMITS.pem)
    _bounded(tls.server_name, "tls.serverName", LIMITS.name)
    if req.connect_codec not in ("", "proto", "json"):
        raise Invalid("connectCodec must be proto or json", field="connectCodec")
    if not 0 <= req.timeout_seconds <= 3600:
        raise Invalid("timeoutSeconds must be between 0 and 3600", field="timeoutSeconds")


def request_body(req: pb.SavedRequest) -> dict[str, Any]:
    """The request's checked body (all but identity, name, place and target)."""
    _check_request(req)
    tls = req.tls or pb.TlsChoice()
    return {
        "metadata": dict(sorted(req.metadata.items())),
        "messages": list(req.request_messages_json),
        "tls": {
            "useTls": tls.use_tls,
            "serverName": tls.server_name,
            "insecureSkipVerify": tls.insecure_skip_verify,
            "caCertPem": tls.ca_cert_pem,
        },
        "assertions": [
            {"kind": a.kind, "path": a.path, "op": a.op, "value": a.value} for a in req.assertions
        ],
        "timeoutSeconds": req.timeout_seconds,
        "connectCodec": req.connect_codec,
    }


def apply_body(req: pb.SavedRequest, body: Mapping[str, Any]) -> pb.SavedRequest:
    """Fill `req` from a stored or imported body (the inverse of `request_body`)."""
    tls = body.get("tls") or {}
    req.metadata = {str(k): str(v) for k, v in (body.get("metadata") or {}).items()}
    req.request_messages_json = [str(m) for m in body.get("messages") or []]
    req.tls = pb.TlsChoice(
        use_tls=bool(tls.get("useTls")),
        server_name=str(tls.get("serverName") or ""),
        insecure_skip_verify=bool(tls.get("insecureSkipVerify")),
        ca_cert_pem=str(tls.get("caCertPem") or ""),
    )
    req.assertions = [
        pb.Assertion(
            kind=str(a.get("kind", "")),
            path=str(a.get("path", "")),
            op=str(a.get("op", "")),
            value=str(a.get("value", "")),
        )
        for a in body.get("assertions") or []
        if isinstance(a, dict)
    ]
    timeout = body.get("timeoutSeconds") or 0
    req.timeout_seconds = timeout if isinstance(timeout, int) else 0
    req.connect_codec = str(body.get("connectCodec") or "")
    return req


def _message_out(text: str) -> Any:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return value if isinstance(value, dict) else text


def _message_in(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, indent=2, ensure_ascii=False)
    if isinstance(value, str):
        return value
    raise Invalid("a request message in a file is a JSON object or a string", field="messages")


def request_to_file(req: pb.SavedRequest) -> dict[str, Any]:
    """What a request's export file holds (no ids, no position: the order is the
    collection file's)."""
    body = request_body(req)
    body["messages"] = [_message_out(m) for m in body["messages"]]
    return {
        "name": req.name,
        "description": req.description,
        "service": req.service,
        "method": req.method,
        "endpoint": req.endpoint,
        "transport": transport_name(req.transport),
        **body,
    }


def request_from_file(data: Any, where: str) -> pb.SavedRequest:
    """A request from its export file's JSON, checked like a saved one."""
    if not isinstance(data, dict):
        raise Invalid(f"{where} must hold a JSON object", field=where)
    transport = data.get("transport", "grpc")
    if transport not in TRANSPORTS:
        raise Invalid(f"{where}: transport must be grpc, connect or grpc-web", field=where)
    messages = data.get("messages") or []
    if not isinstance(messages, list):
        raise Invalid(f"{where}: messages must be a list", field=where)
    body = {**data, "messages": [_message_in(m) for m in messages[: LIMITS.messages + 1]]}
    req = pb.SavedRequest(
        name=str(data.get("name") or ""),
        description=str(data.get("description") or ""),
        service=str(data.get("service") or ""),
        method=str(data.get("method") or ""),
        endpoint=str(data.get("endpoint") or ""),
        transport=TRANSPORTS[transport],
    )
    apply_body(req, body)
    try:
        _check_request(req)
    except RequestError as exc:
        raise Invalid(f"{where}: {exc.message}", field=where) from None
    return req


def check_environment(env: pb.Environment) -> None:
    """The bounds and rules of an environment as sent (secrets may be empty: kept)."""
    check_name(env.name, "name", 100)
    if len(env.variables) > LIMITS.variables:
        raise TooMany(f"variables holds {len(env.variables)}; at most {LIMITS.variables}")
    seen: set[str] = set()
    for v in env.variables:
        if not VARIABLE_NAME.match(v.name):
            raise Invalid(
                f"variable name {v.name[:70]!r} must be letters, digits, _ . - (64 at most, "
                "not starting with a digit)",
                field="variables",
            )
        if v.name in seen:
            raise Invalid(f"variable {v.name!r} is given twice", field="variables")
        seen.add(v.name)
        _bounded(v.value, f"variable {v.name!r}", LIMITS.variable_value)
    auth = env.auth or pb.AuthHelper()
    if auth.kind not in AUTH_KINDS:
        raise Invalid(f"auth.kind must be one of {', '.join(k for k in AUTH_KINDS if k)}")
    for name in (
        "token",
        "username",
        "password",
        "header_name",
        "api_key",
        "token_url",
        "client_id",
        "client_secret",
        "scopes",
        "audience",
    ):
        _bounded(getattr(auth, name), f"auth.{name}", LIMITS.header_value)
    if (
        auth.kind == "api_key"
        and auth.header_name
        and not re.match(r"^[0-9A-Za-z_.-]+$", auth.header_name)
    ):
        raise Invalid("auth.headerName is not a valid header name", field="auth.headerName")
    if (
        auth.kind == "oauth2_client_credentials"
        and auth.token_url
        and not re.match(r"^https?://", auth.token_url, re.IGNORECASE)
    ):
        raise Invalid("auth.tokenUrl must be an http:// or https:// URL", field="auth.tokenUrl")
    tls = env.tls or pb.EnvironmentTls()
    for name in ("client_cert_pem", "client_key_pem", "ca_cert_pem"):
        _bounded(getattr(tls, name), f"tls.{name}", LIMITS.pem)
