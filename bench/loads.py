"""Loads: a cold load of a 500-file schema next to bare protoc, reloads after one file
changed, 200 sessions loading distinct schemas at once, and the compile workers' memory.

Everything is measured against the catalog started by its CLI, in the same run:

- **bare protoc**: `python -m grpc_tools.protoc` (the protoc the catalog runs) on the same
  folder, with the catalog's flags (`--include_imports --include_source_info`); its CPU
  (interpreter start included) is the baseline of the cold load;
- **cold load**: `LoadProtos {protoPath}` of a folder of 500 files / 5,000 messages whose
  content the catalog has never seen (new package names each round); CPU of the catalog's
  process(es) ("main") and of its compile workers, from /proc, before and after;
- **reload after one file changed**: the same folder loaded again (a new session) after
  one file was edited, for three files: the last file (nothing imports it; it imports
  every package), a package's last file (imported by that last file), and the common
  package's last file (every other package imports it: nearly everything recompiles);
  then after a file was added that imports only the common package;
  CPU and wall time, each next to the cold load's;
- **200 concurrent distinct first loads**: 200 sessions, each uploading (`protoFiles`) its
  own 10-file / 100-message schema, all at once: p50/p99 of one load's time, errors;
- **worker RSS**: the compile workers' resident memory after the cold load and after the
  concurrent run (`--compile-worker-max-rss` recycles a worker that grew past it).

    .venv/bin/python bench/loads.py [--quick] [-- CATALOG FLAGS, e.g. --server hypercorn]

For bench/run.py: `scenario(ctx, quick)` returns the rows `load.cold`, `load.reload`,
`load.concurrent_p99` and more (`load.*`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]

from common import Row, free_port, pct, tree, wait_port  # noqa: E402
from schema import PER_PACKAGE, proto_sources  # noqa: E402

API = "/catalog.v1.CatalogService/LoadProtos"
WORKER_MARK = "connectrpc_catalog.sources.compiler"
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Cpu:
    """CPU seconds so far of the catalog's own process(es) and of its compile workers."""

    main: float
    workers: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.main - other.main, self.workers - other.workers)

    @property
    def total(self) -> float:
        return self.main + self.workers


def _stat(pid: int) -> list[int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return [int(f) for f in fields[11:15]]  # utime, stime, cutime, cstime


def _is_worker(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return WORKER_MARK in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    return False


def _on_cpu(pid: int) -> float | None:
    """Seconds `pid` (all its threads) has run, from schedstat (nanoseconds; None where
    the kernel has no schedstat)."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return total / 1e9


def cpu_of(pid: int) -> Cpu:
    """Main and worker CPU of the catalog at `pid` (its processes' own time, in ns where
    the kernel tells, and their children's: workers that have exited count through their
    parent's `cutime`, in clock ticks)."""
    main = workers = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            utime, stime, cutime, cstime = _stat(p)
            own = _on_cpu(p)
            own = (utime + stime) / _TICK if own is None else own
            if _is_worker(p):
                workers += own
            else:
                main += own
                workers += (cutime + cstime) / _TICK  # reaped children: compile workers
    return Cpu(main, workers)


def worker_rss(pid: int) -> list[int]:
    """Resident bytes of each live compile worker under `pid`."""
    out = []
    for p in tree(pid):
        if not _is_worker(p):
            continue
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]) * 1024)
    return sorted(out)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def bare_protoc(root: Path, out: Path) -> float:
    """CPU seconds of `python -m grpc_tools.protoc` on every .proto below `root`."""
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{root}", "--include_imports",
         "--include_source_info", f"--descriptor_set_out={out}", *names],
        check=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


async def load(client: httpx.AsyncClient, body: bytes) -> tuple[float, str]:
    """Seconds of one LoadProtos in a new session; "" or the error."""
    t0 = time.perf_counter()
    try:
        r = await client.post(API, content=body, headers={"content-type": "application/json"})
        answer = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        return time.perf_counter() - t0, type(exc).__name__
    took = time.perf_counter() - t0
    if r.status_code != 200:
        return took, f"{r.status_code} {answer.get('code', '')}: {answer.get('message', '')}"[:200]
    if not answer.get("success"):
        return took, f"success=false: {answer.get('error', '')}"[:200]
    return took, ""


