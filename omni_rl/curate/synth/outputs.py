"""Synth outputs, rebuilt from the step stores in input order: pairs, SFT traces, rejects.

- `pairs.jsonl`: one `PreferencePair.to_dict()` per kept or flipped pair, media paths relative to the
  run's media root (`omni-rl data prepare loader=preference_pairs media_root=<same root>` reads it);
- `sft.parquet`: verl SFT rows (`messages` = the judge prompt the teacher saw + its rationale,
  `images`/`videos` when any row has them), only strictly formatted traces whose verdict is the label;
- `rejects.jsonl`: every input row, call, pair and judgement that did not become output, with its reason.
Because every output is a pure function of the stores, a killed-and-resumed run writes the same files.

Stats (`step_counts`, `agreement`, ..., `to_markdown`): synth stats: counts per step, agreement rates, label balance, lengths, and calls/tokens per endpoint.

Everything except the `this_run` section is computed from the stores, so a resumed run reports the
same figures as an uninterrupted one; `this_run` holds what this process did (client counters, calls
reused from the stores, torn lines cut) and is where a resume shows.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from omni_rl.curate.synth.config import SynthPrompt
from omni_rl.curate.synth.rules import Decision, winner_of
from omni_rl.data.loaders.base import Reject
from omni_rl.data.schema import Media, OrderedPair, PreferencePair

_SFT_MEDIA = ("images", "videos")  # verl's SFT dataset reads these two; audio rows cannot be traces


@dataclass
class SynthPair:
    """One candidate pair of one prompt: the presumed pair (or why none), its judgements and decision."""

    prompt: SynthPrompt
    names: tuple[str, str]  # (presumed chosen, presumed rejected)
    pair: PreferencePair | None = None
    skip: str | None = None  # why no pair was formed
    judgements: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # order -> record
    decision: Decision | None = None


def relative_media(media: Media, root: Path) -> Media:
    """Media paths relative to `root` when under it (what a loader resolves against media_root)."""
    base = os.path.normpath(os.path.abspath(root))

    def rel(p: str) -> str:
        full = os.path.normpath(os.path.abspath(p))
        return os.path.relpath(full, base) if full.startswith(base.rstrip(os.sep) + os.sep) else full

    return Media(*([rel(p) for p in getattr(media, k)] for k in ("images", "videos", "audios")))


def final_pair(o: SynthPair, media_root: Path, teacher_model: str) -> PreferencePair:
    """The output pair: chosen/rejected as the teacher decided, provenance in meta."""
    assert o.pair is not None and o.decision is not None
    flipped = o.decision.action == "flip"
    chosen, rejected = (o.pair.rejected, o.pair.chosen) if flipped else (o.pair.chosen, o.pair.rejected)
    names = o.names[::-1] if flipped else o.names
    verdicts = {k: (v or {}).get("verdict") for k, v in o.judgements.items()}
    meta = {
        "chosen_model": names[0], "rejected_model": names[1], "flipped": flipped,
        "margin": o.decision.margin, "teacher": teacher_model, "teacher_verdicts": verdicts,
        **{k: v for k, v in o.prompt.meta.items() if k not in ("chosen_model", "rejected_model")},
    }  # fmt: skip
    return replace(
        o.pair, id=f"{o.prompt.id}:{names[0]}>{names[1]}", prompt_media=relative_media(o.pair.prompt_media, media_root),
        chosen=chosen, rejected=rejected, meta=meta,
    )  # fmt: skip


def write_pairs(outcomes: list[SynthPair], path: Path, media_root: Path, teacher_model: str) -> int:
    """pairs.jsonl (rewritten whole, atomically); returns the number of pairs."""
    kept = [final_pair(o, media_root, teacher_model) for o in outcomes if _kept(o)]
    _write_atomic(path, "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in kept))
    return len(kept)


def _kept(o: SynthPair) -> bool:
    return o.decision is not None and o.decision.action in ("keep", "flip")


def sft_rows(outcomes: list[SynthPair], template: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One verl SFT row per strictly formatted trace whose verdict names the decided winner."""
    rows: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for o in (o for o in outcomes if _kept(o)):
        assert o.pair is not None and o.decision is not None
        for order, rec in o.judgements.items():
            why = _sft_skip(o, order, rec)
            if why:
                skipped[why] = skipped.get(why, 0) + 1
                continue
            assert rec is not None
            prompt = _rendered(o.pair.ordered(swap=order == "BA"), template)
            messages = [*prompt.messages, {"role": "assistant", "content": rec["text"].strip()}]
            media = {k: [{k[:-1]: path} for path in getattr(prompt.media, k)] for k in _SFT_MEDIA}
            rows.append(
                {"messages": messages, **media, "id": f"{o.pair.id}:{order}", "verdict": rec["verdict"]}
            )
    return rows, skipped


