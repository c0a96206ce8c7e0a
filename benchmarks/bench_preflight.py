"""Claim: a recipe launch's pre-flight no longer imports verl (verl's yaml is searched by file path).

    python benchmarks/bench_preflight.py [--rounds 3]

Side by side in fresh interpreters, the same recipe config composed two ways: Hydra's `pkg://verl.trainer.config`
search path (imports verl: torch, Ray, tensordict) and `omni_rl.utils.launch.compose` (the folder by path, what
recipes/lib.sh runs before every launch). Prints the median seconds of each and their ratio; the two configs
are checked equal.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = {
    "pkg": "from omni_rl.rl.recipe import compose",
    "file": "from omni_rl.utils.launch import compose",
}
COMPOSE = (
    "; import hashlib; from pathlib import Path; from omegaconf import OmegaConf; "
    "cfg = compose(Path({d!r}), 'genrm_grpo', ['+profile=[cpu_tiny]']); "
    "print(hashlib.sha1(OmegaConf.to_yaml(cfg, sort_keys=True).encode()).hexdigest())"
)


def one(kind: str) -> tuple[float, str]:
    """Wall seconds of one fresh interpreter composing the config, and what it printed."""
    code = CODE[kind] + COMPOSE.format(d=str(REPO / "recipes" / "config"))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, res.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    """Alternate the two ways `rounds` times; print medians and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {"pkg": [], "file": []}
    outputs: dict[str, set[str]] = {"pkg": set(), "file": set()}
    for _ in range(args.rounds):
        for kind in ("pkg", "file"):
            dt, out = one(kind)
            times[kind].append(dt)
            outputs[kind].add(out)
    if outputs["pkg"] != outputs["file"]:
        print(f"composed configs differ: {outputs}")
        return 1
    pkg, file = (statistics.median(times[k]) for k in ("pkg", "file"))
    print("| compose | median s | rounds |\n|---|---|---|")
    print(f"| pkg://verl.trainer.config (imports verl) | {pkg:.2f} | {args.rounds} |")
    print(f"| file path (omni_rl.utils.launch) | {file:.2f} | {args.rounds} |")
    print(f"pre-flight speed-up pkg/file = {pkg / file:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
