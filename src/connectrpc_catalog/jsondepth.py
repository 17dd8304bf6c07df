"""Bounding the nesting of JSON text before any parser sees it.

JSON parsers recurse once per level: a 30 KB body of 15,000 `[` killed the process
inside the protobuf runtime. `check_depth` measures the nesting with bytes operations
only (C speed, no recursion, no parsing): escapes are dropped, then everything but
quotes and brackets, then the insides of strings; what is left is a bracket shape, and
each pass of removing adjacent `()` pairs lowers its depth by exactly one, and a
running sum measures what a few passes leave. Text nested
deeper than the limit, or whose brackets do not balance, is refused; anything else is
left to the real parser. Pure and I/O-free; callers run it in a thread for big inputs.
"""

from __future__ import annotations

from array import array
from itertools import accumulate

__all__ = ["DEFAULT_MAX_DEPTH", "JSONDepthError", "check_depth"]

DEFAULT_MAX_DEPTH = 100
"""The deepest JSON nesting accepted by default (protobuf's own recursion limit)."""

_KEEP = b'"[]{}'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_SHAPE = bytes.maketrans(b"[{]}", b"(())")
_SIGNS = bytes.maketrans(b"()", b"\x01\xff")
"""+1 per opener and -1 per closer once read as signed chars."""
_PEELS = 8
"""Passes of removing innermost pairs (cheap, enough for usual JSON) before a running sum."""


class JSONDepthError(ValueError):
    """JSON text nested deeper than the limit, or with brackets that do not balance."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"it is nested deeper than {limit} levels, or its brackets do not balance")
        self.limit = limit


def check_depth(text: bytes | str, limit: int = DEFAULT_MAX_DEPTH) -> None:
    """Raise JSONDepthError unless `text` nests at most `limit` arrays/objects deep.

    Brackets inside strings are ignored. Linear in the size of `text`.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if b"\\" in data:
        # Left to right, as a JSON tokenizer reads escapes: `\\` first, then `\"`.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = data.translate(None, _DROP)
    if b'"' in data:
        data = b"".join(data.split(b'"')[::2])  # drop what lies between quote pairs
    shape = data.translate(_SHAPE)
    if b"(" * (limit + 1) in shape:
        raise JSONDepthError(limit)  # the usual attack, found in one scan
    for _ in range(min(limit, _PEELS)):
        if not shape:
            return
        shorter = shape.replace(b"()", b"")
        if len(shorter) == len(shape):
            raise JSONDepthError(limit)  # unbalanced
        shape = shorter
    if shape and _deepest(shape, limit - min(limit, _PEELS)):
        raise JSONDepthError(limit)


def _deepest(shape: bytes, limit: int) -> bool:
    """Whether a bracket shape nests deeper than `limit` or is unbalanced (a running sum)."""
    try:
        # Two bytes per bracket; OverflowError past ±32767 means too deep anyway.
        depths = array("h", accumulate(memoryview(shape.translate(_SIGNS)).cast("b")))
    except OverflowError:
        return True
    return max(depths) > limit or min(depths) < 0 or depths[-1] != 0
