"""The one place internal failures become Connect errors: logged in full, reported briefly."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from ..problems import RequestError
from .sessions import session_status

__all__ = ["InternalErrors"]

_log = logging.getLogger("connectrpc_catalog.errors")
REQ = TypeVar("REQ")
RES = TypeVar("RES")


def _translate(exc: Exception, ctx: RequestContext[Any, Any]) -> ConnectError:
    """The one map from the core's errors to Connect: a `RequestError` keeps its code and
    message; anything else is an internal error with an incident id."""
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, RequestError):
        return ConnectError(Code(exc.code.connect_name), exc.message)
    return _internal(exc, ctx)


def _internal(exc: Exception, ctx: RequestContext[Any, Any]) -> ConnectError:
    incident = secrets.token_hex(4)
    _log.error("incident %s in %s", incident, ctx.method.name, exc_info=exc)
    return ConnectError(
        Code.INTERNAL,
        f"the catalog failed unexpectedly (incident {incident}); the server log has the details",
    )


_SCHEMA_CODES = frozenset((Code.NOT_FOUND, Code.FAILED_PRECONDITION))
"""Codes of errors that can come from a session having nothing loaded."""


def _with_session_note(exc: ConnectError) -> ConnectError:
    """Say so when the error may come from the caller's session having ended."""
    status = session_status()
    if exc.code not in _SCHEMA_CODES or status not in ("expired", "closed", "unknown"):
        return exc
    why = {"expired": "expired", "closed": "was closed", "unknown": "is not known here"}[status]
    return ConnectError(
        exc.code,
        f"{exc.message} (your session {why}; the new one has nothing loaded: load your "
        "schemas again)",
        details=exc.details,
    )


class InternalErrors:
    """Interceptor: known core errors get their code; unexpected exceptions never reach
    clients as tracebacks or raw text."""

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[Any, Any]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[Any, Any],
        /,
    ) -> RES:
        """Run a unary handler, translating unexpected exceptions."""
        try:
            return await call_next(request, ctx)
        except Exception as exc:
            raise _with_session_note(_translate(exc, ctx)) from None

    async def intercept_server_stream(
        self,
        call_next: Callable[[REQ, RequestContext[Any, Any]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[Any, Any],
        /,
    ) -> AsyncIterator[RES]:
        """Run a server-streaming handler, translating unexpected exceptions."""
        try:
            async for item in call_next(request, ctx):
                yield item
        except Exception as exc:
            raise _with_session_note(_translate(exc, ctx)) from None
