"""The one benchmark command: every scenario, interleaved in rounds, into one table.

    .venv/bin/python bench/run.py [--quick] [--rounds N] [--out BENCHMARKS-run.md]
                                  [--only MODULE,...] [--json FILE]

Everything runs on 127.0.0.1 free ports: the catalog by its CLI, the upstreams and the
baselines. Round 0 warms every scenario up and is thrown away; rounds 1..N then call each
scenario in turn (round-robin), so machine noise hits every row alike. Each row shows
the median over the rounds and the spread (min-max), its baseline from the same run,
the ratio, the target and whether it was met. A row whose module is missing, failed or
did not return it is shown as "not measured" with the reason. `--quick` (< 2 minutes)
uses small sizes and short runs; it reports and never fails on a time.

The scenario interface is in bench/common.py; the table below lists every row, the
module that measures it and its target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import common  # noqa: E402

sys.modules.setdefault("bench.common", common)  # one Row / Ctx class, however it is imported


@dataclass(frozen=True)
class Spec:
    """One row: what it measures, its unit, its baseline and its target.

    The target is checked on the ratio (value / baseline) or on the value itself:
    `limit` with `higher` saying whether more is better.
    """

    key: str
    label: str
    unit: str
    baseline: str = ""
    target: str = ""
    limit: float | None = None
    on: str = "ratio"  # "ratio" or "value"
    higher: bool = False


@dataclass(frozen=True)
class Scenario:
    module: str
    specs: tuple[Spec, ...]
    once: bool = False  # heavy: measured in round 1 only, no warm-up
    timeout: float = 300  # seconds for one call (quick: a fifth)
    attr: str = "scenario"  # the module's function to call
    full_only: bool = False  # too slow for --quick
    parse: Callable[[str], list[common.Row]] | None = None
    """For a stand-alone script with only `main()`: parses what it prints (run once)."""

    @property
    def name(self) -> str:
        return self.module if self.attr == "scenario" else f"{self.module}.{self.attr}"


MS, RPS, MSG = "ms", "req/s", "msg/s"
QUICK_BUDGET = 100  # seconds: --quick stops starting scenarios past this


def schema_text(out: str) -> list[common.Row]:
    """bench/schema.py's report: per service, first call ms and response MiB."""
    rows = []
    files = re.search(r"schema: (\d+) files", out)
    note = f"{files.group(1)}-file schema" if files else ""
    for label, key in (("one package's service", "schema"), ("AllService", "schema.all")):
        block = out.split(f"GetServiceSchema of {label}", 1)[-1]
        first = re.search(r"first call \(builds\):\s+([\d.]+) ms", block)
        size = re.search(r"response, JSON:\s+([\d.]+) MiB", block)
        if first and size and f"GetServiceSchema of {label}" in out:
            extra = "" if key == "schema" else " (a service reaching every message, info)"
            rows.append(common.Row(f"{key}.time", float(first.group(1)), unit=MS, note=note,
                                   label=f"GetServiceSchema first call{extra}"))  # fmt: skip
            rows.append(common.Row(f"{key}.bytes", float(size.group(1)), unit="MiB",
                                   label=f"GetServiceSchema response size{extra}"))  # fmt: skip
    stall = re.search(r"stall: .*?: ([\d.]+) ms \(idle, same time: ([\d.]+) ms\)", out)
    if stall:
        note = "while a service reaching all 5,000 messages is built"
        rows.append(common.Row("schema.stall", float(stall.group(1)),
                               baseline=float(stall.group(2)), unit=MS, note=note))  # fmt: skip
    return rows


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("latency", (
        Spec("unary.connect_json", "unary InvokeGRPC p50, Connect JSON (HTTP/1.1)", MS,
             "direct grpcio call p50", "≤ 2.5x", 2.5),
        Spec("unary.grpc", "unary InvokeGRPC p50, gRPC (h2c)", MS,
             "direct grpcio call p50", "≤ 2.5x", 2.5),
    )),
    Scenario("throughput", (
        Spec("tput.list_services", "ListServices throughput (Connect JSON)", RPS,
             "hello-world, fastest ASGI server", "≥ 0.5x", 0.5, higher=True),
        Spec("tput.get_session", "GetSession throughput (Connect JSON)", RPS,
             "hello-world, fastest ASGI server", "≥ 0.5x", 0.5, higher=True),
        Spec("tput.invoke", "InvokeGRPC throughput (gRPC h2c)", RPS,
             "direct grpcio throughput", "≥ 0.5x", 0.5, higher=True),
    )),
    Scenario("streams", (
        Spec("stream.relay", "100k server-streamed messages relayed", MSG,
             "direct grpcio stream", "≥ 0.8x", 0.8, higher=True),
        Spec("stream.memory", "catalog memory growth over the 100k stream", "MiB",
             "", "flat (≤ 20 MiB)", 20, on="value"),
        Spec("stream.stall", "… longest GetSession of another client meanwhile", MS,
             "", "≤ 50 ms", 50, on="value"),
    )),
    Scenario("loads", (
        Spec("load.cold", "cold load, 500 files / 5,000 messages (CPU)", "s",
             "bare protoc CPU", "≤ 1.3x", 1.3),
        Spec("load.reload", "reload after one file changed", "s",
             "cold load", "≤ 0.10x", 0.10),
        Spec("load.concurrent_p99", "200 concurrent distinct first loads, p99", "s",
             "", "≤ 5 s", 5, on="value"),
    ), once=True, timeout=600),
    Scenario("schema", (
        Spec("schema.time", "GetServiceSchema, one service of the 500-file schema", MS,
             "", "≤ 100 ms", 100, on="value"),
        Spec("schema.bytes", "… its response size", "MiB", "", "≤ 2 MB", 2e6 / (1 << 20),
             on="value"),
        Spec("schema.stall", "… longest stall of another client meanwhile", MS,
             "", "≤ 50 ms", 50, on="value"),
    ), parse=schema_text),
    Scenario("sessions", (
        Spec("session.mem_1", "memory per session, 1 session on the 500-file schema", "B",
             "", "≤ 20 KB", 20_480, on="value"),
        Spec("session.mem_1k", "memory per session, 1,000 sessions", "B",
             "", "≤ 20 KB", 20_480, on="value"),
        Spec("session.mem_10k", "memory per session, 10,000 sessions", "B",
             "", "≤ 20 KB", 20_480, on="value"),
        Spec("session.sweep_pause", "longest loop pause sweeping 100,000 expired sessions", MS,
             "idle 1 ms ticker", "≤ 20 ms", 20, on="value"),
    ), once=True),
    Scenario("sessions", attr="concurrent", specs=(
        Spec("c200.errors", "200 sessions load+list+invoke at once: errors", "",
             "", "0", 0, on="value"),
        Spec("c200.p99", "… p99 of one session's load+list+invoke", MS,
             "the same clients' requests to a hello-world"),
        Spec("c200.rss", "… catalog RSS after - before", "MiB"),
        Spec("c200.sessions", "… live sessions after - before (closed)", "",
             "", "0", 0, on="value"),
        Spec("c200.fds", "… open fds after - before", "", "", "≤ 10", 10, on="value"),
    ), once=True),
    Scenario("saved", (
        Spec("saved.save.sqlite", "SaveRequest (one transaction), SQLite", MS),
        Spec("saved.concurrent.sqlite", "20 SaveRequests into one collection at once, SQLite",
             MS, "the same 20 one after the other", "≤ 1.5x", 1.5),
        Spec("saved.get.sqlite", "GetCollection of its requests, SQLite", MS),
        Spec("saved.save.postgresql", "SaveRequest (one transaction), PostgreSQL", MS),
        Spec("saved.concurrent.postgresql", "20 SaveRequests into one collection at once, "
             "PostgreSQL", MS, "the same 20 one after the other", "≤ 1.5x", 1.5),
        Spec("saved.get.postgresql", "GetCollection of its requests, PostgreSQL", MS),
        Spec("saved.run", "a saved request's run (2 variables, 2 assertions)", MS,
             "bare invoke_stream of the same unary call", "≤ 1.5x", 1.5),
    )),
    # The cost of the limits per identity (no target: measurements against no limits).
    Scenario("limits", (
        Spec("limits.redis.unary_p50", "limits per identity in Redis: unary InvokeGRPC p50, "
             "the three limits set", MS, "sessions in Redis, no limits", "—"),
        Spec("limits.redis.unary_p99", "… its p99 (Redis)", MS,
             "sessions in Redis, no limits", "—"),
        Spec("limits.redis.stream", "… InvokeStream (5 messages) open-to-close p50, "
             "--streams-per-identity only (the lease)", MS, "sessions in Redis, no limits",
             "—"),
        Spec("limits.redis.stream_all", "… the same stream, the three limits set (lease + "
             "the call counted)", MS, "sessions in Redis, no limits", "—"),
        Spec("limits.redis.session", "… first request of a new session p50, "
             "--sessions-per-identity (Redis)", MS, "sessions in Redis, no limits", "—"),
        Spec("limits.memory.unary_p50", "limits per identity in memory: unary InvokeGRPC p50, "
             "the three limits set", MS, "sessions in memory, no limits", "—"),
        Spec("limits.memory.unary_p99", "… its p99 (memory)", MS,
             "sessions in memory, no limits", "—"),
        Spec("limits.memory.stream", "… InvokeStream (5 messages) open-to-close p50, the "
             "three limits set", MS, "sessions in memory, no limits", "—"),
        Spec("limits.memory.session", "… first request of a new session p50, "
             "--sessions-per-identity (memory)", MS, "sessions in memory, no limits", "—"),
    )),
    # Modules whose rows are their own (shown as they return them); servers: the stack comparison.
    Scenario("servers", (), once=True, full_only=True, timeout=900),
    Scenario("scale", ()),
    Scenario("browser", (
        Spec("ui.burst_task", "UI: longest main-thread task while 10,000 messages stream in",
             MS, "", "≤ 100 ms", 100, on="value"),
        Spec("ui.big_paint", "UI: first paint of a 5 MB response", MS, "", "≤ 1 s", 1000,
             on="value"),
    ), once=True, full_only=True, timeout=900),
)  # fmt: skip


