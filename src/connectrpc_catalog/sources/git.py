"""Git repositories: `host/owner/repo[//sub/dir][@ref]` or a clone URL, loaded like a folder.

The ref is resolved to a commit with `git ls-remote` first; repository URL + commit (+ sub
folder) then keys both the checkout on disk and the loaded schema, so the same source
loaded again costs one `ls-remote` (none for a full commit id) and no fetch or compile.
A checkout is a shallow fetch of exactly that ref (`git init` + `git fetch --depth 1` +
`checkout`) into a scratch folder, renamed into place when complete; its `.git` folder
is removed afterwards. Git never prompts (GIT_TERMINAL_PROMPT=0, ssh in batch mode),
every command has a timeout, and a checkout growing past `Limits.max_checkout_bytes`
is stopped.

Checked-out files lose their executable bits, and a checkout that fails is removed (so
are the scratch folders of a catalog that died mid-checkout, once it is gone).

Errors: a missing repository, ref or sub folder is a failed load (`success=false`); an
unreachable host is UNAVAILABLE (a retry may work); git not installed is
FAILED_PRECONDITION; a checkout past the size cap is RESOURCE_EXHAUSTED. Messages name
the source as given, with any credentials in it replaced by `***`, and never the
catalog's own folders.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shlex
import shutil
import stat
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ..descriptors import Schema
from .core import (
    Context,
    Given,
    LimitError,
    Limits,
    LoadError,
    SetupError,
    SourceError,
    UnreachableError,
    given_text,
    redact,
)
from .files import load_path
from .run import ToolResult, remove_stale_dirs, run_tool

__all__ = ["GitRepos", "RepoSpec", "load", "load_repo", "parse_repo_spec", "remote"]

_FIELD = "protoRepo"
"""The request field this source comes in."""

_SCHEMES = ("https://", "http://", "file://", "ssh://")
_SCP = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!/)")  # git@host:owner/repo
_SHORT = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?(?:/[A-Za-z0-9_.~-]+){2,}$")
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./+-]*$")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}$")
_SCRATCH_PREFIX = ".tmp-"
_UNREACHABLE = (
    "could not resolve host",
    "failed to connect",
    "couldn't connect to server",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "network is unreachable",
    "no route to host",
    "could not resolve hostname",
    "temporary failure in name resolution",
)
_NOT_FOUND = (
    "does not appear to be a git repository",
    "repository not found",
    "not found",
    "could not read username",
    "terminal prompts disabled",
    "authentication failed",
    "permission denied",
    "no such file or directory",
)
_MAX_LS_REMOTE = 32 * 1024 * 1024
_MAX_ERROR_LINES = 8
USAGE = (
    "use host/owner/repo (e.g. github.com/acme/weather) with an optional //sub/dir and "
    "@ref, or a clone URL (https://, http://, file://, ssh:// or git@host:owner/repo)"
)


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """A parsed `proto_repo`: where to clone from, which ref, which sub folder."""

    text: str
    """The source as the user gave it (used in messages)."""
    url: str
    subdir: str = ""
    ref: str = ""
    mirrored: bool = field(default=False, compare=False)
    """A short name cloned from the operator's Git base URL (`--git-base-url`), not from
    the host the name starts with."""

    @property
    def shown(self) -> str:
        """The source as given, without any credentials in it (used in messages)."""
        return redact(self.text)

    @property
    def shown_url(self) -> str:
        """The clone URL without any credentials in it."""
        return redact(self.url)


def parse_repo_spec(text: str, *, base_url: str = "https://") -> RepoSpec:
    """Parse `host/owner/repo[//sub/dir][@ref]` or `URL[//sub/dir][@ref]`.

    A short form is cloned from `base_url + host/owner/repo.git`; `base_url` defaults to
    `https://` and may be any supported URL prefix (a mirror, `file:///srv/git`).
    """
    value = text.strip()
    if not value:
        raise SourceError("protoRepo is empty", field=_FIELD)
    shown = redact(value)
    if any(ch.isspace() for ch in value) or value.startswith("-"):
        raise SourceError(f"protoRepo {shown!r} is not valid: {USAGE}", field=_FIELD)
    lower = value.lower()
    if lower.startswith(_SCHEMES):
        start = value.index("://") + 3
        if not lower.startswith("file://"):
            slash = value.find("/", start)
            start = slash if slash >= 0 else len(value)
        short = False
    elif (scp := _SCP.match(value)) is not None:
        start, short = scp.end(), False
    elif "://" in value:
        scheme = value.split("://", 1)[0]
        raise SourceError(
            f"protoRepo {shown!r}: scheme {redact(scheme)}:// is not supported; {USAGE}",
            field=_FIELD,
        )
    else:
        start, short = 0, True
    head, rest = value[:start], value[start:]
    ref = ""
    at = rest.rfind("@")
    if at >= 0:
        rest, ref = rest[:at], rest[at + 1 :]
    subdir = ""
    if "//" in ref:  # repo@ref//sub/dir
        ref, subdir = ref.split("//", 1)
    cut = rest.find("//", 1)
    if cut >= 0:
        rest, subdir = rest[:cut], rest[cut + 2 :]
    subdir = _clean_subdir(shown, subdir)
    if ref and (not _REF.match(ref) or ".." in ref or ref.endswith((".", "/", ".lock"))):
        raise SourceError(
            f"protoRepo {shown!r}: {ref!r} is not a valid branch, tag or commit", field=_FIELD
        )
    repo = rest.rstrip("/")
    if short:
        if not _SHORT.match(repo) or any(p in (".", "..") for p in repo.split("/")):
            raise SourceError(f"protoRepo {shown!r} is not a repository: {USAGE}", field=_FIELD)
        base = base_url or "https://"
        if not base.lower().startswith(_SCHEMES):
            raise SetupError(
                f"the catalog's Git base URL {redact(base)!r} must start with https://, "
                "http://, "
                "file:// or ssh://",
            )
        url = base + ("" if base.endswith("/") else "/") + repo
        if not url.endswith(".git"):
            url += ".git"
    else:
        url = head + repo
        if not repo.strip("/"):
            raise SourceError(f"protoRepo {shown!r} names no repository: {USAGE}", field=_FIELD)
    mirrored = short and base_url not in ("", "https://")
    return RepoSpec(text=value, url=url, subdir=subdir, ref=ref, mirrored=mirrored)


def remote(spec: RepoSpec) -> tuple[str, int] | None:
    """The host and port a clone URL connects to (None for file://), which the access
    policy checks."""
    url = spec.url
    lower = url.lower()
    if lower.startswith("file://"):
        return None
    if (scp := _SCP.match(url)) is not None:  # git@host:owner/repo
        return scp.group(0).rstrip(":").rpartition("@")[2], 22
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80, "ssh": 22}.get(parts.scheme.lower(), 443)
    return parts.hostname or "", port or default


def _pins(spec: RepoSpec, dial: str | None) -> tuple[list[str], dict[str, str]]:
    """git options and environment that make git connect to `dial` (the address the
    access policy checked) for the spec's host instead of resolving the name again, and
    follow no redirect to another host."""
    where = remote(spec) if dial else None
    if where is None or dial is None:
        return [], {}
    host, port = where
    if spec.url.lower().startswith(("https://", "http://")):
        address = f"[{dial}]" if ":" in dial else dial
        return [
            "-c", f"http.curloptResolve={host}:{port}:{address}",
            "-c", "http.followRedirects=false",
        ], {}
    ssh = os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    pin = f"-o HostName={shlex.quote(dial)} -o HostKeyAlias={shlex.quote(host)}"
    return [], {"GIT_SSH_COMMAND": f"{ssh} {pin}"}  # run by a shell: quoted


def _clean_subdir(shown: str, subdir: str) -> str:
    if not subdir:
        return ""
    path = PurePosixPath(subdir.strip("/"))
    if ".." in path.parts or path.is_absolute():
        raise SourceError(
            f"protoRepo {shown!r}: the sub folder must stay inside the repository (no '..')",
            field=_FIELD,
        )
    text = path.as_posix()
    return "" if text == "." else text


@dataclass(frozen=True, slots=True)
class Resolved:
    """A ref resolved by `ls-remote`: the commit and the ref name to fetch it by."""

    commit: str
    fetch: str


@dataclass(frozen=True, slots=True)
class GitRepos:
    """Resolves refs and keeps shallow checkouts on disk, keyed by repository + commit.

    Checkouts go below `work_dir()/git`; each `git ls-remote` and each fetch counts in
    `runs` as "git ls-remote" and "git fetch".
    """

    work_dir: Callable[[], Path]
    limits: Limits
    runs: Counter[str]
    max_checkouts: int = 32
    dial: str | None = None
    """The address the access policy checked for the repository's host: git connects to
    it (curl's resolve list, ssh's HostName) instead of resolving the name again."""

    async def resolve(self, spec: RepoSpec) -> Resolved:
        """The commit `spec.ref` (default branch if empty) points at, via `git ls-remote`."""
        ref = spec.ref
        if _FULL_SHA.match(ref):
            return Resolved(ref, ref)
        patterns = [ref] if ref else ["HEAD"]
        refs = await self._ls_remote(spec, patterns)
        if not ref:
            commit = refs.get("HEAD")
            if commit is None:
                for name in ("refs/heads/main", "refs/heads/master"):
                    if name in refs:
                        return Resolved(refs[name], name)
                raise LoadError(
                    f"{spec.shown}: the repository has no default branch (is it empty?); "
                    "add @branch or @tag"
                )
            return Resolved(commit, "HEAD")
        for name in (
            f"refs/tags/{ref}",
            f"refs/heads/{ref}",
            ref if ref.startswith("refs/") else "",
        ):
            if not name:
                continue
            peeled = refs.get(name + "^{}")
            if peeled is not None:
                return Resolved(peeled, name)
            if name in refs:
                return Resolved(refs[name], name)
        if _SHORT_SHA.match(ref):
            every = await self._ls_remote(spec, [])
            hits = {sha for name, sha in every.items() if sha.startswith(ref)}
            if len(hits) == 1:
                return Resolved(hits.pop(), "")
            raise LoadError(
                f"{spec.shown}: no branch or tag named {ref!r}, and no branch or tag head starts "
                "with that commit id; give the full 40-character commit id"
            )
        raise LoadError(f"{spec.shown}: no branch or tag named {ref!r} in {spec.shown_url}")

    async def _ls_remote(self, spec: RepoSpec, patterns: list[str]) -> dict[str, str]:
        try:
            result = await self._git(
                ["ls-remote", "--", spec.url, *patterns], spec=spec, max_stdout=_MAX_LS_REMOTE
            )
        except TimeoutError:
            raise UnreachableError(
                f"{spec.shown}: {spec.shown_url} did not answer within "
                f"{self.limits.git_timeout:.0f} s",
            ) from None
        finally:
            self.runs["git ls-remote"] += 1
        if result.returncode != 0:
            raise _failure(spec, "reading the refs of", result)
        refs: dict[str, str] = {}
        for line in result.stdout.decode(errors="replace").splitlines():
            sha, _, name = line.partition("\t")
            if _FULL_SHA.match(sha) and name:
                refs[name] = sha
        return refs

    async def checkout(self, spec: RepoSpec, resolved: Resolved) -> Path:
        """A folder holding the repository's files at `resolved.commit` (cached on disk).

        The files lose their executable bits before the folder is put in place; a failed
        checkout leaves nothing behind.
        """
        root = await asyncio.to_thread(self.work_dir) / "git"
        repo_key = hashlib.sha256(spec.url.encode()).hexdigest()[:16]
        dest = root / f"{repo_key}-{resolved.commit}"
        if await asyncio.to_thread(_touch_dir, dest):
            return dest
        scratch = await asyncio.to_thread(_new_scratch, root)
        try:
            async with asyncio.timeout(self.limits.git_timeout):
                await self._fetch(spec, resolved, scratch)
            await asyncio.to_thread(shutil.rmtree, scratch / ".git")
            await asyncio.to_thread(_drop_exec_bits, scratch)
            await asyncio.to_thread(_install, scratch, dest)
        except TimeoutError:
            raise LoadError(
                f"{spec.shown}: fetching {spec.ref or 'the default branch'} took longer than "
                f"{self.limits.git_timeout:.0f} s and was stopped"
            ) from None
        finally:
            # shielded: a cancelled load still removes its scratch folder
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, scratch, True))
        await asyncio.to_thread(_evict, root, self.max_checkouts)
        return dest

    async def _fetch(self, spec: RepoSpec, resolved: Resolved, scratch: Path) -> None:
        cap = self.limits.max_checkout_bytes

        async def check() -> None:
            size = await asyncio.to_thread(_tree_size, scratch)
            if size > cap:
                raise LimitError(
                    f"{spec.shown}: the checkout grew past {cap // (1024 * 1024)} MB and was "
                    "stopped; point at a smaller repository or sub folder",
                )

        git_dir = str(scratch)
        init = await self._git(["init", "-q", git_dir])
        if init.returncode != 0:
            raise _failure(spec, "preparing a checkout of", init, scratch)
        self.runs["git fetch"] += 1
        what = resolved.fetch or resolved.commit
        fetched = await self._git(
            ["-C", git_dir, "fetch", "-q", "--depth", "1", "--no-tags", "--", spec.url, what],
            spec=spec,
            check=check,
        )
        if fetched.returncode != 0:
            if "not our ref" in fetched.stderr or "couldn't find remote ref" in fetched.stderr:
                raise LoadError(f"{spec.shown}: commit {what} was not found in {spec.shown_url}")
            raise _failure(spec, "fetching", fetched, scratch)
        checkout = await self._git(
            [
                "-C",
                git_dir,
                "-c",
                "core.symlinks=false",
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "-q",
                "--detach",
                "FETCH_HEAD",
            ],
            check=check,
        )
        if checkout.returncode != 0:
            raise _failure(spec, "checking out", checkout, scratch)
        await check()

    async def _git(
        self,
        args: list[str],
        *,
        spec: RepoSpec | None = None,
        max_stdout: int = 1 << 20,
        check: Callable[[], Awaitable[None]] | None = None,
    ) -> ToolResult:
        options, env = _pins(spec, self.dial) if spec is not None else ([], {})
        try:
            return await run_tool(
                ["git", *options, *args],
                timeout_seconds=self.limits.git_timeout,
                env={**_git_env(), **env},
                max_stdout=max_stdout,
                check=check,
            )
        except TimeoutError:
            raise
        except OSError:  # git could not be started (TimeoutError, an OSError too, is above)
            raise SetupError(
                "loading Git repositories needs git, which is not installed on the catalog "
                "server (e.g. `apt-get install git`)",
            ) from None


async def load(ctx: Context, given: Given) -> Schema:
    """The `protoRepo` source: `host/owner/repo[//sub/dir][@ref]` or a clone URL."""
    return await load_repo(ctx, given_text(given, _FIELD), dial=given.dial)


async def load_repo(ctx: Context, text: str, *, dial: str | None = None) -> Schema:
    """Resolve the ref, reuse or fetch the checkout, and load it as a folder; `dial` is
    the address to connect to (the access policy's checked one)."""
    spec = parse_repo_spec(text, base_url=ctx.git_base_url)
    repos = GitRepos(ctx.work_dir, ctx.limits, ctx.runs, dial=dial)
    resolved = await repos.resolve(spec)

    async def build() -> Schema:
        root = await repos.checkout(spec, resolved)
        target = root / spec.subdir if spec.subdir else root
        if not await asyncio.to_thread(_inside, root, target):
            at = spec.ref or "the default branch"
            raise LoadError(
                f"{spec.shown}: the repository has no folder or file {spec.subdir!r} at {at} "
                f"(commit {resolved.commit[:12]})"
            )
        # imports are looked for inside the checkout only, never in the cache around it
        inside = Given(value=str(target), read_roots=(str(root),))
        return await load_path(ctx, str(target), label=spec.shown, given=inside)

    return await ctx.memo.get(f"git:{spec.url}\0{resolved.commit}\0{spec.subdir}", build)


def _failure(
    spec: RepoSpec, doing: str, result: ToolResult, scratch: Path | None = None
) -> Exception:
    text = result.stderr
    if scratch is not None:  # git names its work tree in some messages: not for users
        text = text.replace(str(scratch), "<checkout>").replace(str(scratch.parent), "<cache>")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = "; ".join(lines[-_MAX_ERROR_LINES:]) or f"git exited with code {result.returncode}"
    detail = redact(detail)
    lower = detail.lower()
    if any(m in lower for m in _UNREACHABLE):
        return UnreachableError(f"{spec.shown}: {spec.shown_url} could not be reached: {detail}")
    if any(m in lower for m in _NOT_FOUND):
        return LoadError(
            f"{spec.shown}: repository {spec.shown_url} was not found, or it is private and the "
            f"catalog has no credentials for it ({detail})"
        )
    return LoadError(f"{spec.shown}: {doing} {spec.shown_url} failed: {detail}")


def _git_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GCM_INTERACTIVE="never",
        GIT_LFS_SKIP_SMUDGE="1",
        LC_ALL="C",
        LANGUAGE="C",
    )
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def _touch_dir(path: Path) -> bool:
    """Whether a finished checkout exists; marks it as recently used."""
    if not path.is_dir():
        return False
    os.utime(path)
    return True


def _new_scratch(root: Path) -> Path:
    """A new, empty scratch folder under `root`, named after this process.

    Scratch folders left by a catalog that died mid-checkout are removed first.
    """
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_dirs(root, _SCRATCH_PREFIX)
    scratch = root / f"{_SCRATCH_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
    scratch.mkdir()
    return scratch


def _drop_exec_bits(root: Path) -> None:
    """Clear the executable bits of every file below `root` (folders keep theirs)."""
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
                if stat.S_ISREG(mode) and mode & 0o111:
                    os.chmod(path, stat.S_IMODE(mode) & ~0o111)
            except OSError:
                continue


def _install(scratch: Path, dest: Path) -> None:
    """Move a finished checkout into place; a concurrent identical checkout may win."""
    try:
        scratch.rename(dest)
    except OSError:
        if not dest.is_dir():
            raise


def _evict(root: Path, keep: int) -> None:
    """Remove the least recently used checkouts beyond `keep`."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir()]
    if len(entries) <= keep:
        return
    entries.sort(key=lambda p: p.stat().st_mtime)
    for old in entries[: len(entries) - keep]:
        shutil.rmtree(old, ignore_errors=True)


def _tree_size(root: Path) -> int:
    total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _inside(root: Path, target: Path) -> bool:
    """Whether `target` exists and, symlinks resolved, stays inside `root`."""
    if not target.exists():
        return False
    try:
        target.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
