"""A synthetic preference task with a known gold rule, so "does the chain learn?" has a checkable answer.

Gold rule: a response is good when it contains one of `GOOD_WORDS` (as a whole word). A pair is
decisive when exactly one response is good, a tie when both or neither are. The task is built so that
nothing but the content answers it:

- responses are random vocabulary tokens of the judge's own tokenizer (the same kind of text a random
  tiny policy writes, so the GenRM trained here can later judge that policy's samples);
- both responses of a pair have the same number of tokens (length-matched);
- the A/B order is decided by `omni-rl data prepare` (seeded, 50 % A per block), never by the source;
- a share of pairs are ties (label `tie`): both good or both bad.

Files (all read by the project's own commands): `pairs_{train,heldout,policy}.jsonl` in the
Omni-RewardBench row format (`omni-rl data prepare loader=omni_rewardbench`, `omni-rl eval`,
`omni-rl data policy-prompts`), and `sft/train.parquet` (verl SFT `messages`: the judge prompt plus a
rationale+verdict trace from a teacher that is right with probability `teacher_accuracy`).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omni_rl.data.schema import Media, PreferencePair, Response

GOOD_WORDS = ("bread", "flour", "yeast", "salt", "water", "tree", "dog", "fox")
GOLD_RE = re.compile(r"\b(?:" + "|".join(GOOD_WORDS) + r")\b", re.IGNORECASE)
# The criteria do not list GOOD_WORDS: with the words in every system prompt, the tiny judge's "find a good
# word" attention also hits the prompt itself, and in 240 plain-PyTorch SFT steps it stayed content-blind.
# The rule is learned from the traces, which is what the chain sets out to show.
CRITERIA = "a response with a good word is better; both or neither is a tie"
TEMPLATE = str(Path(__file__).with_name("templates") / "judge_compact.yaml")
SOURCE = "synthetic_words"
LABELS = ("A", "B", "tie")
_BAD_CHARS = set("<>[]|{}\n\r\t\\`\ufffd")


def satisfies(text: str) -> bool:
    """The gold rule: the text contains one of GOOD_WORDS as a whole word."""
    return bool(GOLD_RE.search(text or ""))


def gold_label(a: str, b: str) -> str:
    """The gold verdict for responses shown as A and B."""
    ga, gb = satisfies(a), satisfies(b)
    return "tie" if ga == gb else ("A" if ga else "B")


@dataclass(frozen=True)
class TaskSpec:
    """Sizes and knobs of one generated task (all seeded: the same spec gives the same files)."""

    seed: int = 0
    n_train: int = 1024
    n_heldout: int = 200
    n_policy: int = 64
    tie_fraction: float = 0.3
    min_tokens: int = 6
    max_tokens: int = 10
    prompt_tokens: int = 3
    teacher_accuracy: float = 0.6  # the SFT teacher's verdict is right this often, else a wrong label
    # on a tie pair the teacher says "tie" this often, else it names a random side: a distilled teacher that
    # under-calls ties, which the human labels GenRM GRPO trains on then correct
    teacher_tie_recall: float = 1.0

    def check(self) -> None:
        """Reject sizes that cannot make a usable task, naming the field."""
        if not 0.0 <= self.tie_fraction < 1.0:
            raise ValueError(f"tie_fraction must be in [0, 1), got {self.tie_fraction}")
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise ValueError(f"need 1 <= min_tokens <= max_tokens, got {self.min_tokens}, {self.max_tokens}")
        for name in ("teacher_accuracy", "teacher_tie_recall"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


class TokenSampler:
    """Draws response texts from a tokenizer's plain vocabulary; good words are inserted as whole words."""

    def __init__(self, tokenizer: Any, rng: random.Random) -> None:
        self.tok = tokenizer
        self.rng = rng
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        special |= set(tokenizer.get_added_vocab().values())
        self.filler: list[int] = []
        for tid in range(len(tokenizer)):
            if tid in special:
                continue
            text = tokenizer.decode([tid])
            printable = text.replace(" ", "").isprintable()
            if text.strip() and printable and not (set(text) & _BAD_CHARS) and not satisfies(text):
                self.filler.append(tid)
        self.good_ids = {w: tokenizer.encode(" " + w, add_special_tokens=False) for w in GOOD_WORDS}
        if len(self.filler) < 50:
            raise ValueError(f"tokenizer has only {len(self.filler)} plain tokens; cannot build the task")

    def text(self, n: int, good: bool, near_chars: int | None = None, tries: int = 16) -> str:
        """A text of `n` tokens, good exactly when `good`; with `near_chars`, the closest in length of `tries`."""
        if near_chars is None:
            return self._draw(n, good)
        cands = [self._draw(n, good) for _ in range(tries)]
        return min(cands, key=lambda t: abs(len(t) - near_chars))

    def _draw(self, n: int, good: bool) -> str:
        """One text of `n` tokens with the requested gold value (resampled until so)."""
        for _ in range(1000):
            ids = [self.rng.choice(self.filler) for _ in range(n)]
            if good:
                pos = self.rng.randrange(n)
                ids[pos : pos + 1] = self.good_ids[self.rng.choice(GOOD_WORDS)]
            text = self.tok.decode(ids).strip()
            if satisfies(text) == good:
                return text
        raise RuntimeError("could not draw a response with the requested gold value in 1000 tries")


