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
