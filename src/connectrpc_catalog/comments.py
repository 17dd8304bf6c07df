"""Index Protobuf source comments by fully qualified element name.

``protoc --include_source_info`` records comments in ``SourceCodeInfo`` keyed by a
*path* of field numbers and indices into ``descriptor.proto``. This module maps those
paths back to names such as ``pkg.Service.Method`` or ``pkg.Enum.VALUE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.protobuf import descriptor_pb2

__all__ = ["index_comments", "normalize_comment"]

# Field numbers from google/protobuf/descriptor.proto.
_FILE_MESSAGE = 4
_FILE_ENUM = 5
_FILE_SERVICE = 6
_FILE_EXTENSION = 7
_MSG_FIELD = 2
_MSG_NESTED = 3
_MSG_ENUM = 4
_MSG_EXTENSION = 6
_MSG_ONEOF = 8
_ENUM_VALUE = 2
_SERVICE_METHOD = 2

_Path = tuple[int, ...]


def normalize_comment(text: str) -> str:
    """Tidy raw comment text: drop one leading space per line and surrounding blank lines.

    Blank lines between paragraphs are kept so that a UI can render paragraphs.
    """
    lines = [line[1:] if line.startswith(" ") else line for line in text.splitlines()]
    lines = [line.rstrip() for line in lines]
    start = 0
    end = len(lines)
    while start < end and not lines[start]:
        start += 1
    while end > start and not lines[end - 1]:
        end -= 1
    return "\n".join(lines[start:end])


def _location_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[_Path, str]:
    """Map each commented path of ``file`` to its normalised leading (else trailing) comment."""
    out: dict[_Path, str] = {}
    for loc in file.source_code_info.location:
        text = normalize_comment(loc.leading_comments) if loc.leading_comments else ""
        if not text and loc.trailing_comments:
            text = normalize_comment(loc.trailing_comments)
        if text:
            out.setdefault(tuple(loc.path), text)
    return out


def _qualify(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


class _Indexer:
    """Walks one file's descriptors, looking each element's path up in the comment map."""

    def __init__(self, by_path: dict[_Path, str], out: dict[str, str]) -> None:
        self._by_path = by_path
        self._out = out

    def _put(self, path: _Path, name: str) -> None:
        text = self._by_path.get(path)
        if text is not None:
            self._out[name] = text

    def enums(
        self, enums: Sequence[descriptor_pb2.EnumDescriptorProto], scope: str, base: _Path
    ) -> None:
        for i, enum in enumerate(enums):
            path = (*base, i)
            name = _qualify(scope, enum.name)
            self._put(path, name)
            for j, value in enumerate(enum.value):
                self._put((*path, _ENUM_VALUE, j), f"{name}.{value.name}")

    def fields(
        self, fields: Sequence[descriptor_pb2.FieldDescriptorProto], scope: str, base: _Path
    ) -> None:
        for i, field in enumerate(fields):
            self._put((*base, i), _qualify(scope, field.name))

    def messages(
        self, messages: Sequence[descriptor_pb2.DescriptorProto], scope: str, base: _Path
    ) -> None:
        for i, msg in enumerate(messages):
            path = (*base, i)
            name = _qualify(scope, msg.name)
            self._put(path, name)
            self.fields(msg.field, name, (*path, _MSG_FIELD))
            self.fields(msg.extension, name, (*path, _MSG_EXTENSION))
            for j, oneof in enumerate(msg.oneof_decl):
                self._put((*path, _MSG_ONEOF, j), f"{name}.{oneof.name}")
            self.enums(msg.enum_type, name, (*path, _MSG_ENUM))
            self.messages(msg.nested_type, name, (*path, _MSG_NESTED))

    def services(
        self, services: Sequence[descriptor_pb2.ServiceDescriptorProto], scope: str
    ) -> None:
        for i, svc in enumerate(services):
            path = (_FILE_SERVICE, i)
            name = _qualify(scope, svc.name)
            self._put(path, name)
            for j, method in enumerate(svc.method):
                self._put((*path, _SERVICE_METHOD, j), f"{name}.{method.name}")


def index_comments(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, str]:
    """Map fully qualified names (no leading dot) to their source comments.

    Covers services, methods, messages (including nested), fields, oneofs, enums,
    enum values (keyed under the enum, e.g. ``pkg.Color.RED``) and extensions (keyed
    under their declaring scope). The leading comment wins; the trailing comment is
    used when there is none. Detached comments are ignored. Files compiled without
    source info simply contribute nothing.
    """
    out: dict[str, str] = {}
    for file in files:
        by_path = _location_comments(file)
        if not by_path:
            continue
        pkg = file.package
        indexer = _Indexer(by_path, out)
        indexer.messages(file.message_type, pkg, (_FILE_MESSAGE,))
        indexer.enums(file.enum_type, pkg, (_FILE_ENUM,))
        indexer.services(file.service, pkg)
        indexer.fields(file.extension, pkg, (_FILE_EXTENSION,))
    return out