async def measured(client: httpx.AsyncClient, pid: int, body: bytes) -> tuple[Cpu, float]:
    """CPU (main, workers) and wall seconds of one LoadProtos; raises on a failed load."""
    await asyncio.sleep(0.2)  # let the catalog settle (responses of earlier calls)
    before = cpu_of(pid)
    took, error = await load(client, body)
    await asyncio.sleep(0.05)  # the worker's CPU after its reply
    if error:
        raise RuntimeError(f"load failed: {error}")
    return cpu_of(pid) - before, took


def edit(path: Path, n: int) -> None:
    path.write_text(
        path.read_text() + f"\n// edited {n}\nmessage Edited{n} {{ string note = 1; }}\n"
    )


def add_importer(root: Path, tag: str) -> None:
    """A new file that imports the common package's last file (and nothing imports it)."""
    path = root / f"bench/{tag}/extra/v1/extra.proto"
    path.parent.mkdir(parents=True)
    path.write_text(
        f'syntax = "proto3";\npackage bench.{tag}.extra.v1;\n'
        f'import "bench/{tag}/common/v1/f{PER_PACKAGE - 1}.proto";\n'
        f"// Extra is new.\nmessage Extra {{ bench.{tag}.common.v1.F{PER_PACKAGE - 1}M0 m = 1; }}\n"
    )


async def cold_and_reloads(
    client: httpx.AsyncClient, pid: int, tmp: Path, files: int, tag: str
) -> dict[str, Any]:
    root = tmp / tag
    await asyncio.to_thread(write_tree, root, proto_sources(files, tag))
    protoc = await asyncio.to_thread(bare_protoc, root, tmp / f"{tag}.binpb")
    body = json.dumps({"protoPath": str(root)}).encode()
    cold, cold_s = await measured(client, pid, body)
    rss = worker_rss(pid)
    packages = files // PER_PACKAGE
    last = packages - 1
    edits = {
        "leaf": f"bench/{tag}/p{last}/v1/f{PER_PACKAGE - 1}.proto",
        "package": f"bench/{tag}/p{max(1, last // 2)}/v1/f{PER_PACKAGE - 1}.proto",
        "shared": f"bench/{tag}/common/v1/f{PER_PACKAGE - 1}.proto",
    }
    reloads: dict[str, tuple[Cpu, float]] = {}
    for n, (label, name) in enumerate(edits.items()):
        await asyncio.to_thread(edit, root / name, n)
        reloads[label] = await measured(client, pid, body)
    await asyncio.to_thread(add_importer, root, tag)
    reloads["added"] = await measured(client, pid, body)
    return {"protoc": protoc, "cold": cold, "cold_s": cold_s, "reloads": reloads, "rss": rss}


async def concurrent(url: str, pid: int, sessions: int, tag: str) -> dict[str, Any]:
    """`sessions` distinct 10-file uploads at once, each in a new session."""
    bodies = [
        json.dumps({"protoFiles": {"files": proto_sources(PER_PACKAGE * 1, f"{tag}s{i}")}}).encode()
        for i in range(sessions)
    ]
    limits = httpx.Limits(max_connections=sessions, max_keepalive_connections=sessions)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        before = cpu_of(pid)
        t0 = time.perf_counter()
        got = await asyncio.gather(*(load(client, b) for b in bodies))
        wall = time.perf_counter() - t0
        await asyncio.sleep(0.05)
        cpu = cpu_of(pid) - before
    times = [t for t, _ in got]
    errors = [e for _, e in got if e]
    return {
        "p50": statistics.median(times),
        "p99": pct(times, 0.99),
        "max": max(times),
        "wall": wall,
        "cpu": cpu,
        "errors": errors,
    }


async def measure(url: str, pid: int, quick: bool, tmp: Path, tag: str) -> dict[str, Any]:
    files, sessions = (100, 40) if quick else (500, 200)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        result = await cold_and_reloads(client, pid, tmp, files, tag)
    result["files"] = files
    result["sessions"] = sessions
    result["concurrent"] = await concurrent(url, pid, sessions, tag)
    result["rss_after"] = worker_rss(pid)
    with contextlib.suppress(OSError):
        result["loadavg"] = os.getloadavg()[0]
    return result


