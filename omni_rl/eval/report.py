"""Write an eval's report: report.json (everything), report.md (tables), report.png (per-task bars)."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

REPORT_FILES = ("report.json", "report.md", "report.png")
_PACKAGES = ("omni-rl", "torch", "transformers", "openai", "verl", "matplotlib")


def software_versions() -> dict[str, str]:
    """Versions of the packages that can change a number in the report."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _pct(x: float | None) -> str:
    """A percentage cell; undefined values say n/a instead of pretending to be 0."""
    return "n/a" if x is None else f"{100 * x:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _task_lines(by_task: dict[str, Any], pointwise: bool) -> list[str]:
    """Per-task accuracy rows, skipped tasks marked."""
    header = ["task", "n", "ties", "acc w/o ties %", "acc w/ ties %"] + (["tie ε"] if pointwise else [])
    rows = []
    for t, row in by_task["tasks"].items():
        if row["status"] == "skipped":
            rows.append([t, "–", "–", "skipped", row["reason"]] + (["–"] if pointwise else []))
            continue
        cells = [t, str(row["n"]), str(row["n_ties"]), _pct(row["acc_no_ties"]), _pct(row["acc_with_ties"])]
        if pointwise:
            cells.append(f"{row['tie_eps']:.4g} (ε=0: {_pct(row['acc_with_ties_eps0'])})")
        rows.append(cells)
    ov = by_task["overall"]
    rows.append(
        ["**overall**", "", "", _pct(ov["acc_no_ties"]), _pct(ov["acc_with_ties"])]
        + ([""] if pointwise else [])
    )
    skipped = ", ".join(ov["skipped_tasks"]) or "none"
    return [
        *_table(header, rows),
        "",
        f"Overall = macro average over {', '.join(ov['averaged_over']) or 'no task'}; skipped: {skipped}.",
    ]


def _subset_lines(by_subset: dict[str, Any], kind: str) -> list[str]:
    """Per-subset accuracy rows plus overall; the macro average only where the benchmark defines it."""
    rows = [
        [s, str(r["n"]), _pct(r["acc"]) if r["n"] else f"skipped ({r.get('skipped_items', 0)} unsupported)"]
        for s, r in by_subset["subsets"].items()
    ]
    rows.append(["**overall (micro)**", "", _pct(by_subset["overall"])])
    if kind == "vl_rewardbench":  # VL-RewardBench reports the macro average over its three subsets
        rows.append(["**macro**", "", _pct(by_subset["macro"])])
    return _table(["subset", "n", "acc %"], rows)


def _extras(m: dict[str, Any]) -> list[str]:
    """Failures, swap consistency, Acc+ and vote@K."""
    f = m["failures"]
    lines = [
        f"- parse failures (no verdict, counted as wrong): **{f['count']}** of {f['n']} ({_pct(f['rate'])}%)"
    ]
    if m.get("acc_plus"):
        ap = m["acc_plus"]
        lines.append(
            f"- Acc {_pct(ap['acc'])}%, Acc+ {_pct(ap['acc_plus'])}% over {ap['n_groups']} id groups"
        )
    sc = m.get("swap_consistency")
    lines.append(
        f"- swap consistency: {_pct(sc['rate'])}% of {sc['n_pairs']} pairs ({sc['pairs_with_failure']} with a failure)"
        if sc
        else "- swap consistency: n/a (each pair judged in one order)"
    )
    if m.get("vote_at_k"):
        va = m["vote_at_k"]["acc"]
        lines.append("- vote@K: " + ", ".join(f"K={k}: {_pct(v)}%" for k, v in va.items()))
    return lines


def order_text(run: dict[str, Any]) -> str:
    """How the A/B layout was chosen, in words (the order changes what a position-biased judge scores)."""
    order = run["order"]
    if order == "random":
        return f"**random** (seed {run['seed']}) — a seeded coin per item decides which response is A"
    if order == "both":
        return "**both** — every pair judged in both layouts (AB and BA); accuracy is the mean over both"
    if order == "chosen_first":
        return "**chosen_first** — the preferred response is always A (a position-bias probe, not a score)"
    so = run.get("source_order") or {}
    return (
        f"**source** — each pair as the file showed it; the preferred response was first in "
        f"{so.get('preferred_first', '?')} of {so.get('pairs', '?')} pairs (an always-first judge scores that share)"
    )


