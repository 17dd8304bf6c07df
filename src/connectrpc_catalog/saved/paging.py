"""Pages of ListCollections and GetCollection (Google's AIP-158): sizes and tokens.

A page token is where the last page ended (the last item's sort key: its place in the
order and its id), signed with HMAC-SHA256 over the listing it belongs to and the
caller's identity key: a token is accepted only by the same listing (the collections
list, or one collection's requests) for the same caller, and an altered one is refused.
The signing key is derived from --secret-key (so every worker and replica sharing the
key accepts the others' tokens); without a key it is a fixed one, and the signature only
catches a damaged or mixed-up token. Either way a token only says where to continue:
the access rules are applied to every page by the queries themselves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from ..identity import Identity
from ..problems import Code, RequestError

__all__ = ["MAX_PAGE", "MAX_TOKEN", "PAGE", "BadPage", "Tokens", "page_size"]

PAGE = 100
"""The page size when a page token is sent without page_size."""
MAX_PAGE = 1000
"""The largest page: a bigger page_size is taken as this."""
MAX_TOKEN = 1024
"""The longest page token read (the ones given out are far shorter)."""
_VERSION = 1
_MAC = 16


class BadPage(RequestError):
    """A page size or token the server cannot use."""

    code = Code.INVALID_ARGUMENT


def page_size(size: int, token: str) -> int | None:
    """The number of items to answer with; None for everything (no paging asked)."""
    if size < 0:
        raise BadPage(
            f"pageSize is {size}: send 0 (everything, or {PAGE} with a pageToken) or a "
            f"positive number (at most {MAX_PAGE} are answered)",
            field="pageSize",
        )
    if size == 0 and not token:
        return None
    return min(size or PAGE, MAX_PAGE)


class Tokens:
    """Makes and reads page tokens under one key."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"connectrpc-catalog page tokens\0" + key).digest()

    def _mac(self, scope: str, who: Identity, payload: bytes) -> bytes:
        signed = b"\0".join((scope.encode(), who.key.encode(), payload))
        return hmac.new(self._key, signed, hashlib.sha256).digest()[:_MAC]

    def make(self, scope: str, who: Identity, after: list[Any]) -> str:
        """A token for the page after the item whose sort key is `after`."""
        payload = json.dumps([_VERSION, after], separators=(",", ":"), ensure_ascii=False)
        raw = payload.encode()
        return base64.urlsafe_b64encode(self._mac(scope, who, raw) + raw).decode().rstrip("=")

    def read(self, token: str, scope: str, who: Identity) -> list[Any]:
        """The sort key a token of `scope` given to `who` continues after; BadPage for
        any other token."""
        try:
            if len(token) > MAX_TOKEN:
                raise ValueError
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, payload = raw[:_MAC], raw[_MAC:]
            if len(mac) != _MAC or not hmac.compare_digest(mac, self._mac(scope, who, payload)):
                raise ValueError
            version, after = json.loads(payload)
            if version != _VERSION or not isinstance(after, list):
                raise ValueError
            return after
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise BadPage(
                "pageToken is not one this listing gave you (it was changed or cut, is "
                "from another list, collection or person, or the catalog's secret key "
                "changed since): list again from the first page, without pageToken",
                field="pageToken",
            ) from None