_EDITS = {
    "leaf": "the last file (imports every package; nothing imports it)",
    "package": "a package's last file (+ its one importer)",
    "shared": "the common package's last file (~all files recompile)",
    "added": "a new file importing the common package (protoc is given its 10 files)",
}


def rows(r: dict[str, Any]) -> list[Row]:
    cold: Cpu = r["cold"]
    protoc = r["protoc"]
    mib = 1 << 20
    size = f"{r['files']} files / {r['files'] * 10:,} messages"
    out = [
        Row("load.cold", cold.total, protoc,
            f"{size}: catalog {cold.total:.3f} s CPU (main {cold.main:.3f} + workers "
            f"{cold.workers:.3f}), {r['cold_s']:.3f} s wall; bare protoc {protoc:.3f} s CPU; "
            f"machine load average {r.get('loadavg', 0):.1f} on {os.cpu_count()} cores"),
        Row("load.cold_main", cold.main, protoc, unit="s",
            label="… the main process's share of the cold load (CPU)",
            note="main process CPU / bare protoc CPU"),
    ]  # fmt: skip
    for label, (cpu, wall) in r["reloads"].items():
        key = "load.reload" if label == "leaf" else f"load.reload_{label}"
        what = _EDITS[label]
        out.append(
            Row(
                key,
                cpu.total,
                cold.total,
                unit="s",
                label=f"reload after one file changed: {what} (CPU)",
                note=f"CPU main {cpu.main:.3f} + workers {cpu.workers:.3f} s; wall {wall:.3f} s "
                f"= {wall / r['cold_s']:.2f}x the cold load's {r['cold_s']:.3f} s",
            )
        )
    c = r["concurrent"]
    n = r["sessions"]
    per = c["cpu"]
    note = (
        f"{n} sessions, 10 files / 100 messages each; p50 {c['p50']:.2f} s, max {c['max']:.2f} s, "
        f"all done in {c['wall']:.2f} s; CPU per load: main {per.main / n * 1000:.1f} ms + "
        f"workers {per.workers / n * 1000:.1f} ms"
    )
    out += [
        Row("load.concurrent_p99", c["p99"], note=f"{note}; {len(c['errors'])} errors"),
        Row("load.concurrent_p50", c["p50"], unit="s", label=f"{n} concurrent first loads, p50"),
        Row("load.concurrent_errors", len(c["errors"]), unit="",
            label=f"{n} concurrent first loads: errors",
            note="; ".join(sorted(set(c["errors"])))[:300]),
        Row("load.worker_rss", sum(r["rss_after"]) / mib, unit="MiB",
            label="compile workers' RSS after the runs (all workers)",
            note=f"after the cold load: {[round(b / mib) for b in r['rss']]} MiB; after the "
            f"concurrent run: {[round(b / mib) for b in r['rss_after']]} MiB"),
    ]  # fmt: skip
    return out


async def scenario(ctx: Any, quick: bool) -> list[Row]:
    """bench/run.py's entry point (measured once, in round 1)."""
    server = await ctx.catalog(name="catalog-loads")
    n = ctx.state.setdefault("loads.round", 0)
    ctx.state["loads.round"] = n + 1
    tmp = ctx.tmp / "loads"
    tmp.mkdir(exist_ok=True)
    got = await measure(server.url, server.proc.pid, quick, tmp, f"l{n}")
    return rows(got)


def main() -> int:
    args = sys.argv[1:]
    quick = "--quick" in args
    extra = args[args.index("--") + 1 :] if "--" in args else []  # catalog flags
    port = free_port()
    cmd = [sys.executable, "-m", "connectrpc_catalog", "--port", str(port),
           "--log-level", "warning", *extra]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-loads-") as tmp:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        try:
            wait_port(port, 60)
            got = asyncio.run(measure(f"http://127.0.0.1:{port}", proc.pid, quick, Path(tmp), "l0"))
        finally:
            proc.terminate()
            proc.wait(15)
    for row in rows(got):
        ratio = f"  ({row.value / row.baseline:.2f}x)" if row.baseline and row.value else ""
        print(f"{row.key:24} {row.value!s:>10.10}{ratio}  {row.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
