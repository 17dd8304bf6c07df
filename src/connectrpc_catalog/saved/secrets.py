"""Secrets at rest: values sealed with Fernet (AES-128-CBC + HMAC-SHA256, from the
`cryptography` package) under a key from settings (`--secret-key` / `--secret-key-file`).

The key may be a Fernet key (32 url-safe base64 bytes) or any passphrase of at least
16 characters, from which a key is derived (HKDF-SHA256 with a fixed context). Without
a key, storing a secret is refused: a secret is never written in clear.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..problems import Code, RequestError

__all__ = ["MASK", "NoSecretKey", "SealedError", "Sealer", "key_from"]

MASK = "********"
"""What a stored secret shows instead of its value where one must be shown."""

_PREFIX = "fernet:"


class NoSecretKey(RequestError):
    """A secret was sent to a catalog started without a secret key."""

    code = Code.FAILED_PRECONDITION


class SealedError(RequestError):
    """A stored secret does not open with this catalog's key (the key changed)."""

    code = Code.FAILED_PRECONDITION


def key_from(text: str) -> bytes:
    """A Fernet key from settings: the key itself, or derived from a passphrase.

    Raises ValueError (naming no part of the key) when it is too short.
    """
    raw = text.strip()
    try:
        if len(base64.urlsafe_b64decode(raw.encode())) == 32 and len(raw) == 44:
            return raw.encode()
    except (binascii.Error, ValueError):
        pass
    if len(raw) < 16:
        raise ValueError("a secret key must be a Fernet key or a passphrase of 16+ characters")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"connectrpc-catalog saved")
    return base64.urlsafe_b64encode(hkdf.derive(raw.encode()))


class Sealer:
    """Seals and opens secret values (a catalog without a key refuses to seal)."""

    def __init__(self, key: str = "") -> None:
        derived = key_from(key) if key else b""
        self._fernet = Fernet(derived) if key else None
        self.page_key = derived
        """What page tokens are signed under (`paging.Tokens`; empty without a key)."""

    @property
    def enabled(self) -> bool:
        """Whether a key was given."""
        return self._fernet is not None

    def seal(self, value: str, what: str) -> str:
        """`value` encrypted (empty stays empty); NoSecretKey without a key."""
        if not value:
            return ""
        if self._fernet is None:
            raise NoSecretKey(
                f"{what} is a secret and this catalog has no key to store it encrypted: "
                "start it with --secret-key-file FILE (or --secret-key)"
            )
        return _PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, sealed: str, what: str) -> str:
        """The clear value of a sealed one; SealedError when the key does not fit."""
        if not sealed:
            return ""
        if self._fernet is None or not sealed.startswith(_PREFIX):
            raise SealedError(
                f"{what} is stored encrypted and this catalog has no key for it: start it "
                "with the --secret-key-file it was saved with"
            )
        try:
            return self._fernet.decrypt(sealed[len(_PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SealedError(
                f"{what} does not open with this catalog's secret key (was the key changed?)"
            ) from None
