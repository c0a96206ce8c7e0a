"""Benchmark metrics computed from judged records, following each benchmark's published protocol.

Conventions (stated in every report):
- a judgment without a verdict (parse failure, missing score) is counted as a failure AND as wrong;
  it is never mapped to a side;
- with several samples or both orders, accuracy is the mean over judgments (each order, each sample);
  vote@K and swap consistency are reported separately.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from omni_rl.eval.records import Record

OMNI_TASKS: tuple[str, ...] = ("t2t", "ti2t", "tv2t", "ta2t", "t2i", "t2v", "t2a", "t23d", "ti2i")
VL_SUBSETS: tuple[str, ...] = ("general", "hallucination", "reasoning")
KINDS: tuple[str, ...] = (
    "omni_rewardbench",
    "vl_rewardbench",
    "multimodal_rewardbench",
    "mm_rlhf",
    "genai_bench_video",
    "generic",
)
# Metrics a benchmark defines for itself; nothing else gets them (Acc+ over id groups means nothing elsewhere).
ACC_PLUS_KINDS: tuple[str, ...] = ("mm_rlhf",)


def benchmark_kind(name: str) -> str:
    """Which protocol a loader name follows (unknown names get the generic per-task/per-subset one)."""
    n = name.lower().replace("-", "_")
    if "omni" in n:
        return "omni_rewardbench"
    if "vl_reward" in n or "vlreward" in n:
        return "vl_rewardbench"
    if "multimodal_reward" in n or "mmrb" in n:
        return "multimodal_rewardbench"
    if "mm_rlhf" in n or "mmrlhf" in n:
        return "mm_rlhf"
    if "genai_bench" in n or "genaibench" in n:
        return "genai_bench_video"
    return "generic"


def _ratio(num: int, den: int) -> float | None:
    """num/den, or None when there is nothing to divide (reported as n/a, never as 0)."""
    return num / den if den else None


def accuracy(recs: Sequence[Record]) -> dict[str, Any]:
    """Three-way exact-match accuracy over judgments."""
    n = len(recs)
    c = sum(r.correct for r in recs)
    return {"acc": _ratio(c, n), "correct": c, "n": n}


def tie_calibrated(recs: Sequence[Record]) -> dict[str, Any]:
    """Best three-way accuracy over tie thresholds ε (tie iff |a-b| <= ε), Deutsch et al. 2023.

    Candidates are 0 and every observed |margin|; the smallest ε reaching the best accuracy wins.
    Unscored judgments are wrong at every ε. `acc_at_zero` is the answer without the sweep.
    """
    n = len(recs)
    scored = [(abs(m), m, r.label) for r in recs if (m := r.margin) is not None]
    scored.sort(key=lambda t: t[0])
    # ε below every margin: nothing is a tie; a pair is right when the sign matches the label.
    correct = sum(1 for _, m, lab in scored if (m > 0 and lab == "A") or (m < 0 and lab == "B"))
    best, best_eps = correct, 0.0
    at_zero = correct
    i = 0
    while i < len(scored):
        eps = scored[i][0]
        while i < len(scored) and scored[i][0] == eps:
            _, m, lab = scored[i]
            was_right = (m > 0 and lab == "A") or (m < 0 and lab == "B")
            correct += (lab == "tie") - was_right
            i += 1
        if eps == 0.0:
            at_zero = correct
        if correct > best:
            best, best_eps = correct, eps
    if best == at_zero:
        best_eps = 0.0
    return {"acc": _ratio(best, n), "eps": best_eps, "acc_at_zero": _ratio(at_zero, n), "n": n}


def _task_row(recs: Sequence[Record], pointwise: bool) -> dict[str, Any]:
    """One task's accuracy without ties (non-tie pairs only) and with ties (all pairs, three-way)."""
    no_ties = accuracy([r for r in recs if not r.is_tie])
    row: dict[str, Any] = {
        "n": len(recs),
        "n_ties": sum(r.is_tie for r in recs),
        "acc_no_ties": no_ties["acc"],
    }
    if pointwise:
        cal = tie_calibrated(recs)
        row.update(acc_with_ties=cal["acc"], tie_eps=cal["eps"], acc_with_ties_eps0=cal["acc_at_zero"])
    else:
        row["acc_with_ties"] = accuracy(recs)["acc"]
    return row


def _mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values (None when there are none)."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def by_key(recs: Iterable[Record], key: Callable[[Record], str]) -> dict[str, list[Record]]:
    """Group records, keeping first-seen order."""
    out: dict[str, list[Record]] = defaultdict(list)
    for r in recs:
        out[key(r)].append(r)
    return dict(out)