@dataclass
class Result:
    spec: Spec
    rows: list[common.Row] = field(default_factory=list)
    why: str = ""

    def values(self) -> list[float]:
        return [r.value for r in self.rows if r.value is not None]

    def ratios(self) -> list[float]:
        return [r.value / r.baseline for r in self.rows if r.value is not None and r.baseline]

    def median(self) -> float | None:
        v = self.values()
        return statistics.median(v) if v else None

    def spread(self) -> tuple[float, float] | None:
        v = self.values()
        if len(v) > 1:
            return min(v), max(v)
        one = self.rows[0] if self.rows else None
        if one is not None and one.lo is not None and one.hi is not None:
            return one.lo, one.hi
        return None

    def baseline(self) -> float | None:
        b = [r.baseline for r in self.rows if r.baseline is not None]
        return statistics.median(b) if b else None

    def ratio(self) -> float | None:
        r = self.ratios()
        return statistics.median(r) if r else None

    def met(self) -> bool | None:
        s = self.spec
        got = self.ratio() if s.on == "ratio" else self.median()
        if s.limit is None or got is None:
            return None
        return got >= s.limit if s.higher else got <= s.limit

    def reason(self) -> str:
        notes = sorted({r.note for r in self.rows if r.note})
        return " ".join((self.why or "; ".join(notes)).split()).replace("|", "/")