def make_pair(sampler: TokenSampler, spec: TaskSpec, index: int, split: str) -> dict[str, Any]:
    """One Omni-RewardBench-format row; policy rows are always decisive (the chosen one is the reference)."""
    rng = sampler.rng
    n = rng.randint(spec.min_tokens, spec.max_tokens)
    kind = "decisive"
    if split != "policy" and rng.random() < spec.tie_fraction:
        kind = rng.choice(("tie_good", "tie_bad"))
    good_first = {"decisive": True, "tie_good": True, "tie_bad": False}[kind]
    good_second = kind == "tie_good"
    chosen = sampler.text(n, good_first)
    rejected = sampler.text(n, good_second, near_chars=len(chosen))  # length-matched in characters too
    first_is_chosen = rng.random() < 0.5  # source order only; the exporter re-orders A/B itself
    r1, r2 = (chosen, rejected) if first_is_chosen else (rejected, chosen)
    label = "tie" if kind != "decisive" else ("response1" if first_is_chosen else "response2")
    prompt = "Reply to: " + sampler.tok.decode(
        [rng.choice(sampler.filler) for _ in range(spec.prompt_tokens)]
    )
    return {
        "id": f"{split}-{index}",
        "task": "t2t",
        "prompt": prompt.strip(),
        "response1": r1,
        "response2": r2,
        "criteria": CRITERIA,
        "criteria_preference": label,
        "kind": kind,
        "n_tokens": n,
    }


def teacher_trace(
    label: str, rng: random.Random, accuracy: float, tie_recall: float = 1.0
) -> tuple[str, str]:
    """(verdict, rationale+verdict trace) of a teacher right with probability `accuracy` that calls a tie
    only with probability `tie_recall` (else a random side)."""
    if label == "tie" and rng.random() >= tie_recall:
        verdict = rng.choice(("A", "B"))
    else:
        verdict = label if rng.random() < accuracy else rng.choice([x for x in LABELS if x != label])
    reason = {"A": "A contains it", "B": "B contains it", "tie": "the same"}[verdict]
    return verdict, f"<think>{reason}</think><answer>{verdict}</answer>"


def to_pair(row: dict[str, Any]) -> PreferencePair:
    """The schema pair of a generated row (what the omni_rewardbench loader would build)."""
    pref = row["criteria_preference"]
    r1, r2 = Response(row["response1"]), Response(row["response2"])
    chosen, rejected = (r2, r1) if pref == "response2" else (r1, r2)
    return PreferencePair(
        id=row["id"],
        task="t2t",
        prompt=row["prompt"],
        prompt_media=Media(),
        chosen=chosen,
        rejected=rejected,
        tie=pref == "tie",
        criteria=row["criteria"],
        source=SOURCE,
    )


def sft_rows(rows: list[dict[str, Any]], spec: TaskSpec, template: str = TEMPLATE) -> list[dict[str, Any]]:
    """verl SFT rows (`messages`): judge prompt in a balanced A/B order + the teacher's trace."""
    from omni_rl.data.export import BlockBalancer
    from omni_rl.prompts import render_judge_messages

    rng = random.Random(spec.seed + 7)
    balancer = BlockBalancer(spec.seed + 11)
    out = []
    for row in rows:
        pair = to_pair(row)
        op = pair.ordered(balancer.swap(("train", "tie" if pair.tie else "t2t")))
        jp = render_judge_messages(op, template)
        verdict, trace = teacher_trace(op.label, rng, spec.teacher_accuracy, spec.teacher_tie_recall)
        messages = [*jp.messages, {"role": "assistant", "content": trace}]
        out.append({"messages": messages, "label": op.label, "teacher": verdict, "id": pair.id})
    return out