def task_table(
    recs: Sequence[Record],
    pointwise: bool,
    tasks: Sequence[str] = OMNI_TASKS,
    skipped: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Per-task accuracy with/without ties and an overall that names the tasks it leaves out."""
    skipped = skipped or {}
    groups = by_key(recs, lambda r: r.task)
    names = list(tasks) + sorted(t for t in groups if t not in tasks)
    rows: dict[str, Any] = {}
    for t in names:
        if t in groups:
            rows[t] = {"status": "evaluated", **_task_row(groups[t], pointwise)}
            if skipped.get(t):
                rows[t]["skipped_items"] = skipped[t]
        else:
            why = f"unsupported by the judge ({skipped[t]} items skipped)" if skipped.get(t) else "no items"
            rows[t] = {"status": "skipped", "reason": why}
    evaluated = [t for t in names if rows[t]["status"] == "evaluated"]
    overall = {
        "acc_no_ties": _mean(rows[t]["acc_no_ties"] for t in evaluated),
        "acc_with_ties": _mean(rows[t]["acc_with_ties"] for t in evaluated),
        "averaged_over": evaluated,
        "skipped_tasks": [t for t in names if rows[t]["status"] == "skipped"],
        "note": "macro average over evaluated tasks only",
    }
    return {"tasks": rows, "overall": overall}


def subset_table(
    recs: Sequence[Record], subsets: Sequence[str] = (), skipped: dict[str, int] | None = None
) -> dict[str, Any]:
    """Accuracy per subset (canonical and skipped ones listed even when empty), overall (micro), macro."""
    skipped = skipped or {}
    groups = by_key(recs, lambda r: r.subset or "(none)")
    extra = sorted(s for s in set(groups) | set(skipped) if s not in subsets)
    names = list(subsets) + extra
    rows: dict[str, Any] = {}
    for s in names:
        rows[s] = accuracy(groups.get(s, []))
        if skipped.get(s):
            rows[s]["skipped_items"] = skipped[s]
    return {
        "subsets": rows,
        "overall": accuracy(recs)["acc"],
        "macro": _mean(rows[s]["acc"] for s in names if rows[s]["n"]),
        "skipped_subsets": [s for s in names if not rows[s]["n"]],
    }


def acc_plus(recs: Sequence[Record]) -> dict[str, Any]:
    """MM-RLHF Acc (all pairs) and Acc+ (a group counts only if every judgment of every pair is right).

    Computed per sample index and averaged, so extra samples do not make Acc+ harsher.
    """
    per_sample = by_key(recs, lambda r: str(r.sample))
    plus = []
    n_groups = 0
    for srecs in per_sample.values():
        groups = by_key(srecs, lambda r: r.group if r.group is not None else r.item)
        n_groups = len(groups)
        plus.append(sum(all(r.correct for r in g) for g in groups.values()) / len(groups))
    return {"acc": accuracy(recs)["acc"], "acc_plus": _mean(plus), "n": len(recs), "n_groups": n_groups}


def tie_protocols(recs: Sequence[Record]) -> dict[str, Any]:
    """GenAI-Bench-Video scored two ways, each labelled: its own four classes, and tie+both-bad merged.

    four_class: left / right / tie / both-bad are distinct; a `tie` verdict is right only for a tie vote
    and a both-bad vote needs a `bothbad` verdict. merged: tie and both-bad votes (and verdicts) are one
    tie class — simpler, NOT the benchmark's protocol, reported as such.
    """
    n = len(recs)
    votes = Counter((r.vote or "tie") if r.is_tie else "decisive" for r in recs)
    four = merged = 0
    for r in recs:
        v = r.verdict
        if not r.is_tie:
            four += r.correct
            merged += r.correct
            continue
        four += v == (r.vote or "tie")
        merged += v in ("tie", "bothbad")
    can_say_bothbad = any(r.verdict == "bothbad" for r in recs)
    return {
        "four_class": {
            "acc": _ratio(four, n), "n": n, "classes": ["left", "right", "tie", "bothbad"],
            "votes": {"decisive": votes["decisive"], "tie": votes["tie"], "bothbad": votes["bothbad"]},
            "note": "benchmark protocol: tie and both-bad are separate classes"
            + ("" if can_say_bothbad else "; this judge never answered both-bad, so both-bad votes count as wrong"),
        },
        "merged": {
            "acc": _ratio(merged, n), "n": n, "classes": ["left", "right", "tie (tie + both-bad)"],
            "note": "merged protocol (not the benchmark's): tie and both-bad votes scored as one tie class",
        },
        "no_ties": accuracy([r for r in recs if not r.is_tie]),
    }  # fmt: skip


def failures(recs: Sequence[Record]) -> dict[str, Any]:
    """Judgments with no verdict (parse failures or unusable scores), counted and never re-labelled."""
    n = len(recs)
    bad = sum(r.failed for r in recs)
    return {
        "count": bad,
        "rate": _ratio(bad, n),
        "format_ok_rate": _ratio(sum(r.format_ok for r in recs), n),
        "n": n,
    }


def swap_consistency(recs: Sequence[Record]) -> dict[str, Any] | None:
    """Share of (item, sample) judged in both orders whose order-free verdicts agree (None if never)."""
    pairs = by_key(recs, lambda r: f"{r.item}\x00{r.sample}")
    both = [g for g in pairs.values() if {r.order for r in g} == {"AB", "BA"}]
    if not both:
        return None
    agree = 0
    with_failure = 0
    for g in both:
        prefs = {r.order: r.pref for r in g}
        if prefs["AB"] is None or prefs["BA"] is None:
            with_failure += 1
        elif prefs["AB"] == prefs["BA"]:
            agree += 1
    return {
        "rate": _ratio(agree, len(both)),
        "consistent": agree,
        "n_pairs": len(both),
        "pairs_with_failure": with_failure,
    }


def _vote(prefs: Sequence[str | None]) -> str | None:
    """Plurality of the parsed verdicts; a drawn plurality or no verdict at all gives None."""
    counts = Counter(p for p in prefs if p is not None).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def vote_at_k(recs: Sequence[Record]) -> dict[str, Any] | None:
    """Accuracy of the plurality verdict over the first k samples, k = 1..K (None when K = 1)."""
    units = by_key(recs, lambda r: f"{r.item}\x00{r.order}")
    k_max = max((len(u) for u in units.values()), default=0)
    if k_max < 2:
        return None
    out: dict[str, Any] = {}
    for k in range(1, k_max + 1):
        right = 0
        for u in units.values():
            u = sorted(u, key=lambda r: r.sample)
            right += _vote([r.pref for r in u[:k]]) == u[0].true_pref
        out[str(k)] = right / len(units)
    return {"acc": out, "n_units": len(units), "k_max": k_max}


def summarize(
    recs: Sequence[Record], kind: str, pointwise: bool, skipped: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """Every metric for a benchmark kind, plus a `headline` breakdown; `skipped` = unsupported pairs."""
    by_task_skip = Counter(str(s.get("task", "")) for s in skipped)
    by_subset_skip = Counter(str(s.get("subset") or "(none)") for s in skipped)
    out: dict[str, Any] = {
        "judgments": len(recs),
        "items": len({r.item for r in recs}),
        "accuracy": accuracy(recs)["acc"],
        "failures": failures(recs),
        "swap_consistency": swap_consistency(recs),
        "vote_at_k": vote_at_k(recs),
        "skipped_items": len(skipped),
        "by_task": task_table(
            recs, pointwise, OMNI_TASKS if kind == "omni_rewardbench" else (), by_task_skip
        ),
        "by_subset": subset_table(recs, VL_SUBSETS if kind == "vl_rewardbench" else (), by_subset_skip),
    }
    if kind in ACC_PLUS_KINDS:
        out["acc_plus"] = acc_plus(recs)
    if kind == "genai_bench_video":
        out["tie_protocols"] = tie_protocols(recs)
    out["headline"] = headline(out, kind)
    return out


def headline(summary: dict[str, Any], kind: str) -> dict[str, Any]:
    """The breakdown a benchmark's paper reports: {title, bars: {name: acc|None}, totals: {...}}."""
    if kind == "genai_bench_video":
        tp = summary["tie_protocols"]
        bars = {"four-class (benchmark)": tp["four_class"]["acc"], "ties merged": tp["merged"]["acc"],
                "without ties": tp["no_ties"]["acc"]}  # fmt: skip
        return {"title": "accuracy by tie protocol", "bars": bars, "totals": {k: v for k, v in bars.items()}}
    if kind in ("omni_rewardbench", "generic"):
        tt = summary["by_task"]
        bars = {t: row.get("acc_with_ties") for t, row in tt["tasks"].items()}
        bars_nt = {t: row.get("acc_no_ties") for t, row in tt["tasks"].items()}
        totals = {
            "overall_with_ties": tt["overall"]["acc_with_ties"],
            "overall_no_ties": tt["overall"]["acc_no_ties"],
            "skipped_tasks": tt["overall"]["skipped_tasks"],
        }
        return {"title": "accuracy per task", "bars": bars, "bars_no_ties": bars_nt, "totals": totals}
    st = summary["by_subset"]
    bars = {s: row["acc"] for s, row in st["subsets"].items()}
    totals: dict[str, Any] = {"overall": st["overall"]}
    if kind == "vl_rewardbench":
        totals["macro"] = st["macro"]
    if kind == "mm_rlhf":
        totals["acc_plus"] = summary.get("acc_plus", {}).get("acc_plus")
    title = {"vl_rewardbench": "accuracy per subset", "multimodal_rewardbench": "accuracy per category"}
    return {"title": title.get(kind, "accuracy per subset"), "bars": bars, "totals": totals}
