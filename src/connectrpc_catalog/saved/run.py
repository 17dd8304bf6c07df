"""Running saved requests: variables in, auth headers added, the call made through
`invocation.invoke_stream` (the same code as InvokeStream), assertions checked.

The server runs them in the caller's session (its schemas, its invoker and so the
access policy); the `run` command in a registry and invoker of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..gen.catalog.v1 import catalog_pb
from ..gen.catalog.v1 import collections_pb as pb
from ..invocation import CallLimits, MethodRegistry, invoke_stream
from ..problems import Code, RequestError
from ..transports import Invoker
from .assertions import Outcome, check_all
from .authhelpers import TargetCheck, TokenCache, auth_headers
from .secrets import MASK
from .variables import MAX_RESULT, Resolved, VariableLimit, substitute

__all__ = ["Runner", "summary"]

MAX_CALL_TEXT = 4 * MAX_RESULT
"""The most characters a call's fields may hold together once their variables are in
(each field is bounded by MAX_RESULT; a request has up to 1,000 messages)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Runner:
    """Where saved requests run: a registry (schemas), an invoker, limits and tokens."""

    registry: MethodRegistry
    invoker: Invoker
    limits: CallLimits
    tokens: TokenCache
    check_target: TargetCheck | None = None
    max_run_seconds: float = 300.0
    """The whole run's deadline (`--max-run-seconds`): the request in progress then is
    stopped and it and the rest are reported as not run (deadline_exceeded)."""

    async def run_all(
        self, requests: Sequence[pb.SavedRequest], env: Resolved
    ) -> pb.RunRequestsResponse:
        """Run `requests` one after the other, in order, within `max_run_seconds`."""
        results: list[pb.RunResult] = []
        try:
            async with asyncio.timeout(self.max_run_seconds):
                for req in requests:
                    results.append(await self.run(req, env))
        except TimeoutError:
            results.extend(_not_run(req, self.max_run_seconds) for req in requests[len(results) :])
        passed = sum(1 for r in results if r.passed)
        return pb.RunRequestsResponse(results=results, passed=passed, failed=len(results) - passed)

    async def run(self, req: pb.SavedRequest, env: Resolved) -> pb.RunResult:
        """Run one saved request; what goes wrong is in the result, not raised."""
        secrets = set(env.secret_values)
        try:
            call = await self._call(req, env, secrets)
            result = await self._invoke(req, call)
        except RequestError as exc:
            return pb.RunResult(request_id=req.id, name=req.name, error=_mask(exc.message, secrets))
        return _masked(result, secrets)

    async def _call(
        self, req: pb.SavedRequest, env: Resolved, secrets: set[str]
    ) -> catalog_pb.InvokeStreamRequest:
        values = env.variables
        total = 0

        def sub(text: str, where: str) -> str:
            nonlocal total
            out = substitute(text, values, where)
            total += len(out)
            if total > MAX_CALL_TEXT:
                raise VariableLimit(
                    f"the request would hold more than {MAX_CALL_TEXT} characters with its "
                    f"variables in (at {where})",
                    field=where,
                )
            return out

        metadata = {key: sub(value, f"metadata {key!r}") for key, value in req.metadata.items()}
        added = await auth_headers(env.auth, self.tokens, self.check_target)
        for key, value in added.items():
            metadata.setdefault(key, value)  # a header the request names itself wins
            secrets.add(value.partition(" ")[2] or value)
        tls = req.tls or pb.TlsChoice()
        return catalog_pb.InvokeStreamRequest(
            service=req.service,
            method=req.method,
            endpoint=sub(req.endpoint, "endpoint"),
            transport=req.transport,
            metadata=metadata,
            request_messages_json=[
                sub(m, f"requestMessagesJson[{i}]")
                for i, m in enumerate(req.request_messages_json)
            ],
            use_tls=tls.use_tls,
            server_name=sub(tls.server_name, "tls.serverName"),
            insecure_skip_verify=tls.insecure_skip_verify,
            ca_cert_pem=tls.ca_cert_pem or env.tls.ca_cert_pem,
            client_cert_pem=env.tls.client_cert_pem,
            client_key_pem=env.tls.client_key_pem,
            timeout_seconds=req.timeout_seconds,
            connect_codec=req.connect_codec,
        )

    async def _invoke(
        self, req: pb.SavedRequest, call: catalog_pb.InvokeStreamRequest
    ) -> pb.RunResult:
        await self.registry.current()
        method = self.registry.find_method(call.service, call.method)
        result = pb.RunResult(request_id=req.id, name=req.name)
        started = time.perf_counter()
        events = invoke_stream(self.registry, self.invoker, call, self.limits)
        try:
            async for event in events:
                kind = event.event
                if kind is None:
                    continue
                if kind.field == "headers":
                    result.response_headers = list(kind.value.headers)
                elif kind.field == "message":
                    result.response_messages_json.append(kind.value.json)
                elif kind.field == "status":
                    status = kind.value
                    result.status_code = status.status_code
                    result.status_name = status.status_name
                    result.status_message = status.status_message or status.error
                    result.response_trailers = list(status.trailers)
                    result.duration_ms = status.duration_ms
        finally:
            await events.aclose()
        if not result.duration_ms:
            result.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        outcome = Outcome(
            status_code=result.status_code,
            messages=result.response_messages_json,
            headers=result.response_headers,
            trailers=result.response_trailers,
            duration_ms=result.duration_ms,
            streaming=method.server_streaming,
        )
        result.assertions = await check_all(req.assertions, outcome)
        expects_status = any(a.kind == "status" for a in req.assertions)
        result.passed = all(a.passed for a in result.assertions) and (
            expects_status or result.status_code == Code.OK
        )
        return result


def _not_run(req: pb.SavedRequest, seconds: float) -> pb.RunResult:
    return pb.RunResult(
        request_id=req.id,
        name=req.name,
        status_code=Code.DEADLINE_EXCEEDED,
        status_name="deadline_exceeded",
        error=f"not run: the run took longer than --max-run-seconds ({seconds:g}s)",
    )


def _mask(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


def _masked(result: pb.RunResult, secrets: set[str]) -> pb.RunResult:
    """The result with any secret value the upstream echoed replaced by the mask."""
    if not secrets:
        return result
    result.response_messages_json = [_mask(m, secrets) for m in result.response_messages_json]
    for header in (*result.response_headers, *result.response_trailers):
        header.value = _mask(header.value, secrets)
    result.status_message = _mask(result.status_message, secrets)
    for a in result.assertions:
        a.actual = _mask(a.actual, secrets)
    return result


def summary(response: pb.RunRequestsResponse) -> str:
    """A run's results as lines for a terminal."""
    lines = []
    for r in response.results:
        mark = "PASS" if r.passed else "FAIL"
        status = r.status_name or (f"code {r.status_code}" if not r.error else "not run")
        lines.append(f"{mark} {r.name} ({status}, {r.duration_ms:.1f} ms)")
        if r.error:
            lines.append(f"     error: {r.error}")
        for a in r.assertions:
            if not a.passed:
                check = a.assertion or pb.Assertion()
                what = f"{check.kind} {check.path} {check.op} {check.value}".replace("  ", " ")
                lines.append(f"     assertion failed: {what.strip()} (actual: {a.actual})")
    lines.append(f"{response.passed} passed, {response.failed} failed")
    return "\n".join(lines)