def write_task(out_dir: str | Path, tokenizer: Any, spec: TaskSpec | None = None) -> dict[str, Any]:
    """Generate every split and the SFT parquet under `out_dir`; returns (and writes) task.json stats."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = spec or TaskSpec()
    spec.check()
    out = Path(out_dir)
    (out / "sft").mkdir(parents=True, exist_ok=True)
    sampler = TokenSampler(tokenizer, random.Random(spec.seed))
    stats: dict[str, Any] = {"spec": asdict(spec), "good_words": list(GOOD_WORDS), "splits": {}}
    splits = {"train": spec.n_train, "heldout": spec.n_heldout, "policy": spec.n_policy}
    generated: dict[str, list[dict[str, Any]]] = {}
    for split, n in splits.items():
        rows = [make_pair(sampler, spec, i, split) for i in range(n)]
        generated[split] = rows
        path = out / f"pairs_{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        stats["splits"][split] = split_stats(rows)
    sft = sft_rows(generated["train"], spec)
    pq.write_table(
        pa.Table.from_pylist([{"messages": r["messages"]} for r in sft]), out / "sft" / "train.parquet"
    )
    stats["sft"] = {
        "rows": len(sft),
        "teacher_accuracy": sum(r["teacher"] == r["label"] for r in sft) / max(1, len(sft)),
        "labels": dict(Counter(r["label"] for r in sft)),
        "loss_floor": sft_loss_floors(sft, tokenizer),
    }
    (out / "task.json").write_text(json.dumps(stats, indent=2))
    return stats


def sft_loss_floors(sft: list[dict[str, Any]], tokenizer: Any) -> dict[str, float]:
    """The mean per-token SFT loss a content-blind judge and a content-perfect one can reach on these traces.

    Only the first verdict token of a trace carries information (the rest follows from it), so the loss a
    model reaches over the whole response is that token's entropy divided by the response's token count:
    `content_blind` predicts the teacher's verdict marginal, `content_perfect` knows the gold label and only
    pays for the teacher's mistakes. An SFT loss at `content_blind` means the model has not used the pair.
    """
    n_resp = []
    for r in sft:
        prompt = tokenizer.apply_chat_template(r["messages"][:-1], tokenize=True, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(r["messages"], tokenize=True)
        n_resp.append(len(_ids(full)) - len(_ids(prompt)))
    mean_tokens = sum(n_resp) / max(1, len(n_resp))
    blind = _entropy(Counter(r["teacher"] for r in sft).values())
    given: dict[str, Counter] = {}
    for r in sft:
        given.setdefault(r["label"], Counter())[r["teacher"]] += 1
    perfect = sum(sum(c.values()) * _entropy(c.values()) for c in given.values()) / max(1, len(sft))
    return {
        "response_tokens": mean_tokens,
        "verdict_entropy_content_blind": blind,
        "verdict_entropy_content_perfect": perfect,
        "content_blind": blind / max(mean_tokens, 1e-9),
        "content_perfect": perfect / max(mean_tokens, 1e-9),
    }


def _ids(encoded: Any) -> list[int]:
    """Token ids from apply_chat_template's return (a list, or a BatchEncoding in newer transformers)."""
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def _entropy(counts: Any) -> float:
    """Entropy in nats of a distribution given by counts."""
    import math

    counts = [c for c in counts if c]
    n = sum(counts)
    return -sum(c / n * math.log(c / n) for c in counts) if n else 0.0


def split_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts that show the task is balanced: kinds, source labels, token and char lengths by side."""
    chosen_chars, rejected_chars = [], []
    for r in rows:
        pair = to_pair(r)
        chosen_chars.append(len(pair.chosen.text))
        rejected_chars.append(len(pair.rejected.text))
    n = max(1, len(rows))
    return {
        "rows": len(rows),
        "kinds": dict(Counter(r["kind"] for r in rows)),
        "source_labels": dict(Counter(r["criteria_preference"] for r in rows)),
        "mean_chars_chosen": sum(chosen_chars) / n,
        "mean_chars_rejected": sum(rejected_chars) / n,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m omni_rl.learn.synthetic OUT_DIR [TOKENIZER_DIR] [key=value ...]` writes the task files."""
    import sys

    from transformers import AutoTokenizer

    args = list(sys.argv[1:] if argv is None else argv)
    pos = [a for a in args if "=" not in a]
    kv = dict(a.split("=", 1) for a in args if "=" in a)
    out = pos[0] if pos else "data/learn"
    tok_dir = pos[1] if len(pos) > 1 else ".cache/tiny-models/tiny-qwen2"
    types = {f: type(v) for f, v in asdict(TaskSpec()).items()}
    unknown = sorted(set(kv) - set(types))
    if unknown:
        raise SystemExit(f"unknown TaskSpec keys {unknown}; valid: {sorted(types)}")
    spec = TaskSpec(**{k: types[k](v) for k, v in kv.items()})
    stats = write_task(out, AutoTokenizer.from_pretrained(tok_dir), spec)
    print(json.dumps({k: stats[k] for k in ("splits", "sft")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
