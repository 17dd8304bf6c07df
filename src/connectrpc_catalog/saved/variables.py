"""`{{name}}` variables: an environment resolved for a run, and substitution.

Substitution is one pass over the text: a value is inserted as it is and never
searched for variables again, so values cannot loop or grow by recursion. The text,
the number of substitutions and the result's size are bounded before and during the
work; an unknown name is an error that names it (and the field), never a silent blank.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..gen.catalog.v1 import collections_pb as pb
from ..problems import Code, RequestError

__all__ = ["MAX_RESULT", "MAX_SUBSTITUTIONS", "Resolved", "UnknownVariable", "substitute"]

MAX_SUBSTITUTIONS = 1000
"""The most `{{name}}` one field may hold."""
MAX_RESULT = 4 << 20
"""The most characters one field may hold once its variables are in."""

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]{0,63})\s*\}\}")


class UnknownVariable(RequestError):
    """A `{{name}}` that the environment does not define."""

    code = Code.FAILED_PRECONDITION


class VariableLimit(RequestError):
    """A field with too many variables or too large once they are in."""

    code = Code.RESOURCE_EXHAUSTED


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """An environment ready for a run: clear values (secrets opened), its auth helper
    and client TLS material. Never leaves the server."""

    name: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    secret_values: frozenset[str] = frozenset()
    """The values of secret variables (to keep them out of results)."""
    auth: pb.AuthHelper = field(default_factory=pb.AuthHelper)
    tls: pb.EnvironmentTls = field(default_factory=pb.EnvironmentTls)


def substitute(text: str, variables: Mapping[str, str], where: str) -> str:
    """`text` with each `{{name}}` replaced by its value (one pass, bounded)."""
    if "{{" not in text:
        return text
    parts: list[str] = []
    size = 0
    last = 0
    for count, match in enumerate(_VAR.finditer(text), 1):
        if count > MAX_SUBSTITUTIONS:
            raise VariableLimit(
                f"{where} holds more than {MAX_SUBSTITUTIONS} variables", field=where
            )
        name = match.group(1)
        value = variables.get(name)
        if value is None:
            raise UnknownVariable(
                f"{where} uses {{{{{name}}}}}, which the environment does not define",
                field=where,
            )
        piece = text[last : match.start()]
        size += len(piece) + len(value)
        if size > MAX_RESULT:
            raise VariableLimit(
                f"{where} would hold more than {MAX_RESULT} characters with its variables in",
                field=where,
            )
        parts += (piece, value)
        last = match.end()
    parts.append(text[last:])
    return "".join(parts)
