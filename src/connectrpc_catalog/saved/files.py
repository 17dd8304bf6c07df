"""Collections as files for a Git repository, and back.

    collection.json            name, description, the requests' order (their paths)
    requests/[folder/]x.json   one file per request (no ids: they are the database's)
    environments/x.json        variables and auth helper settings, secrets left out

Every file is JSON with sorted keys, two-space indents and a final newline, so the same
collection always gives the same bytes (export → import → export is byte-identical) and
a change shows as a small diff. Reading a folder is bounded in files and bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..gen.catalog.v1 import collections_pb as pb
from .shapes import (
    AUTH_SECRETS,
    Invalid,
    TooMany,
    check_environment,
    request_from_file,
    request_to_file,
)

__all__ = [
    "FORMAT",
    "Imported",
    "dump",
    "export_files",
    "import_files",
    "read_folder",
    "write_folder",
]

FORMAT = "connectrpc-catalog/collection/v1"
MAX_FILES = 2100
MAX_FILE_BYTES = 2 << 20
MAX_TOTAL_BYTES = 16 << 20
_AUTH_PLAIN = ("kind", "username", "header_name", "token_url", "client_id", "scopes", "audience")


def dump(value: Any) -> str:
    """The one way a file is written: sorted keys, two-space indents, a final newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "request"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _environment_file(env: pb.Environment) -> dict[str, Any]:
    auth = env.auth or pb.AuthHelper()
    tls = env.tls or pb.EnvironmentTls()
    return {
        "name": env.name,
        "variables": [
            {"name": v.name, "secret": True} if v.secret else {"name": v.name, "value": v.value}
            for v in env.variables
        ],
        "auth": {k: getattr(auth, k) for k in _AUTH_PLAIN if getattr(auth, k)},
        "tls": {
            k: v
            for k, v in (("clientCertPem", tls.client_cert_pem), ("caCertPem", tls.ca_cert_pem))
            if v
        },
    }


def export_files(
    collection: pb.Collection,
    requests: Sequence[pb.SavedRequest],
    environments: Sequence[pb.Environment],
) -> list[pb.ExportedFile]:
    """The files of a collection (environments as answers show them: secrets masked,
    and left out here altogether)."""
    files: list[pb.ExportedFile] = []
    order: list[str] = []
    taken: dict[str, set[str]] = {}
    for req in requests:
        folder = req.folder.strip("/")
        slug = _slug(req.name, taken.setdefault(folder, set()))
        path = str(
            PurePosixPath("requests", *(folder.split("/") if folder else ()), f"{slug}.json")
        )
        order.append(path)
        files.append(pb.ExportedFile(path=path, content=dump(request_to_file(req))))
    env_names: set[str] = set()
    for env in environments:
        path = f"environments/{_slug(env.name, env_names)}.json"
        files.append(pb.ExportedFile(path=path, content=dump(_environment_file(env))))
    head = {
        "format": FORMAT,
        "name": collection.name,
        "description": collection.description,
        "requests": order,
    }
    files.append(pb.ExportedFile(path="collection.json", content=dump(head)))
    return sorted(files, key=lambda f: f.path)


@dataclass(slots=True)
class Imported:
    """What a set of files holds, checked: ready to save."""

    name: str
    description: str = ""
    requests: list[pb.SavedRequest] = field(default_factory=list)
    environments: list[pb.Environment] = field(default_factory=list)