def load(sc: Scenario) -> Callable[[common.Ctx, bool], Awaitable[list[common.Row]]] | str:
    """The module's scenario function (or an adapter of what it has), or why there is none."""
    try:
        mod = importlib.import_module(sc.module)
    except ModuleNotFoundError as exc:
        if exc.name == sc.module:
            return f"module missing: bench/{sc.module}.py"
        return f"bench/{sc.module}.py needs {exc.name}"
    except Exception as exc:  # a broken module must not stop the other rows
        return f"bench/{sc.module}.py does not import: {type(exc).__name__}: {exc}"
    fn = getattr(mod, sc.attr, None)
    if fn is None and sc.parse is not None and hasattr(mod, "main"):
        fn = script(sc.module, sc.parse)
    if fn is None:
        return f"module missing: bench/{sc.module}.py has no {sc.attr}() yet"
    return fn  # type: ignore[no-any-return]


def script(
    module: str, parse: Callable[[str], list[common.Row]]
) -> Callable[[common.Ctx, bool], Awaitable[list[common.Row]]]:
    """A stand-alone bench script (its own servers and rounds), run once; its output parsed."""

    async def scenario(ctx: common.Ctx, quick: bool) -> list[common.Row]:
        args = [sys.executable, str(BENCH / f"{module}.py"), *(["--quick"] * quick)]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
        if proc.returncode not in (0, 1):  # 1: a target missed, the numbers are there
            raise RuntimeError(f"exit {proc.returncode}: {err.decode()[-200:]}")
        return parse(out.decode())

    scenario.once = True  # type: ignore[attr-defined]
    return scenario


