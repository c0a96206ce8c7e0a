"""Claim: one OpenMP thread per process makes verl's CPU training faster on a small machine.

    python benchmarks/bench_omp_threads.py [--steps 40] [--threads 1 2]

Side by side, the same verl SFT run (`PROFILE=cpu_sft NPROC=1 bash recipes/sft_genrm.sh`, the learn chain's
synthetic task, the tiny Qwen2) with OMP_NUM_THREADS set to each value; prints the wall time of each run, the
mean of verl's own last-10-step times (tqdm's s/it), and the ratio against the first value.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def task(work: Path) -> tuple[Path, Path]:
    """The tiny model and the learn chain's SFT parquet, built locally."""
    from transformers import AutoTokenizer

    from omni_rl.learn.synthetic import TaskSpec, write_task
    from omni_rl.learn.tiny_models import ensure_tiny_models

    base = ensure_tiny_models(REPO / ".cache" / "tiny-models", ("text",))["text"]
    write_task(
        work / "task", AutoTokenizer.from_pretrained(base), TaskSpec(n_train=1024, n_heldout=12, n_policy=8)
    )
    return base, work / "task" / "sft" / "train.parquet"


def step_seconds(log: str) -> float:
    """Mean seconds per step over verl's last 10 tqdm rates (it/s or s/it)."""
    rates = re.findall(r"([\d.]+)(it/s|s/it)\]", log)[-10:]
    secs = [1 / float(v) if unit == "it/s" else float(v) for v, unit in rates]
    return sum(secs) / len(secs) if secs else float("nan")


def run(threads: int, steps: int, base: Path, data: Path, work: Path) -> tuple[float, float]:
    """(wall seconds, seconds per step) of one SFT run with OMP_NUM_THREADS=threads."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "PROFILE": "cpu_sft",
        "NPROC": "1",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = ["bash", "recipes/sft_genrm.sh", f"data.train_files={data}", f"model.path={base}",
           f"trainer.default_local_dir={work / f'ckpt{threads}'}", f"trainer.total_training_steps={steps}"]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"SFT with {threads} threads failed:\n{res.stderr[-3000:]}")
    return wall, step_seconds(res.stdout + res.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run each thread count once, print a table and the ratio against the first."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base, data = task(Path(tmp))
        rows = {t: run(t, args.steps, base, data, Path(tmp)) for t in args.threads}
    print("| OMP_NUM_THREADS | wall (s) | s/step (last 10) |\n|---|---|---|")
    for t, (wall, per) in rows.items():
        print(f"| {t} | {wall:.1f} | {per:.2f} |")
    first = args.threads[0]
    for t in args.threads[1:]:
        print(f"SFT step speed-up {first}->{t} threads = {rows[first][1] / rows[t][1]:.2f}x "
              f"(wall {rows[first][0] / rows[t][0]:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
