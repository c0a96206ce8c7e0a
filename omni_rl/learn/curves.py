"""Learning curves of the learn chain, read back from what verl itself wrote: console step lines and the
per-step rollout dumps (`trainer.rollout_data_dir/<step>.jsonl`: input, output, gts, score).

- GenRM GRPO: per step, the share of rollouts with a valid (strict) verdict, the label-match rate, how
  often each branch of reward_fns/genrm.py fired (format=0, label match, tie match, wrong side) and the
  mean reward.
- Policy GRPO: per step, the mean GenRM reward and the share of samples that satisfy the *gold* rule
  of the synthetic task: a GenRM reward that rises while the gold rate does not is reward hacking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STEP_LINE = re.compile(r"\bstep:(\d+) - (.*)$")


def _number(text: str) -> float | None:
    """'np.float64(0.5)' or '0.5' -> 0.5; None for anything non-numeric."""
    text = re.sub(r"^np\.\w+\((.*)\)$", r"\1", text.strip())
    try:
        return float(text)
    except ValueError:
        return None


def step_metrics(log: str) -> dict[int, dict[str, float]]:
    """verl's console logger lines `step:N - key:value - ...` as {N: {key: value}} (last line per step wins)."""
    steps: dict[int, dict[str, float]] = {}
    for line in ANSI.sub("", log).splitlines():
        m = STEP_LINE.search(line)
        if not m:
            continue
        row: dict[str, float] = {}
        for item in m.group(2).split(" - "):
            if ":" not in item:
                continue
            key, value = item.rsplit(":", 1)
            num = _number(value)
            if num is not None:
                row[key.strip()] = num
        steps.setdefault(int(m.group(1)), {}).update(row)
    return steps


def read_rollouts(folder: str | Path) -> dict[int, list[dict[str, Any]]]:
    """{step: rows} from verl's rollout dump folder."""
    out: dict[int, list[dict[str, Any]]] = {}
    for path in Path(folder).glob("*.jsonl"):
        if path.stem.isdigit():
            out[int(path.stem)] = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return dict(sorted(out.items()))


def split_padding(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """(real rows, count of verl's padding rows): verl pads a step whose failed groups it dropped with
    score-0 rows (uid "pad..."), which would drag a step's mean reward down if averaged in."""
    real = [r for r in rows if not str(r.get("uid", "")).startswith("pad")]
    return real, len(rows) - len(real)


def genrm_step(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Branch counts of the GenRM training reward over one step's rollouts (strict parse, as in training)."""
    from omni_rl.judge.parse import parse_verdict

    rows, padding = split_padding(rows)
    n = len(rows) or 1
    valid = match = tie_match = wrong = 0
    for r in rows:
        v = parse_verdict(r.get("output") or "", "strict")
        if not v.format_ok:
            continue
        valid += 1
        if v.verdict == r.get("gts"):
            match += 1
            tie_match += v.verdict == "tie"
        else:
            wrong += 1
    return {
        "samples": float(len(rows)),
        "valid_verdict_rate": valid / n,
        "label_match_rate": match / n,
        "tie_match_rate": tie_match / n,
        "wrong_side_rate": wrong / n,
        "format0_rate": (len(rows) - valid) / n,
        "mean_score": sum(float(r.get("score", 0.0)) for r in rows) / n,
        "score_std": _std([float(r.get("score", 0.0)) for r in rows]),
        "padding_rows": float(padding),
    }


def policy_step(rows: list[dict[str, Any]], gold: Callable[[str], bool]) -> dict[str, float]:
    """Mean GenRM reward and gold-rule satisfaction of one step's policy samples."""
    rows, padding = split_padding(rows)
    n = len(rows) or 1
    scores = [float(r.get("score", 0.0)) for r in rows]
    return {
        "samples": float(len(rows)),
        "mean_reward": sum(scores) / n,
        "reward_std": _std(scores),
        "gold_rate": sum(gold(r.get("output") or "") for r in rows) / n,
        "mean_chars": sum(len(r.get("output") or "") for r in rows) / n,
        "padding_rows": float(padding),
    }


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mu = sum(xs) / len(xs)
    return (sum((x - mu) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5


def curve(per_step: dict[int, dict[str, float]], key: str) -> list[tuple[int, float]]:
    """[(step, value)] of one key, in step order."""
    return [(s, m[key]) for s, m in sorted(per_step.items()) if key in m]


def trend(points: list[tuple[int, float]], k: int = 3) -> dict[str, float | None]:
    """Mean of the first k and last k points, and their difference (None when there are too few)."""
    if len(points) < 2:
        return {"first": None, "last": None, "delta": None}
    k = max(1, min(k, len(points) // 2))
    first = sum(v for _, v in points[:k]) / k
    last = sum(v for _, v in points[-k:]) / k
    return {"first": first, "last": last, "delta": last - first}


def plot_curves(series: dict[str, list[tuple[int, float]]], title: str, path: str | Path) -> str | None:
    """One PNG with a line per series (step on x); returns the path, or None without matplotlib/data."""
    if not any(series.values()):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, pts in series.items():
        if pts:
            ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", ms=3, label=name)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
