"""The audit log: one JSON object per line, to a file or stdout.

Each line says who (the identity's name and how it signed in), when (UTC, ISO 8601),
which session (its first 8 characters only) and what: a source loaded (its kind, the
path or reference with any URL credentials removed, the result), a call (target,
method, kind, transport, status code, duration), a refusal (what and why), a sign-in
or a sign-out. Never payloads, metadata values, tokens or whole session ids.
"""

from __future__ import annotations

import datetime
import json
import sys
import threading
from typing import IO, Any

from .identity import Identity

__all__ = ["AuditLog"]


class AuditLog:
    """Writes audit lines to `path` (appending; "-" for stdout); also an `Observer`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._out: IO[str] = (
            sys.stdout if path == "-" else open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        )

    def write(self, event: str, who: Identity, session: str = "", **fields: Any) -> None:
        """One line: {"ts", "event", "who", "via", "session", …fields}."""
        line = {
            "ts": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "event": event,
            "who": who.name,
            "via": who.via,
            **({"session": session} if session else {}),
            **fields,
        }
        text = json.dumps(line, separators=(",", ":"), ensure_ascii=False, default=str)
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def reopen(self) -> None:
        """Open the file anew (after logrotate moved it; SIGHUP does this)."""
        if self._out is sys.stdout:
            return
        with self._lock:
            self._out.close()
            self._out = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def close(self) -> None:
        """Close the file (not stdout)."""
        if self._out is not sys.stdout:
            self._out.close()

    # Observer

    def loaded(
        self, *, who: Identity, session: str, kind: str, source: str, result: str, seconds: float
    ) -> None:
        """A LoadProtos."""
        self.write(
            "load",
            who,
            session,
            source_kind=kind,
            source=source,
            result=result,
            ms=round(seconds * 1000, 1),
        )

    def called(
        self,
        *,
        who: Identity,
        session: str,
        target: str,
        method: str,
        kind: str,
        transport: str,
        code: str,
        seconds: float,
    ) -> None:
        """An upstream call."""
        self.write(
            "call",
            who,
            session,
            target=target,
            method=method,
            kind=kind,
            transport=transport,
            code=code,
            ms=round(seconds * 1000, 1),
        )

    def refused(self, *, who: Identity, session: str, what: str, reason: str) -> None:
        """A refusal by the policy or a limit."""
        self.write("refused", who, session, what=what, reason=reason)