class Runner:
    def __init__(self, ctx: common.Ctx, chosen: tuple[Scenario, ...]) -> None:
        self.ctx = ctx
        self.chosen = chosen
        self.deadline = time.monotonic() + (QUICK_BUDGET if ctx.quick else 1e9)
        self.results = {s.key: Result(s) for sc in SCENARIOS for s in sc.specs}
        self.extra: dict[str, Result] = {}
        self.fns: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}
        for sc in SCENARIOS:
            fn = load(sc) if sc in chosen else "not chosen (--only)"
            if sc.full_only and ctx.quick:
                fn = "full mode only"
            if isinstance(fn, str):
                for s in sc.specs:
                    self.results[s.key].why = fn
                if not sc.specs and sc in chosen:
                    ctx.note(f"bench/{sc.module}.py: not measured ({fn})")
            else:
                self.fns[sc.name] = fn

    async def call(self, sc: Scenario) -> None:
        fn = self.fns.get(sc.name)
        if fn is None:
            return
        if time.monotonic() > self.deadline:
            self.fail(sc, f"the quick run's {QUICK_BUDGET} s were used up before it")
            return
        limit = sc.timeout / 5 if self.ctx.quick else sc.timeout
        limit = min(limit, max(5.0, self.deadline - time.monotonic()))
        t0 = time.perf_counter()
        try:
            rows = await asyncio.wait_for(fn(self.ctx, self.ctx.quick), limit)
            if not self.ctx.warmup:
                self.keep(sc, list(rows))
        except TimeoutError:
            self.fail(sc, f"timed out after {limit:.0f} s")
            return
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self.fail(sc, f"error: {type(exc).__name__}: {str(exc)[:200]}")
            return
        finally:
            self.seconds[sc.name] = self.seconds.get(sc.name, 0) + time.perf_counter() - t0

    def fail(self, sc: Scenario, why: str) -> None:
        self.fns.pop(sc.name, None)  # a failed scenario is not retried every round
        if not sc.specs:
            self.ctx.note(f"bench/{sc.module}.py: not measured ({why})")
        for s in sc.specs:
            if not self.results[s.key].rows:
                self.results[s.key].why = why

    def keep(self, sc: Scenario, rows: list[common.Row]) -> None:
        for row in rows:
            if not isinstance(row.value, int | float | None) or not isinstance(
                row.baseline, int | float | None
            ):
                row = common.Row(row.key, None, note=f"bench/{sc.module}.py gave no number")
            res = self.results.get(row.key)
            if res is None:
                label = row.label or row.key
                res = self.extra.setdefault(row.key, Result(Spec(row.key, label, row.unit)))
            res.rows.append(row)
        for s in sc.specs:
            if not self.results[s.key].rows and not self.results[s.key].why:
                self.results[s.key].why = f"bench/{sc.module}.py returned no {s.key!r} row"

    async def run(self) -> None:
        ctx = self.ctx
        for n in range(ctx.rounds + 1):
            ctx.round = n
            print(f"round {ctx.round}/{ctx.rounds}{' (warm-up)' * ctx.warmup}", file=sys.stderr)
            for sc in self.chosen:
                once = sc.once or getattr(self.fns.get(sc.name), "once", False)
                if once and ctx.round != 1:
                    continue
                await self.call(sc)


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "MiB" or abs(v) < 10:
        text = f"{v:.3g}" if abs(v) >= 0.001 or v == 0 else f"{v:.2e}"
    elif abs(v) < 1000:
        text = f"{v:.1f}"
    else:
        text = f"{v:,.0f}"
    return f"{text} {unit}".strip()


