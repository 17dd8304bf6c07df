"""Every shell example of README.md runs as pasted, in a fresh clone, under bash.

Each ```sh block is one test, run by `bash -euo pipefail` in a temporary clone of the
repository (the working tree as it is, with `.venv` a link to the venv running these
tests), with the servers it needs started here on the ports the README uses:

- the catalog on 8080 (`.venv/bin/connectrpc-catalog --admin-token change-me`, the token
  of the README's ReloadBase example), the example gRPC server on 50051 and the example
  Connect server on 8000 — each only when the block talks to that port and does not
  start the server itself;
- a block that uses a variable, a function or a file that an earlier block defines (the
  `load()` helper, `SID`, `api.binpb`) runs after those blocks, in the same shell; when
  one of those started an example server in the background, the test waits for its port
  before going on, as a reader would;
- a block that starts the catalog in the foreground runs in the background until the
  catalog answers, and is checked through the catalog's API;
- the README's first two commands (install + run the server, install + run the tests) are
  checked by cheaper equivalents with the existing venv: the server command starts and
  serves the UI; the test command collects the suite (it is not run from inside itself);
- a block whose first line is `# needs network` (the BSR, GitHub, example hosts) is only
  syntax-checked, then skipped with that reason; one that calls `buf` or loads a
  `bufModule` is skipped when the Buf CLI is not installed;
- a block (or one it depends on) that uses a local service the test cannot start — Redis
  or PostgreSQL, seen by its URL (`redis://127.0.0.1:6379/0`, `postgresql://…@localhost`)
  or its client (`redis-cli`, `psql`) — is skipped, naming the service and its address,
  when nothing listens there (`LOCAL_SERVICES`).

A block passes when it exits 0, prints no Connect error or failed call (unless its
expected output shows one), and its output holds the key parts of the expected output
shown in its comments (`# {"success":true,...}`, `# HTTP/1.1 200`, `# x-session-id: …`):
every `"key": value` there, values cut at `…`/`...`, timings (`…Ms`) ignored.
Background processes are killed with their process group after every block.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

CATALOG_PORT = 8080
GRPC_PORT = 50051
CONNECT_PORT = 8000
NETWORK_MARK = "# needs network"
BLOCK_TIMEOUT = 90.0
START_TIMEOUT = 40.0
MARKER = "@@readme-block {}@@"

# The servers this test runs itself, by port: what the README calls them and how.
SERVICES: dict[int, tuple[str, list[str]]] = {
    CATALOG_PORT: (
        "the catalog",
        [".venv/bin/connectrpc-catalog", "--admin-token", "change-me"],
    ),
    GRPC_PORT: (
        "the example gRPC server",
        [".venv/bin/python", "examples/server.py", "--port", str(GRPC_PORT)],
    ),
    CONNECT_PORT: (
        "the example Connect server",
        [".venv/bin/python", "examples/connect_server.py", "--port", str(CONNECT_PORT)],
    ),
}
# Services a block may use that this test does not start: what marks a block as using
# one (in its code), the port it listens on at 127.0.0.1, and its name in a skip reason.
LOCAL_SERVICES: list[tuple[re.Pattern[str], int, str]] = [
    (
        re.compile(
            r"\brediss?://(?:[^@/\s]*@)?(?:127\.0\.0\.1|localhost)(?::(\d+))?|\bredis-cli\b"
        ),
        6379,
        "Redis",
    ),
    (
        re.compile(
            r"\bpostgres(?:ql)?://(?:[^@/\s]*@)?(?:127\.0\.0\.1|localhost)(?::(\d+))?|\bpsql\b"
        ),
        5432,
        "PostgreSQL",
    ),
]
EXAMPLE_DEFAULT_PORTS = {"server.py": GRPC_PORT, "connect_server.py": CONNECT_PORT}
ENV_NAMES = {"PWD", "HOME", "PATH", "USER", "TMPDIR", "OLDPWD"}


# --- the README's blocks -------------------------------------------------------------


@dataclass
class Block:
    index: int
    line: int  # 1-based line of the opening fence
    heading: str
    text: str
    defines: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    background_ports: set[int] = field(default_factory=set)

    @property
    def code(self) -> str:
        """The block without its comment lines."""
        return "\n".join(
            line for line in self.text.splitlines() if not line.lstrip().startswith("#")
        )

    @property
    def network(self) -> bool:
        return self.text.lstrip().startswith(NETWORK_MARK)

    @property
    def foreground_catalog(self) -> bool:
        """The block runs the catalog itself and keeps it in the foreground."""
        for line in self.code.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command.startswith(".venv/bin/connectrpc-catalog") and not command.endswith("&"):
                return True
        return False

    @property
    def needs_buf(self) -> bool:
        return bool(re.search(r"(^|[|;&(]\s*)buf\s", self.code, re.M)) or (
            '"bufModule"' in self.code
        )

    @property
    def local_services(self) -> list[tuple[int, str]]:
        """The ports and names of the `LOCAL_SERVICES` the block uses."""
        return sorted(
            {
                (int(m.group(1) or port), name)
                for mark, port, name in LOCAL_SERVICES
                for m in mark.finditer(self.code)
            }
        )

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")[:40]
        return f"L{self.line}-{slug}"


def parse_readme(text: str) -> list[Block]:
    blocks: list[Block] = []
    heading = "top"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        if line.startswith("```"):
            info = line[3:].strip()
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if info == "sh":
                block = Block(len(blocks), i + 1, heading, "\n".join(lines[i + 1 : end]))
                _analyse(block)
                blocks.append(block)
            i = end + 1
            continue
        i += 1
    return blocks


def _analyse(block: Block) -> None:
    code = block.code
    block.defines = set(re.findall(r"^\s*([A-Za-z_]\w*)=", code, re.M))
    block.defines |= set(re.findall(r"\bfor\s+([A-Za-z_]\w*)\s+in\b", code))  # loop variables
    block.functions = set(re.findall(r"^\s*([A-Za-z_]\w*)\(\)\s*\{", code, re.M))
    block.writes = {
        m.group(2)
        for m in re.finditer(r"(--descriptor_set_out=|\s-o\s+|>\s*)([\w./-]+\.\w+)", code)
    }
    for line in code.splitlines():
        m = re.search(r"examples/(\w+\.py)\b(.*?)&\s*(#.*)?$", line)
        if m:
            port = re.search(r"--port\s+(\d+)", m.group(2))
            block.background_ports.add(
                int(port.group(1)) if port else EXAMPLE_DEFAULT_PORTS[m.group(1)]
            )


def _variables(block: Block) -> set[str]:
    """The variables the block uses and does not set itself."""
    return set(re.findall(r"\$\{?([A-Za-z_]\w*)", block.code)) - ENV_NAMES - block.defines


def dependencies(blocks: list[Block], target: Block) -> list[Block]:
    """The earlier blocks `target` needs (transitively), in README order."""
    needed: dict[int, Block] = {}
    todo = [target]
    while todo:
        block = todo.pop()
        earlier = [b for b in blocks[: block.index] if not b.network]
        for name in sorted(_variables(block)):
            source = next((b for b in reversed(earlier) if name in b.defines), None)
            if source is None:
                pytest.fail(f"README line {block.line}: ${name} is set by no earlier example")
            needed.setdefault(source.index, source)
            todo.append(source)
        for b in reversed(earlier):
            hit = any(
                re.search(rf"(^|[\s|;&(]){re.escape(f)}(\s|$)", block.code, re.M)
                for f in b.functions - block.functions
            ) or any(name in block.code for name in b.writes - block.writes)
            if hit and b.index not in needed:
                needed[b.index] = b
                todo.append(b)
    needed.pop(target.index, None)
    return [needed[i] for i in sorted(needed)]


# --- expected output -----------------------------------------------------------------

_ELLIPSIS = re.compile(r"\.\.\.|…")
_STRING = r'"(?:[^"\\]|\\.)*"'
_SCALAR = rf"{_STRING}|true|false|null|-?\d+(?:\.\d+)?"
_PLAIN_PAIR = re.compile(  # "key": scalar, a list of scalars, or the opening of a container
    rf'(?<!\\)"([\w@.-]+)"\s*:\s*({_SCALAR}|\[\s*(?:(?:{_SCALAR}|\.\.\.|…)\s*,?\s*)*\]|\{{|\[)'
)
_ESCAPED_PAIR = re.compile(r'\\"([\w@.-]+)\\"\s*:\s*(\\"[^"\\]*\\"|true|false|-?\d+(?:\.\d+)?)')


def expected_lines(block: Block) -> list[str]:
    """Comment lines after a command that show output (JSON, a status line, a header)."""
    out: list[str] = []
    seen_command = False
    for line in block.text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            seen_command = seen_command or bool(stripped)
            continue
        body = stripped[1:].strip()
        if seen_command and (
            body.startswith(("{", '"', "\\", "HTTP/", "end:"))
            or re.match(r"[A-Za-z][\w]*-[\w-]*:\s", body)
        ):
            out.append(body)
    return out


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def expected_fragments(block: Block) -> list[tuple[str, bool]]:
    """What the output must contain (whitespace removed; True: in any case)."""
    lines = expected_lines(block)
    fragments: list[tuple[str, bool]] = []
    json_text = []
    for body in lines:
        if body.startswith(("HTTP/", "end:")):
            fragments.append((_squash(_ELLIPSIS.split(body)[0]), False))
        elif re.match(r"[A-Za-z][\w]*-[\w-]*:\s", body):  # a header: its name
            fragments.append(("\n" + body.split(":", 1)[0].lower() + ":", True))
        else:
            json_text.append(body)
    text = "\n".join(json_text)
    for m in list(_PLAIN_PAIR.finditer(text)) + list(_ESCAPED_PAIR.finditer(text)):
        if m.group(1).endswith("Ms"):
            continue  # timings differ from run to run
        fragment = _squash(m.group(0))
        cut = _ELLIPSIS.search(fragment)
        fragments.append((fragment[: cut.start()] if cut else fragment, False))
    return fragments


def check_output(block: Block, output: str) -> None:
    squashed = _squash(output)
    expected = "\n".join(expected_lines(block))
    where = f"README line {block.line} ({block.heading})"
    if '"code"' not in expected:
        m = re.search(r'(?<!\\)\{"code":"[a-z_]+"[^\n]*', squashed)
        assert m is None, f"{where}: the catalog answered a Connect error: {m.group(0)[:300]}"
    if '"error"' not in expected:
        m = re.search(r'(?<![\\\w])"error":[^\n]{0,300}', squashed)
        assert m is None, f"{where}: a call failed: {m.group(0)}"
    for fragment, any_case in expected_fragments(block):
        if any_case:
            found = fragment in "\n" + output.lower().replace("\r", "")
        else:
            found = fragment in squashed
        assert found, (
            f"{where}: the output lacks {fragment!r} (from the expected output in the "
            f"README)\n--- output ---\n{output[-3000:]}"
        )


# --- processes -----------------------------------------------------------------------


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_closed(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while port_open(port):
        if time.monotonic() > deadline:
            pytest.fail(f"port {port} is still in use {timeout:.0f} s after its server was stopped")
        time.sleep(0.05)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group the test started, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # background jobs of a block, if still there
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def http_get(url: str, data: bytes | None = None, timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Services:
    """The servers the test starts itself, at most one per README port."""

    def __init__(self, clone: Path, env: dict[str, str], logs: Path) -> None:
        self.clone = clone
        self.env = env
        self.logs = logs
        self.running: dict[int, subprocess.Popen[bytes]] = {}

    def ensure(self, port: int, running: bool) -> None:
        proc = self.running.get(port)
        if proc is not None and proc.poll() is not None:
            self.running.pop(port)
            log = (self.logs / f"service-{port}.log").read_text(errors="replace")
            pytest.fail(f"{SERVICES[port][0]} exited ({proc.returncode}):\n{log[-3000:]}")
        if running and port not in self.running:
            self._start(port)
        elif not running and port in self.running:
            stop_group(self.running.pop(port))
            wait_closed(port)

    def _start(self, port: int) -> None:
        name, cmd = SERVICES[port]
        if port_open(port):
            pytest.fail(f"port {port} is taken by another process; it is needed for {name}")
        log = self.logs / f"service-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=self.clone,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[port] = proc
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.running.pop(port)
                stop_group(proc)
                pytest.fail(f"{name} did not start on port {port}:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop_all(self) -> None:
        for port in list(self.running):
            self.ensure(port, running=False)


# --- fixtures ------------------------------------------------------------------------


def _venv() -> Path:
    if (ROOT / ".venv" / "bin" / "python").exists():
        return ROOT / ".venv"
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    pytest.skip("the README examples use .venv/bin/...: run the tests from a venv")


def _buf() -> str | None:
    return os.environ.get("CONNECTRPC_CATALOG_BUF") or shutil.which("buf")


@dataclass
class Setup:
    clone: Path
    env: dict[str, str]
    blocks: list[Block]
    services: Services
    logs: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout (the examples run in a fresh clone)")
    if shutil.which("curl") is None:
        pytest.skip("the README examples use curl")
    taken = [p for p in (CATALOG_PORT, GRPC_PORT, CONNECT_PORT) if port_open(p)]
    if taken:
        pytest.skip(
            f"port(s) {', '.join(map(str, taken))} in use on 127.0.0.1: the README's "
            "examples need 8080 (catalog), 50051 (gRPC example) and 8000 (Connect example)"
        )
    base = tmp_path_factory.mktemp("readme")
    clone = base / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=60, capture_output=True
    )
    _overlay_working_tree(clone)
    (clone / ".venv").symlink_to(_venv(), target_is_directory=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTRPC_CATALOG_")}
    env.pop("VIRTUAL_ENV", None)
    buf = _buf()
    if buf:
        env["CONNECTRPC_CATALOG_BUF"] = buf
        env["PATH"] = f"{Path(buf).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    logs = base / "logs"
    logs.mkdir()
    services = Services(clone, env, logs)
    try:
        yield Setup(clone, env, parse_readme((clone / "README.md").read_text()), services, logs)
    finally:
        services.stop_all()


def _overlay_working_tree(clone: Path) -> None:
    """Make the clone of HEAD the working tree as it is: changes (staged or not), new files."""

    def git(*args: str) -> list[str]:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], check=True, capture_output=True, timeout=30
        ).stdout.decode()
        return [f for f in out.split("\0") if f]

    changed = git("diff", "-z", "--name-only", "--no-renames", "HEAD")
    for name in changed + git("ls-files", "-z", "-o", "--exclude-standard"):
        src, dst = ROOT / name, clone / name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif not src.exists():
            with contextlib.suppress(FileNotFoundError):
                dst.unlink()


BLOCKS = parse_readme(README.read_text())


def test_the_readme_has_shell_examples() -> None:
    assert len(BLOCKS) >= 10
    assert BLOCKS[0].line < 10 and BLOCKS[1].line < 20, "the README starts with two commands"


def missing_services(chain: list[Block]) -> str:
    """The `LOCAL_SERVICES` the blocks use that nothing listens for ("" when none)."""
    missing = sorted({s for b in chain for s in b.local_services if not port_open(s[0])})
    return ", ".join(f"{name} at 127.0.0.1:{port}" for port, name in missing)


def test_blocks_using_redis_or_postgresql_are_seen() -> None:
    def uses(code: str) -> list[tuple[int, str]]:
        return Block(0, 1, "t", code).local_services

    assert uses("x --session-store redis://127.0.0.1:6379/0 &") == [(6379, "Redis")]
    assert uses("x --database postgresql://me@localhost:5433/db") == [(5433, "PostgreSQL")]
    assert uses("psql -c 'select 1'") == [(5432, "PostgreSQL")]
    assert uses("x --database postgresql://catalog@db.internal/catalog") == []
    assert uses("# redis://127.0.0.1:6379 only in a comment") == []
    replicas = [b for b in BLOCKS if "--session-store redis://" in b.code]
    assert replicas and all(b.local_services == [(6379, "Redis")] for b in replicas)
    with socket.socket() as sock:  # a port nothing listens on: named as missing
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    chain = [Block(0, 1, "t", "echo"), Block(1, 2, "t", f"x redis://127.0.0.1:{closed}/0")]
    assert missing_services(chain) == f"Redis at 127.0.0.1:{closed}"
    assert missing_services(chain[:1]) == ""


# --- the tests -----------------------------------------------------------------------


def _script(chain: list[Block]) -> str:
    parts = [
        "__readme_wait_port() {  # the reader's pause: the server started above answers\n"
        "  for _ in $(seq 1 400); do\n"
        "    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05\n"
        "  done\n"
        '  echo "nothing listens on port $1 after 20 s" >&2; return 1\n'
        "}\n"
    ]
    for i, block in enumerate(chain):
        marker = MARKER.format(block.line)
        parts.append(f"printf '\\n{marker}\\n'; printf '\\n{marker}\\n' >&2\n")
        parts.append(block.text + "\n")
        if i < len(chain) - 1:
            for port in sorted(block.background_ports):
                parts.append(f"__readme_wait_port {port}\n")
    return "".join(parts)


def _prepare_ports(setup: Setup, chain: list[Block]) -> None:
    started = set().union(*(b.background_ports for b in chain))
    if any(b.foreground_catalog for b in chain):
        started.add(CATALOG_PORT)
    text = "\n".join(b.code for b in chain)
    for port in SERVICES:
        needed = re.search(rf":{port}\b", text) is not None
        setup.services.ensure(port, running=needed and port not in started)
    for port in started:
        wait_closed(port)


def _run_chain(setup: Setup, block: Block, chain: list[Block]) -> None:
    script = setup.logs / f"block-{block.line}.sh"
    script.write_text(_script(chain))
    out_path, err_path = script.with_suffix(".out"), script.with_suffix(".err")
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=setup.clone,
            env=setup.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            rc: int | None = proc.wait(BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            stop_group(proc)
    for port in set().union(*(b.background_ports for b in chain)):
        wait_closed(port)  # the example servers the blocks started are gone
    output, errors = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    marker = MARKER.format(block.line)
    last = re.findall(r"@@readme-block (\d+)@@", errors)
    failing = f"README line {last[-1]}" if last else "the script"
    if rc is None:
        pytest.fail(
            f"{failing} did not finish within {BLOCK_TIMEOUT:.0f} s\n"
            f"--- stdout ---\n{output[-3000:]}\n--- stderr ---\n{errors[-3000:]}"
        )
    if rc != 0:
        pytest.fail(
            f"{failing} exited {rc} (bash -euo pipefail)\n"
            f"--- stdout ---\n{output[-3000:]}\n--- stderr ---\n{errors[-3000:]}"
        )
    check_output(block, output.split(marker, 1)[1] if marker in output else output)


def _install_blocks(setup: Setup, block: Block) -> None:
    m = re.fullmatch(
        r"python3 -m venv \.venv && \.venv/bin/pip install (.+?) && (\.venv/bin/\S+)\s*",
        block.text.strip(),
    )
    assert m, (
        f"README line {block.line}: expected `python3 -m venv .venv && "
        ".venv/bin/pip install ... && .venv/bin/...`"
    )
    pyproject = tomllib.loads((setup.clone / "pyproject.toml").read_text())
    if "[dev]" in m.group(1):
        assert "dev" in pyproject["project"]["optional-dependencies"]
    command = m.group(2)
    if command == ".venv/bin/connectrpc-catalog":
        assert "connectrpc-catalog" in pyproject["project"]["scripts"]
        _serve_and_check(setup, block, [command])
    elif command == ".venv/bin/pytest":
        result = subprocess.run(
            [command, "--collect-only", "-q", "-p", "no:cacheprovider"],
            cwd=setup.clone,
            env=setup.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert re.search(r"\d+ tests? collected", result.stdout), result.stdout[-2000:]
    else:
        pytest.fail(f"README line {block.line}: no check for {command}")


def _serve_and_check(setup: Setup, block: Block, argv: list[str]) -> None:
    """Run a block that keeps the catalog in the foreground, until it answers; check it."""
    for port in SERVICES:
        setup.services.ensure(port, running=False)
    log = setup.logs / f"block-{block.line}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=setup.clone,
            env=setup.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        # The line comes when the socket is bound; it accepts a moment later.
        while not (
            "listening on http://127.0.0.1:8080" in log.read_text(errors="replace")
            and port_open(CATALOG_PORT)
        ):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"README line {block.line}: the catalog did not start on 8080:\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.05)
        status, page = http_get(f"http://127.0.0.1:{CATALOG_PORT}/")
        assert status == 200 and "<html" in page.lower(), (status, page[:300])
        if "examples/server.py" in block.text:  # the target's services are the base
            status, body = http_get(
                f"http://127.0.0.1:{CATALOG_PORT}/catalog.v1.CatalogService/ListServices", b"{}"
            )
            assert status == 200, body
            assert '"weather.v1.WeatherService"' in body and '"defaultTarget"' in body, body[:500]
    finally:
        stop_group(proc)
    for port in (CATALOG_PORT, *block.background_ports):
        wait_closed(port)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_example(setup: Setup, block: Block) -> None:
    block = setup.blocks[block.index]  # the clone's copy (the same text)
    chain = [*dependencies(setup.blocks, block), block]
    if block.network:
        script = setup.logs / f"block-{block.line}.sh"
        script.write_text(_script(chain))
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"README line {block.line}: {result.stderr}"
        pytest.skip(f"README line {block.line} needs network (syntax checked only)")
    if block.index < 2:
        _install_blocks(setup, block)
        return
    if any(b.needs_buf for b in chain) and _buf() is None:
        pytest.skip(
            "needs the Buf CLI: `npm install -g @bufbuild/buf`, or set CONNECTRPC_CATALOG_BUF"
        )
    absent = missing_services(chain)
    if absent:
        pytest.skip(f"README line {block.line} needs {absent}, and nothing listens there")
    if block.foreground_catalog:
        script = setup.logs / f"block-{block.line}.sh"
        script.write_text(_script(chain))
        _serve_and_check(setup, block, ["bash", "-euo", "pipefail", str(script)])
        return
    _prepare_ports(setup, chain)
    _run_chain(setup, block, chain)
