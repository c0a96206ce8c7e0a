"""Synth stats: counts per step, agreement rates, label balance, lengths, and calls/tokens per endpoint.

Everything except the `this_run` section is computed from the stores, so a resumed run reports the
same figures as an uninterrupted one; `this_run` holds what this process did (client counters, calls
reused from the stores, torn lines cut) and is where a resume shows.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from omni_rl.curate.synth_outputs import PairOutcome
from omni_rl.curate.synth_rules import winner_of


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _dist(values: list[int]) -> dict[str, float | int | None]:
    """mean / median / min / max of a list of lengths (None when empty)."""
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {
        "n": len(values), "mean": round(statistics.fmean(values), 1), "median": statistics.median(values),
        "min": min(values), "max": max(values),
    }  # fmt: skip


def step_counts(
    n_prompts: int, n_rejects: int, gens: list[dict], outcomes: list[PairOutcome]
) -> dict[str, Any]:
    """How many items entered and left each step, with the reasons they left."""
    judged = [o for o in outcomes if o.pair is not None]
    recs = [r for o in judged for r in o.judgements.values()]
    decisions = Counter(o.decision.action for o in judged if o.decision)
    drops = Counter(o.decision.reason for o in judged if o.decision and o.decision.action == "drop")
    return {
        "input": {"rows": n_prompts + n_rejects, "prompts": n_prompts, "rejected": n_rejects},
        "generate": {
            "calls": len(gens),
            "ok": sum(1 for g in gens if g.get("ok")),
            "failed": dict(Counter(g.get("failure") for g in gens if not g.get("ok"))),
            "truncated": sum(1 for g in gens if g.get("ok") and g.get("finish_reason") == "length"),
        },
        "pair": {
            "candidate_pairs": len(outcomes),
            "formed": len(judged),
            "skipped": dict(Counter(o.skip for o in outcomes if o.skip)),
        },
        "judge": {
            "calls": len(recs),
            "verdicts": sum(1 for r in recs if r and r.get("verdict") is not None),
            "failed": dict(Counter(_failure(r) for r in recs if _failure(r) != "ok")),
        },
        "rules": {
            "keep": decisions["keep"],
            "flip": decisions["flip"],
            "drop": decisions["drop"],
            "drop_reasons": dict(sorted(drops.items())),
        },
    }


def _failure(rec: dict[str, Any] | None) -> str:
    """ok, or the failure kind of one judgement record (transport, media, parse, truncated)."""
    if rec is None:
        return "missing"
    if not rec.get("ok"):
        return str(rec.get("failure") or "transport")
    return "ok" if rec.get("verdict") is not None else str(rec.get("failure") or "parse")


def agreement(outcomes: list[PairOutcome]) -> dict[str, Any]:
    """Both-orders agreement, position bias, first-position share and teacher-vs-presumed agreement."""
    both = [o for o in outcomes if o.pair and all(r and r.get("verdict") for r in o.judgements.values())]
    verdicts = [r["verdict"] for o in both for r in o.judgements.values() if r]
    winners = [(winner_of(o.judgements["AB"]["verdict"], "AB"), winner_of(o.judgements["BA"]["verdict"], "BA"))
               for o in both]  # fmt: skip
    agree = [w for w in winners if w[0] == w[1] and w[0] in ("chosen", "rejected")]
    same_pos = sum(1 for o in both if o.judgements["AB"]["verdict"] == o.judgements["BA"]["verdict"] != "tie")
    return {
        "pairs_with_both_verdicts": len(both),
        "both_orders_agree_rate": _rate(len(agree), len(both)),
        "position_bias_rate": _rate(same_pos, len(both)),
        "first_position_rate": _rate(verdicts.count("A"), verdicts.count("A") + verdicts.count("B")),
        "tie_verdict_rate": _rate(verdicts.count("tie"), len(verdicts)),
        "teacher_agrees_with_presumed_rate": _rate(sum(1 for w in agree if w[0] == "chosen"), len(agree)),
    }


def balance_and_lengths(pairs: list[dict[str, Any]], sft_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which candidates end up chosen/rejected, SFT verdict balance, and answer lengths in characters."""
    chosen = [len(p["chosen"]["text"]) for p in pairs]
    rejected = [len(p["rejected"]["text"]) for p in pairs]
    longer = sum(1 for c, r in zip(chosen, rejected, strict=True) if c > r)
    return {
        "label_balance": {
            "chosen_by_candidate": dict(sorted(Counter(p["meta"]["chosen_model"] for p in pairs).items())),
            "rejected_by_candidate": dict(
                sorted(Counter(p["meta"]["rejected_model"] for p in pairs).items())
            ),
            "flipped": sum(1 for p in pairs if p["meta"]["flipped"]),
            "sft_verdicts": dict(sorted(Counter(r["verdict"] for r in sft_rows).items())),
        },
        "lengths_chars": {
            "chosen": _dist(chosen),
            "rejected": _dist(rejected),
            "chosen_longer_rate": _rate(longer, len(pairs)),
        },
    }


def endpoint_costs(gens: list[dict], outcomes: list[PairOutcome], models: dict[str, str]) -> dict[str, Any]:
    """Calls, HTTP attempts and tokens per endpoint, from the stored records behind the outputs."""
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, rec: dict[str, Any]) -> None:
        e = out.setdefault(name, {"model": models.get(name, ""), "calls": 0, "ok": 0, "failed": 0, "attempts": 0,
                                  "prompt_tokens": 0, "completion_tokens": 0})  # fmt: skip
        e["calls"] += 1
        e["ok" if rec.get("ok") else "failed"] += 1
        usage = rec.get("usage") or {}
        for k in ("attempts", "prompt_tokens", "completion_tokens"):
            e[k] += int(usage.get(k) or 0)

    for g in gens:
        add(g["candidate"], g)
    for o in outcomes:
        for rec in o.judgements.values():
            if rec is not None:
                add("teacher", rec)
    return out


def to_markdown(stats: dict[str, Any]) -> str:
    """A short human report of the stats."""
    s, a, lb, ln = stats["steps"], stats["agreement"], stats["label_balance"], stats["lengths_chars"]
    lines = [
        "# omni-rl synth report",
        "",
        "## Steps",
        "",
        "| step | in | out | details |",
        "|---|---|---|---|",
    ]
    lines.append(
        f"| input | {s['input']['rows']} | {s['input']['prompts']} | rejected {s['input']['rejected']} |"
    )
    g = s["generate"]
    lines.append(
        f"| generate | {g['calls']} | {g['ok']} | failed {g['failed'] or 0}, truncated {g['truncated']} |"
    )
    p = s["pair"]
    lines.append(f"| pair | {p['candidate_pairs']} | {p['formed']} | skipped {p['skipped'] or 0} |")
    j = s["judge"]
    lines.append(f"| judge (both orders) | {j['calls']} | {j['verdicts']} | failed {j['failed'] or 0} |")
    r = s["rules"]
    lines.append(
        f"| rules | {p['formed']} | keep {r['keep']}, flip {r['flip']} | drop {r['drop']}: {r['drop_reasons'] or 0} |"
    )
    o = stats["outputs"]
    lines += ["", f"Outputs: {o['pairs']} pairs, {o['sft_traces']} SFT traces (skipped {o['sft_skipped'] or 0}), "
              f"{o['rejects']} rejects.", "", "## Teacher agreement", ""]  # fmt: skip
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in a.items()]
    lines += ["", "## Label balance", ""] + [f"- {k.replace('_', ' ')}: {v}" for k, v in lb.items()]
    lines += [
        "",
        "## Lengths (characters)",
        "",
        "| | n | mean | median | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for side in ("chosen", "rejected"):
        d = ln[side]
        lines.append(f"| {side} | {d['n']} | {d['mean']} | {d['median']} | {d['min']} | {d['max']} |")
    lines += [
        "",
        f"Chosen longer than rejected: {ln['chosen_longer_rate']}",
        "",
        "## Calls and tokens per endpoint",
        "",
    ]
    lines += ["| endpoint | model | calls | ok | failed | HTTP attempts | prompt tokens | completion tokens |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, e in stats["endpoints"].items():
        lines.append(f"| {name} | {e['model']} | {e['calls']} | {e['ok']} | {e['failed']} | {e['attempts']} | "
                     f"{e['prompt_tokens']} | {e['completion_tokens']} |")  # fmt: skip
    t = stats["this_run"]
    lines += [
        "",
        "## This run",
        "",
        f"- reused from the stores: {t['reused']}",
        f"- store loads: {t['stores']}",
    ]
    return "\n".join(lines) + "\n"