def _tie_protocol_lines(tp: dict[str, Any]) -> list[str]:
    """GenAI-Bench-Video: both tie protocols, each labelled."""
    f, m = tp["four_class"], tp["merged"]
    return [
        "## how ties were scored",
        "",
        *_table(
            ["protocol", "classes", "acc %", "note"],
            [
                ["four-class (benchmark)", ", ".join(f["classes"]), _pct(f["acc"]), f["note"]],
                ["merged", ", ".join(m["classes"]), _pct(m["acc"]), m["note"]],
                ["without ties", "left, right", _pct(tp["no_ties"]["acc"]), "decisive votes only"],
            ],
        ),
        "",
        f"Votes: {f['votes']['decisive']} decisive, {f['votes']['tie']} tie, {f['votes']['bothbad']} both-bad.",
        "",
    ]


def _data_lines(report: dict[str, Any]) -> list[str]:
    """The file's own facts (subset check, schema) when the loader reports them."""
    facts = (report.get("data") or {}).get("facts") or {}
    lines = []
    if "subset_counts" in facts:
        lines.append(
            f"- subsets derived: {facts['subset_counts']}; full-file check: {facts.get('subset_check')}"
        )
    if facts.get("schemas"):
        lines.append(f"- schema(s) read: {facts['schemas']}")
    if facts.get("limited"):
        lines.append(f"- {facts['limited']} (whole-file checks did not run)")
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    m, run, j = report["metrics"], report["run"], report["judge"]
    lines = [
        f"# omni-rl eval: {report['benchmark']} ({report['kind']})",
        "",
        f"- judge: `{j.get('name')}` ({j.get('type')}); sampling: `{json.dumps(j.get('sampling', {}))}`",
        f"- judge fingerprint: `{(j.get('identity') or {}).get('fingerprint', 'n/a')}` (model id, endpoint, sampling, "
        f"weights hash `{(j.get('identity') or {}).get('weights_hash')}`); a changed judge does not resume this cache",
        f"- order: {order_text(run)}; samples per layout: {run['samples']}",
        *_data_lines(report),
        f"- pairs: {run['pairs']} loaded, **{run['rejects']} rejected** by the loader (rejects.jsonl), {run['skipped']} skipped as "
        f"unsupported, {run['errors']} request errors (not judged: rerun to retry), "
        f"{run.get('renamed_duplicate_ids', 0)} repeated source ids renamed `#dupK`",
        f"- judgments: {m['judgments']} ({run['resumed']} from cache, {run['judged']} new, "
        f"{run['items_per_s']:.2f} items/s)",
        f"- accuracy over all judgments: **{_pct(m['accuracy'])}%**",
        "",
        f"## {m['headline']['title']}",
        "",
    ]
    if m.get("tie_protocols"):
        lines += _tie_protocol_lines(m["tie_protocols"])
    if report["kind"] in ("omni_rewardbench", "generic"):
        lines += _task_lines(m["by_task"], report["pointwise"])
    else:
        lines += _subset_lines(m["by_subset"], report["kind"])
    lines += ["", "## other metrics", "", *_extras(m), "", "## software", ""]
    lines += [f"- {k}: {v}" for k, v in report["versions"].items()]
    return "\n".join(lines) + "\n"


def bar_chart(report: dict[str, Any], path: Path) -> None:
    """Per-task (or per-subset) accuracy bars; skipped/undefined bars are drawn empty and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    head = report["metrics"]["headline"]
    names = list(head["bars"])
    vals = [head["bars"][n] for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.6))
    xs = range(len(names))
    ax.bar(xs, [100 * v if v is not None else 0 for v in vals], color="#4C72B0", label="acc (w/ ties)")
    if "bars_no_ties" in head:
        nt = [head["bars_no_ties"][n] for n in names]
        ax.scatter(
            xs,
            [100 * v if v is not None else float("nan") for v in nt],
            color="#DD8452",
            zorder=3,
            label="acc w/o ties",
        )
        ax.legend(loc="lower right", fontsize=8)
    for x, v in zip(xs, vals, strict=True):
        ax.text(
            x,
            (100 * v if v is not None else 0) + 1,
            "skipped" if v is None else f"{100 * v:.0f}",
            ha="center",
            fontsize=8,
        )
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy %")
    ax.set_title(f"{report['benchmark']} — {report['judge'].get('name')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write the three report files; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in REPORT_FILES}
    paths["report.json"].write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    paths["report.md"].write_text(markdown(report))
    bar_chart(report, paths["report.png"])
    return paths
