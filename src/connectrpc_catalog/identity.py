"""Who a request comes from: the `Identity` the sign-in layer (api/auth.py) found, in a
context variable the core reads (the session bound to it, the policy for its groups, its
limits, the audit log). Imports nothing of the package but `problems`."""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "ANONYMOUS",
    "Identity",
    "current_identity",
    "reset_identity",
    "session_tag",
    "set_session_tag",
    "use_identity",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """A signed-in person (or the one anonymous user of a catalog without sign-in)."""

    name: str
    """Who: an e-mail, a subject, `token` (the shared bearer token) or `anonymous`."""
    groups: frozenset[str] = frozenset()
    """Groups from the OpenID claim or the proxy's groups header (for the policy)."""
    via: str = "none"
    """How it was established: none, token, proxy or oidc."""

    @property
    def key(self) -> str:
        """What sessions and limits are keyed by (the mode and the name)."""
        return f"{self.via}:{self.name}"

    @property
    def tag(self) -> str:
        """A short, stable, non-reversible tag of the identity for logs that must not name
        people (metrics never carry identities at all)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:12]


ANONYMOUS = Identity(name="anonymous")

_current: ContextVar[Identity] = ContextVar("catalog_identity", default=ANONYMOUS)


def current_identity() -> Identity:
    """The identity of the request being handled (ANONYMOUS outside any request)."""
    return _current.get()


def use_identity(identity: Identity) -> object:
    """Make `identity` current for this task; returns the token to reset it with."""
    return _current.set(identity)


def reset_identity(token: object) -> None:
    """Undo `use_identity`."""
    _current.reset(token)  # type: ignore[arg-type]


_session: ContextVar[str] = ContextVar("catalog_session_tag", default="")


def session_tag() -> str:
    """The first 8 characters of the current request's session id (logs never carry
    whole ids), or "" outside a session."""
    return _session.get()


def set_session_tag(session_id: str) -> None:
    """Record the current request's session (its first 8 characters only)."""
    _session.set(session_id[:8])