def _sft_skip(o: SynthPair, order: str, rec: dict[str, Any] | None) -> str | None:
    """Why a kept pair's judgement cannot be an SFT trace (None: it can)."""
    assert o.decision is not None and o.pair is not None
    if rec is None or winner_of(rec.get("verdict"), order) != o.decision.winner:
        return "verdict_not_label"
    if not rec.get("format_ok"):
        return "not_strict_format"
    if o.pair.prompt_media.audios:
        return "audio_prompt"  # verl's SFT dataset has no audio column
    return None


def _rendered(op: OrderedPair, template: str) -> Any:
    """The judge prompt (placeholders + media) exactly as the pipeline renders it for the teacher."""
    from omni_rl.judge.pipeline import render_neutralised

    return render_neutralised(op, template)


def write_sft(rows: list[dict[str, Any]], path: Path) -> None:
    """sft.parquet: messages, the media columns some row uses (verl wants a processor for any), id.

    verl's SFT dataset hands each item to `process_image` / `process_video`, which take
    `{"image": path}` / `{"video": path}` dicts (not bare paths, unlike the RL dataset).
    """
    used = [k for k in _SFT_MEDIA if any(r[k] for r in rows)]
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    fields = [
        ("messages", pa.list_(message)),
        *((k, pa.list_(pa.struct([(k[:-1], pa.string())]))) for k in used),
    ]
    schema = pa.schema([*fields, ("id", pa.string()), ("verdict", pa.string())])
    table = pa.Table.from_pylist([{k: r[k] for k in schema.names} for r in rows], schema=schema)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def reject_lines(
    input_rejects: list[Reject], gens: list[dict[str, Any]], outcomes: list[SynthPair]
) -> list[dict]:
    """Every dropped thing with its step and reason, in input order."""
    lines: list[dict[str, Any]] = []
    for r in input_rejects:
        lines.append(
            {"step": "input", "id": r.row, "reason": "bad_row", "field": r.field, "detail": r.reason}
        )
    for g in gens:
        if not g.get("ok"):
            lines.append({"step": "generate", "id": g["prompt_id"], "candidate": g["candidate"],
                          "reason": g.get("failure"), "detail": g.get("error")})  # fmt: skip
    for o in outcomes:
        pid = o.pair.id if o.pair else f"{o.prompt.id}:{o.names[0]}>{o.names[1]}"
        if o.skip:
            lines.append({"step": "pair", "id": pid, "reason": o.skip})
        elif o.decision is not None and o.decision.action == "drop":
            lines.append({"step": "rules", "id": pid, "reason": o.decision.reason, **_judge_detail(o)})
    return lines


def _judge_detail(o: SynthPair) -> dict[str, Any]:
    """Per order: verdict, failure and a short excerpt of what the teacher wrote (or the error)."""
    out = {}
    for order, rec in o.judgements.items():
        rec = rec or {}
        excerpt = (rec.get("text") or rec.get("error") or "")[:300]
        out[order] = {"verdict": rec.get("verdict"), "failure": rec.get("failure"), "excerpt": excerpt}
    return {"teacher": out}


def write_jsonl(lines: list[dict[str, Any]], path: Path) -> None:
    """A whole jsonl file, atomically."""
    _write_atomic(path, "".join(json.dumps(x, ensure_ascii=False, default=str) + "\n" for x in lines))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


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
    n_prompts: int, n_rejects: int, gens: list[dict], outcomes: list[SynthPair]
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


def agreement(outcomes: list[SynthPair]) -> dict[str, Any]:
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


def endpoint_costs(gens: list[dict], outcomes: list[SynthPair], models: dict[str, str]) -> dict[str, Any]:
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