def _load(file: pb.ExportedFile) -> Any:
    if len(file.content) > MAX_FILE_BYTES:
        raise TooMany(f"{file.path[:200]} holds more than {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(file.content)
    except json.JSONDecodeError as exc:
        raise Invalid(f"{file.path[:200]} is not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise Invalid(f"{file.path[:200]} nests its JSON too deeply") from None


def _environment_from(data: Any, where: str) -> pb.Environment:
    if not isinstance(data, dict):
        raise Invalid(f"{where} must hold a JSON object", field=where)
    auth = data.get("auth") or {}
    tls = data.get("tls") or {}
    env = pb.Environment(
        name=str(data.get("name") or ""),
        variables=[
            pb.Variable(
                name=str(v.get("name", "")),
                value="" if v.get("secret") else str(v.get("value", "")),
                secret=bool(v.get("secret")),
            )
            for v in data.get("variables") or []
            if isinstance(v, dict)
        ],
        auth=pb.AuthHelper(),
        tls=pb.EnvironmentTls(
            client_cert_pem=str(tls.get("clientCertPem", "")),
            ca_cert_pem=str(tls.get("caCertPem", "")),
        ),
    )
    for key in _AUTH_PLAIN:
        setattr(env.auth, key, str(auth.get(key, "")))
    if any(key in auth for key in AUTH_SECRETS):
        raise Invalid(f"{where}: secrets do not belong in files (auth.{AUTH_SECRETS[0]}, …)")
    try:
        check_environment(env)
    except Invalid as exc:
        raise Invalid(f"{where}: {exc.message}", field=where) from None
    return env


def import_files(files: Sequence[pb.ExportedFile]) -> Imported:
    """A collection from its files: requests in collection.json's order (then any
    other request files, by path), environments by path."""
    if len(files) > MAX_FILES:
        raise TooMany(f"{len(files)} files; at most {MAX_FILES} make one collection")
    if sum(len(f.content) for f in files) > MAX_TOTAL_BYTES:
        raise TooMany(f"the files hold more than {MAX_TOTAL_BYTES} bytes")
    by_path = {f.path.strip().removeprefix("./"): f for f in files}
    head_file = by_path.get("collection.json")
    if head_file is None:
        raise Invalid("collection.json is missing: export a collection to see the layout")
    head = _load(head_file)
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise Invalid(f"collection.json is not a collection (its format must be {FORMAT!r})")
    listed = [p for p in head.get("requests") or [] if isinstance(p, str)]
    missing = [p for p in listed if p not in by_path]
    if missing:
        raise Invalid(f"collection.json lists {missing[0][:200]!r}, which is not among the files")
    others = sorted(p for p in by_path if p.startswith("requests/") and p not in listed)
    out = Imported(name=str(head.get("name") or ""), description=str(head.get("description") or ""))
    for path in [*dict.fromkeys(listed), *others]:
        req = request_from_file(_load(by_path[path]), path)
        parts = PurePosixPath(path).parts
        req.folder = "/".join(parts[1:-1])
        out.requests.append(req)
    for path in sorted(p for p in by_path if p.startswith("environments/")):
        out.environments.append(_environment_from(_load(by_path[path]), path))
    return out


def read_folder(folder: Path) -> list[pb.ExportedFile]:
    """The .json files under `folder`, bounded (blocking: call it in a thread)."""
    root = folder.resolve()
    if not (root / "collection.json").is_file():
        raise Invalid(f"{folder} holds no collection.json: is it an exported collection?")
    files: list[pb.ExportedFile] = []
    total = 0
    for path in sorted(root.rglob("*.json")):
        if len(files) >= MAX_FILES:
            raise TooMany(f"{folder} holds more than {MAX_FILES} files")
        if not path.is_file() or path.is_symlink():
            continue
        size = path.stat().st_size
        total += size
        if size > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES:
            raise TooMany(f"{path.relative_to(root)} makes the collection too large")
        text = path.read_text(encoding="utf-8")
        files.append(pb.ExportedFile(path=path.relative_to(root).as_posix(), content=text))
    return files


def write_folder(folder: Path, files: Sequence[pb.ExportedFile]) -> None:
    """Write exported files under `folder` (blocking: call it in a thread)."""
    root = folder.resolve()
    for file in files:
        target = (root / file.path).resolve()
        if root not in target.parents:
            raise Invalid(f"{file.path[:200]!r} is not a path inside the folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.content, encoding="utf-8")