def row_line(res: Result) -> str:
    s = res.spec
    median = res.median()
    if median is None:
        return f"| {s.label} | not measured ({res.reason() or 'no value'}) | | | | {s.target} | — |"
    spread = res.spread()
    spread_text = f"{fmt(spread[0])}-{fmt(spread[1])}" if spread and spread[0] != spread[1] else ""
    base = res.baseline()
    base_text = fmt(base, s.unit) if base is not None else ""
    base_text += f" ({s.baseline})" if s.baseline and base is not None else s.baseline
    ratio = res.ratio()
    met = res.met()
    status = {True: "met", False: "**missed**", None: "—"}[met]
    got = ratio if s.on == "ratio" else median
    if met is False and s.limit and got:
        status += f": {got / s.limit:.2f} of the target" if s.higher else ""
        status += "" if s.higher else f": {got / s.limit:.2f}x the limit"
    note = f" ({res.reason()})" if res.reason() else ""
    return (
        f"| {s.label}{note} | {fmt(median, s.unit)} | {spread_text} | {base_text} "
        f"| {fmt(ratio) + 'x' if ratio is not None else ''} | {s.target} | {status} |"
    )


def git_commit() -> str:
    with contextlib.suppress(Exception):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True,
                               text=True, cwd=BENCH).stdout  # fmt: skip
        return out.stdout.strip() + (" + uncommitted changes" if dirty.strip() else "")
    return "unknown"


def table(runner: Runner, started: float, load_before: str) -> str:
    ctx = runner.ctx
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick" if ctx.quick else "full"
    lines = [
        f"Run: {when}, {mode} mode, {ctx.rounds} round(s) after a warm-up round, "
        f"code {git_commit()}, {ctx.cores} cores, load average {load_before} before, "
        f"{_loadavg()} after, {time.monotonic() - started:.0f} s in all.",
        "",
        "| row | median | spread (min-max) | baseline, same run | ratio | target | status |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [row_line(r) for r in runner.results.values()]
    lines += [row_line(r) for r in runner.extra.values()]
    if ctx.notes:
        lines += ["", *[f"- {n}" for n in ctx.notes]]
    took = ", ".join(f"{m} {s:.0f} s" for m, s in runner.seconds.items())
    lines += ["", f"Time per scenario: {took}." if took else ""]
    return "\n".join(lines).rstrip() + "\n"


def as_json(runner: Runner) -> list[dict[str, Any]]:
    out = []
    for res in [*runner.results.values(), *runner.extra.values()]:
        out.append({
            "key": res.spec.key, "label": res.spec.label, "median": res.median(),
            "spread": res.spread(), "baseline": res.baseline(), "ratio": res.ratio(),
            "met": res.met(), "reason": res.reason(), "samples": res.values(),
        })  # fmt: skip
    return out


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    return "?"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 2 minutes")
    parser.add_argument("--rounds", type=int, default=0, help="measured rounds (3; quick 1)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--json", type=Path, help="write every row as JSON to this file")
    parser.add_argument("--only", default="", help="comma-separated modules to run")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    only = {m.strip() for m in args.only.split(",") if m.strip()}
    chosen = tuple(sc for sc in SCENARIOS if not only or sc.module in only)
    started, load_before = time.monotonic(), _loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        ctx = common.Ctx(quick=args.quick, rounds=max(1, rounds), tmp=Path(tmp))
        runner = Runner(ctx, chosen)
        try:
            await runner.run()
        finally:
            await ctx.close()
    text = table(runner, started, load_before)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(as_json(runner), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
