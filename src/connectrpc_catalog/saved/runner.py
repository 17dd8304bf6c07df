"""`connectrpc-catalog run COLLECTION`: run saved requests outside the browser (for CI).

COLLECTION is a folder of exported files (`collection.json` and `requests/`), or the
name or id of a collection in a catalog's database (`--database`, as the operator: every
collection). Requests run in order through the same code as the catalog's own calls
(`run.Runner` → `invocation.invoke_stream`); the schemas come from `--proto`,
`--descriptor-set` or `--reflect`, and by default from server reflection of each
request's endpoint. A summary is printed; `--junit FILE` writes JUnit XML; the exit code
is 0 when every request passed, 1 when one failed, 2 when the run could not start.

Secrets are not in exported files: give them as `--var NAME=VALUE` or in
`CONNECTRPC_CATALOG_VAR_<NAME>` (upper case, `.` and `-` as `_`); an auth helper's
secret is the variable `auth.token`, `auth.password`, `auth.api_key` or
`auth.client_secret`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..base import Base
from ..descriptors import EMPTY, SchemaCache
from ..gen.catalog.v1 import collections_pb as pb
from ..invocation import CallLimits
from ..loading import Loader
from ..problems import RequestError
from ..registry import Registry
from ..sources.compiler import Compiler
from ..sources.core import Context, Given, LoadError
from ..transports import Invoker
from .authhelpers import TokenCache
from .files import Imported, import_files, read_folder
from .run import Runner, summary
from .secrets import Sealer
from .shapes import AUTH_SECRETS
from .store import OPERATOR, Store
from .variables import Resolved, substitute

__all__ = ["main", "run_collection", "write_junit"]

VAR_PREFIX = "CONNECTRPC_CATALOG_VAR_"
_SCHEMA_FLAGS = {
    "proto": "proto_path",
    "descriptor_set": "descriptor_set_path",
    "reflect": "reflection_endpoint",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="connectrpc-catalog run",
        description="Run a collection of saved requests; exit 1 when an assertion fails.",
    )
    p.add_argument(
        "collection",
        metavar="COLLECTION",
        help="a folder of exported files, or a collection's name or id in --database",
    )
    p.add_argument("--env", default="", metavar="NAME", help="the environment to run with")
    p.add_argument("--junit", default="", metavar="FILE", help="write the results as JUnit XML")
    p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable (repeatable; wins over the environment)",
    )
    p.add_argument(
        "--database",
        default=os.environ.get("CONNECTRPC_CATALOG_DATABASE", ""),
        metavar="URL",
        help="the catalog's database, when COLLECTION is not a folder",
    )
    p.add_argument(
        "--secret-key-file",
        default="",
        metavar="FILE",
        help="the catalog's --secret-key-file (to open secrets in --database; or set "
        "CONNECTRPC_CATALOG_SECRET_KEY)",
    )
    p.add_argument(
        "--proto",
        action="append",
        default=[],
        metavar="PATH",
        help=".proto folder or file for the schemas",
    )
    p.add_argument(
        "--descriptor-set",
        action="append",
        default=[],
        metavar="FILE",
        help="a descriptor-set file for the schemas",
    )
    p.add_argument(
        "--reflect",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="read schemas by reflection from ENDPOINT (default: each request's endpoint)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="the longest deadline a request may ask for",
    )
    p.add_argument(
        "--max-run-seconds",
        type=_duration,
        default=300.0,
        metavar="DURATION",
        help="the longest the whole run may take (e.g. 90s, 5m); the requests not run by "
        "then fail as deadline_exceeded",
    )
    return p


def _duration(text: str) -> float:
    from ..config import parse_duration

    return parse_duration(text)


def _overrides(pairs: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Variables by name: CONNECTRPC_CATALOG_VAR_* (names in their variable form, see
    `_env_key`) first, then --var NAME=VALUE."""
    values = {k[len(VAR_PREFIX) :]: v for k, v in environ.items() if k.startswith(VAR_PREFIX)}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise RequestError(f"--var {name[:60]!r}: expected NAME=VALUE")
        values[name.strip()] = value
    return values


def _env_key(name: str) -> str:
    return name.upper().replace(".", "_").replace("-", "_")


def _with_overrides(env: Resolved, overrides: Mapping[str, str]) -> Resolved:
    """The environment with `overrides` on top: an override names a variable exactly or
    in its environment-variable form (`AUTH_TOKEN` for `auth.token`)."""
    by_key = {_env_key(k): v for k, v in overrides.items()}
    variables = {name: by_key.get(_env_key(name), value) for name, value in env.variables.items()}
    variables.update(overrides)  # --var NAME=VALUE may also add a variable
    auth = pb.AuthHelper.from_json(env.auth.to_json())
    secrets = set(env.secret_values)
    for field in AUTH_SECRETS:
        given = by_key.get(_env_key(f"auth.{field}"), "")
        if given:
            setattr(auth, field, given)
            secrets.add(given)
    return Resolved(
        name=env.name, variables=variables, secret_values=frozenset(secrets), auth=auth, tls=env.tls
    )


