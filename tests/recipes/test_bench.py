"""`make bench` runs scripts/bench.sh: every script in benchmarks/ is registered, and a run prints one table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import bench_all  # noqa: E402


def test_every_benchmark_script_is_in_make_bench() -> None:
    scripts = {p.name for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert scripts == {b.script for b in bench_all.BENCHES}, "add the new benchmark to scripts/bench_all.py"
    assert "bench:\n\tbash scripts/bench.sh" in (REPO / "Makefile").read_text()


def test_bench_prints_one_table(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "bench.sh"), "group_schemes"], cwd=REPO,
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = proc.stdout[proc.stdout.index("| benchmark |") :].splitlines()
    assert table[0] == "| benchmark | time (s) | status | headline |"
    row = next(r for r in table if r.startswith("| group_schemes |"))
    assert "| ok |" in row and "/ 8 /" in row  # a G=8 scheme row of the benchmark's own table
    bad = subprocess.run(["bash", str(REPO / "scripts" / "bench.sh"), "no_such_bench"], cwd=REPO,
                         env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr
