"""report.md and the learning-curve PNGs of the learn chain (benchmarks/learn_chain.py), from report.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omni_rl.learn import curves


def _f(x: Any, nd: int = 3) -> str:
    return "–" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def _int_keys(d: dict) -> dict[int, Any]:
    """report.json turns step numbers into strings; curves want ints."""
    return {int(k): v for k, v in d.items()}


def plots(report: dict[str, Any], out: Path) -> list[str]:
    """Write the PNGs that have data; returns their file names."""
    res, made = report.get("results", {}), []
    sft = res.get("sft", {}).get("loss")
    if sft and curves.plot_curves({"SFT loss": [tuple(p) for p in sft]}, "cold-start SFT (verl SFT trainer)",
                                  out / "sft_loss.png"):  # fmt: skip
        made.append("sft_loss.png")
    g = _int_keys(res.get("genrm_grpo", {}).get("per_step", {}))
    keys = ("valid_verdict_rate", "label_match_rate", "tie_match_rate", "mean_score")
    if g and curves.plot_curves({k: curves.curve(g, k) for k in keys}, "GenRM GRPO (rollouts per step)",
                                out / "genrm_grpo.png"):  # fmt: skip
        made.append("genrm_grpo.png")
    series = {}
    for name, r in res.get("policy", {}).items():
        ps = _int_keys(r.get("per_step", {}))
        series[f"{name}: GenRM reward"] = curves.curve(ps, "mean_reward")
        series[f"{name}: gold rate"] = curves.curve(ps, "gold_rate")
    if series and curves.plot_curves(series, "policy GRPO: GenRM reward vs gold rule", out / "policy.png"):
        made.append("policy.png")
    bon = res.get("bon")
    if bon:
        pts = {
            k: [(int(n), v) for n, v in bon[k].items() if v is not None]
            for k in ("pick", "first", "random", "oracle")
        }
        if curves.plot_curves(pts, "best-of-N: gold accuracy vs N (x = N)", out / "bon.png"):
            made.append("bon.png")
    return made


def write_markdown(report: dict[str, Any], out: Path) -> Path:
    """report.md: stages with timings, then each stage's numbers and the curve images."""
    out = Path(out)
    images = plots(report, out)
    res = report.get("results", {})
    lines = [f"# Does the chain learn? (preset `{report.get('preset')}`)", "",
             f"Total {_f(report.get('total_seconds'), 0)} s this run (stages marked reused ran in an earlier run of "
             f"this folder, `--reuse`). Sizes: `{report.get('sizes')}`", "",
             "| stage | status | seconds |", "|---|---|---|"]  # fmt: skip
    for name, st in report.get("stages", {}).items():
        lines.append(
            f"| {name} | {st['status']}{' (reused)' if st.get('reused') else ''} | {st['seconds']} |"
        )
    for name, st in report.get("stages", {}).items():
        if st["status"] != "ok":
            lines += ["", f"**{name} failed:**", "```", st.get("error", "")[-1500:], "```"]
    task = res.get("task", {})
    if task:
        lines += ["", "## Synthetic task", "", f"Good words: {', '.join(task.get('good_words', []))}; "
                  f"SFT teacher accuracy {_f(task.get('sft', {}).get('teacher_accuracy'))}.", "",
                  "| split | rows | kinds | mean chars chosen / rejected |", "|---|---|---|---|"]  # fmt: skip
        for split, s in task.get("splits", {}).items():
            lines.append(f"| {split} | {s['rows']} | {s['kinds']} | "
                         f"{_f(s['mean_chars_chosen'], 1)} / {_f(s['mean_chars_rejected'], 1)} |")  # fmt: skip
    if "sft" in res:
        t = res["sft"]["loss_trend"]
        lines += ["", "## SFT", "", f"loss {_f(t['first'])} → {_f(t['last'])} (first/last 3 steps)"]
        floor = task.get("sft", {}).get("loss_floor")
        if floor:
            lines += ["", f"Loss floors on these traces (mean per response token): content-blind "
                      f"{_f(floor['content_blind'])}, content-perfect {_f(floor['content_perfect'])}. "
                      "A final loss at the content-blind floor means the verdict ignores the pair."]  # fmt: skip
        probe = res["sft"].get("probe")
        if probe and floor:
            lines += ["", f"Merged SFT model (what eval serves), verdict token alone on {probe['rows']} traces: "
                      f"{_f(probe['verdict_token'])} nats (content-blind {_f(floor['verdict_entropy_content_blind'])}, "
                      f"content-perfect {_f(floor['verdict_entropy_content_perfect'])})."]  # fmt: skip
        lines += _probe_line("Merged SFT model", res["sft"].get("probe_heldout"))
    if "genrm_grpo" in res:
        g = res["genrm_grpo"]
        lines += ["", "## GenRM GRPO (per step, from verl's rollout dumps)", "",
                  "| step | valid verdict | label match | tie match | wrong side | format=0 | mean score | verl score | verl format |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for s, m in sorted(_int_keys(g["per_step"]).items()):
            lines.append(f"| {s} | {_f(m['valid_verdict_rate'])} | {_f(m['label_match_rate'])} | "
                         f"{_f(m['tie_match_rate'])} | {_f(m['wrong_side_rate'])} | {_f(m['format0_rate'])} | "
                         f"{_f(m['mean_score'])} | {_f(m.get('verl_score_mean'))} | {_f(m.get('verl_format_mean'))} |")  # fmt: skip
        lines += ["", f"Steps on which each reward branch fired: `{g['branches_fired']}`"]
        lines += _probe_line("Merged SFT+GRPO model", g.get("probe_heldout"))
    if "eval" in res:
        lines += ["", "## Held-out eval (`omni-rl eval order=both`)", "",
                  "| GenRM | acc without ties | acc with ties | parse failures | swap consistency | judgments |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name, e in res["eval"].items():
            lines.append(f"| {name} | {_f(e['acc_no_ties'])} | {_f(e['acc_with_ties'])} | "
                         f"{_f(e['parse_failure_rate'])} | {_f(e['swap_consistency'])} | {e['judgments']} |")  # fmt: skip
        lines += _grpo_gain(res["eval"])
    for name, p in res.get("policy", {}).items():
        lines += ["", f"## Policy GRPO: {name}", "", f"**{p['verdict']}** — GenRM reward "
                  f"{_f(p['reward_trend']['first'])} → {_f(p['reward_trend']['last'])}, gold rate "
                  f"{_f(p['gold_trend']['first'])} → {_f(p['gold_trend']['last'])}", "",
                  "| step | GenRM reward | gold rate | judge failed | parse failed | judge calls | verl padding rows |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for s, m in sorted(_int_keys(p["per_step"]).items()):
            lines.append(f"| {s} | {_f(m['mean_reward'])} | {_f(m['gold_rate'])} | {_f(m.get('judge_failed'))} | "
                         f"{_f(m.get('parse_failed'))} | {_f(m.get('judge_calls'))} | {m.get('padding_rows', '?')} |")  # fmt: skip
    if "bon" in res:
        b = res["bon"]
        ns = sorted(int(n) for n in b["pick"])
        lines += ["", f"## Best-of-N (knockout, both orders; {b['prompts']} prompts): gold accuracy", "",
                  "| N | GenRM pick | first sample | random (expected) | oracle |", "|---|---|---|---|---|"]  # fmt: skip
        for n in ns:
            row = [b[k].get(n, b[k].get(str(n))) for k in ("pick", "first", "random", "oracle")]
            lines.append(f"| {n} | " + " | ".join(_f(v) for v in row) + " |")
    lines += [""] + [f"![{img}]({img})" for img in images]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _grpo_gain(evals: dict[str, Any]) -> list[str]:
    """What GenRM GRPO added over its SFT start, on the served eval (the issue's "SFT+GRPO above SFT")."""
    if not {"sft", "sft_grpo"} <= set(evals):
        return []
    d = {k: evals["sft_grpo"][k] - evals["sft"][k] for k in ("acc_no_ties", "acc_with_ties")}
    return ["", f"GenRM GRPO over its SFT start: {d['acc_no_ties']:+.3f} without ties, {d['acc_with_ties']:+.3f} "
            "with ties."]  # fmt: skip


def _probe_line(what: str, probe: dict[str, Any] | None) -> list[str]:
    """The server-free held-out check (greedy and sampled traces, both orders) as one report paragraph."""
    if not probe:
        return []
    return ["", f"{what}, greedy traces on the held-out pairs in both orders ({probe['judgments']} judgments, "
            f"strict parse, `omni_rl.learn.probe.verdict_accuracy`): accuracy {_f(probe['accuracy'])}, without ties "
            f"{_f(probe['accuracy_no_tie'])}; predictions {probe['predictions']}; accuracy of "
            f"{probe.get('samples', '?')} samples per judgment at temperature 1 (what GRPO's groups see), by gold "
            f"label: {probe.get('sampled_accuracy', 'not measured')}."]  # fmt: skip