def _from_files(imported: Imported, env_name: str) -> Resolved:
    if not env_name:
        return Resolved()
    for env in imported.environments:
        if env.name == env_name:
            return Resolved(
                name=env.name,
                variables={v.name: v.value for v in env.variables},
                auth=env.auth or pb.AuthHelper(),
                tls=env.tls or pb.EnvironmentTls(),
            )
    names = ", ".join(e.name for e in imported.environments) or "none"
    raise RequestError(
        f"--env {env_name!r}: the collection has no such environment (it has {names})"
    )


async def _collection(args: argparse.Namespace) -> tuple[str, list[pb.SavedRequest], Resolved]:
    folder = Path(args.collection)
    if await asyncio.to_thread(folder.is_dir):
        imported = import_files(await asyncio.to_thread(read_folder, folder))
        return imported.name or folder.name, imported.requests, _from_files(imported, args.env)
    key = os.environ.get("CONNECTRPC_CATALOG_SECRET_KEY", "")
    if args.secret_key_file:
        key = (
            await asyncio.to_thread(Path(args.secret_key_file).read_text, encoding="utf-8")
        ).strip()
    from .db import default_url

    store = await Store.open(args.database or default_url(), Sealer(key))
    try:
        cid = await store.find_collection(OPERATOR, args.collection)
        info, requests, _ = await store.get_collection(OPERATOR, cid)
        env = await store.resolve_environment(OPERATOR, cid, args.env)
        return info.name, requests, env
    finally:
        await store.close()


async def _registry(
    args: argparse.Namespace, loader: Loader, cache: SchemaCache, endpoints: list[str]
) -> Registry:
    wanted = [
        (kind, value) for flag, kind in _SCHEMA_FLAGS.items() for value in getattr(args, flag)
    ]
    if not wanted:
        wanted = [("reflection_endpoint", e) for e in dict.fromkeys(endpoints) if e]
    parts = []
    for kind, value in wanted:
        try:
            parts.append(
                await loader.load(kind, Given(value=value, use_tls=value.startswith("https://")))
            )
        except (LoadError, RequestError) as exc:
            raise RequestError(f"cannot load the schemas from {value}: {exc}") from None
    schema = await asyncio.to_thread(cache.merge, parts) if parts else EMPTY
    return Registry(Base(schema), cache)


async def run_collection(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[str, pb.RunRequestsResponse]:
    """The collection's name and the results of running it."""
    name, requests, env = await _collection(args)
    env = _with_overrides(env, _overrides(args.var, environ))
    endpoints = []
    for req in requests:
        try:
            endpoints.append(substitute(req.endpoint, env.variables, "endpoint"))
        except RequestError:
            continue  # the run reports it for that request
    cache, compiler = SchemaCache(), Compiler()
    loader = Loader(Context(cache, compiler))
    invoker = Invoker()
    try:
        registry = await _registry(args, loader, cache, endpoints)
        runner = Runner(
            registry=registry,
            invoker=invoker,
            limits=CallLimits(max_timeout=args.timeout),
            tokens=TokenCache(),
            max_run_seconds=args.max_run_seconds,
        )
        return name, await runner.run_all(requests, env)
    finally:
        await invoker.close()
        await loader.close()
        await compiler.close()


def write_junit(path: Path, name: str, response: pb.RunRequestsResponse) -> None:
    """The results as JUnit XML (one testcase per request)."""
    total = sum(r.duration_ms for r in response.results) / 1000
    suites = ET.Element(
        "testsuites", tests=str(len(response.results)), failures=str(response.failed)
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=name,
        tests=str(len(response.results)),
        failures=str(response.failed),
        errors="0",
        time=f"{total:.3f}",
    )
    for r in response.results:
        case = ET.SubElement(
            suite, "testcase", classname=name, name=r.name, time=f"{r.duration_ms / 1000:.3f}"
        )
        if r.passed:
            continue
        lines = [f"error: {r.error}"] if r.error else []
        lines += [
            f"{c.kind} {c.path} {c.op} {c.value}: actual {a.actual}"
            for a in r.assertions
            if not a.passed and (c := a.assertion) is not None
        ]
        if not lines:
            lines = [f"the call ended with {r.status_name or r.status_code}: {r.status_message}"]
        failure = ET.SubElement(case, "failure", message=lines[0][:500])
        failure.text = "\n".join(lines)
    ET.indent(suites)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def main(argv: Sequence[str]) -> int:
    """The `run` subcommand."""
    args = _parser().parse_args(list(argv))
    try:
        name, response = asyncio.run(run_collection(args, os.environ))
    except RequestError as exc:
        print(f"connectrpc-catalog run: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"connectrpc-catalog run: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 2
    print(summary(response), flush=True)
    if args.junit:
        write_junit(Path(args.junit), name, response)
    return 0 if response.failed == 0 else 1
