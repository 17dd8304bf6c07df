"""`bench/run.py --quick` (the CI run of the benchmarks): it finishes, exits 0 and writes a
table with every row of the Performance issue, each with a value or "not measured" and
the reason. It asserts nothing about times (bench/ reports ratios; see BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every row the benchmark command must report (bench/run.py's SCENARIOS table).
ROWS = [
    "unary.connect_json", "unary.grpc",
    "tput.list_services", "tput.get_session", "tput.invoke",
    "stream.relay", "stream.memory", "stream.stall",
    "load.cold", "load.reload", "load.concurrent_p99",
    "schema.time", "schema.bytes", "schema.stall",
    "session.mem_1", "session.mem_1k", "session.mem_10k", "session.sweep_pause",
    "c200.errors", "c200.p99", "c200.rss", "c200.sessions", "c200.fds",
    "limits.redis.unary_p50", "limits.redis.unary_p99", "limits.redis.stream",
    "limits.redis.stream_all", "limits.redis.session", "limits.memory.unary_p50",
    "limits.memory.unary_p99", "limits.memory.stream", "limits.memory.session",
]  # fmt: skip


@pytest.mark.timeout(420)
def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    out, data = tmp_path / "table.md", tmp_path / "rows.json"
    cmd = [sys.executable, "bench/run.py", "--quick", "--out", str(out), "--json", str(data)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["key"]: r for r in json.loads(data.read_text())}
    missing = [k for k in ROWS if k not in rows]
    assert not missing, f"rows missing from the run: {missing}"
    for key in ROWS:
        row = rows[key]
        assert row["median"] is not None or row["reason"], f"{key}: no value and no reason"
    table = out.read_text()
    assert table in done.stdout  # the same table is printed
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| row | median | spread")
    for key in ROWS:
        label = rows[key]["label"]
        line = next((x for x in lines if x.startswith(f"| {label}")), "")
        assert line, f"{key}: no table line"
        assert rows[key]["median"] is not None or "not measured (" in line, line


STATS = """
import json, sys
sys.path.insert(0, "bench")
import common, run

lower = run.Result(run.Spec("k", "k", "ms", "b", "<= 2x", 2.0))
lower.rows = [common.Row("k", 3.0, 1.0), common.Row("k", 5.0, 2.0), common.Row("k", 4.0, 1.0)]
higher = run.Result(run.Spec("h", "h", "req/s", "b", ">= 0.5x", 0.5, higher=True))
higher.rows = [common.Row("h", 60.0, 100.0)]
absolute = run.Result(run.Spec("a", "a", "s", "", "<= 5 s", 5.0, on="value"))
absolute.rows = [common.Row("a", 2.0, lo=1.0, hi=3.0)]
missing = run.Result(run.Spec("m", "m", "s"), why="module missing: bench/x.py")
print(json.dumps({
    "lower": [lower.median(), lower.ratio(), lower.met(), lower.spread()],
    "higher": [higher.ratio(), higher.met()],
    "absolute": [absolute.met(), absolute.spread()],
    "lines": [run.row_line(lower), run.row_line(missing)],
}))
"""


def test_medians_ratios_and_targets() -> None:
    done = subprocess.run([sys.executable, "-c", STATS], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    got = json.loads(done.stdout)
    # ratios are per round (3, 2.5, 4), their median is the row's ratio
    assert got["lower"] == [4.0, 3.0, False, [3.0, 5.0]]
    assert got["higher"] == [0.6, True]
    assert got["absolute"] == [True, [1.0, 3.0]]
    lower, missing = got["lines"]
    assert "**missed**: 1.50x the limit" in lower
    assert "not measured (module missing: bench/x.py)" in missing


def test_every_row_label_is_unique() -> None:
    """The table is read (and compared) by its labels: two rows with one label would be
    taken for each other (a measured row for one that is full-mode only)."""
    code = (
        "import collections, sys; sys.path.insert(0, 'bench'); import run;"
        "c = collections.Counter(s.label for sc in run.SCENARIOS for s in sc.specs);"
        "print([label for label, n in c.items() if n > 1])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
