"""The synthetic judge task: its gold rule, its balance (position, length, ties), and that the project's own
`omni-rl data prepare` turns it into swap-balanced GRPO rows whose labels agree with the gold rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from omni_rl.judge.parse import parse_verdict
from omni_rl.learn.synthetic import (
    CRITERIA,
    GOOD_WORDS,
    TEMPLATE,
    TaskSpec,
    gold_label,
    satisfies,
    teacher_trace,
    write_task,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def task(tiny_text_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("task")
    write_task(
        out, AutoTokenizer.from_pretrained(tiny_text_model), TaskSpec(n_train=400, n_heldout=200, n_policy=20)
    )
    return out


def _rows(task: Path, split: str) -> list[dict]:
    return [json.loads(x) for x in (task / f"pairs_{split}.jsonl").read_text().splitlines()]


def test_gold_rule_is_whole_words() -> None:
    assert satisfies("a b dog c") and satisfies("Bread.") and not satisfies("dogma hotdogs")
    assert gold_label("x fox", "y z") == "A" and gold_label("q", "salt") == "B"
    assert gold_label("tree", "water") == "tie" and gold_label("a", "b") == "tie"


def test_pairs_follow_the_rule_and_are_balanced(task: Path) -> None:
    stats = json.loads((task / "task.json").read_text())
    rows = _rows(task, "train")
    for r in rows:
        label = gold_label(r["response1"], r["response2"])
        assert label == {"response1": "A", "response2": "B", "tie": "tie"}[r["criteria_preference"]], r
    kinds = stats["splits"]["train"]["kinds"]
    assert (
        kinds["tie_good"] > 0
        and kinds["tie_bad"] > 0
        and 0.2 < (kinds["tie_good"] + kinds["tie_bad"]) / 400 < 0.4
    )
    # length-matched: same token count per pair by construction, and close character lengths on average
    s = stats["splits"]["train"]
    assert abs(s["mean_chars_chosen"] - s["mean_chars_rejected"]) < 1.5
    assert all(r["kind"] == "decisive" for r in _rows(task, "policy"))


def test_length_and_position_do_not_answer(task: Path) -> None:
    """A judge that picks the longer response, or always A, stays near chance on decisive held-out pairs."""
    decisive = [r for r in _rows(task, "heldout") if r["criteria_preference"] != "tie"]
    longer = sum(
        (len(r["response1"]) >= len(r["response2"])) == (r["criteria_preference"] == "response1")
        for r in decisive
    ) / len(decisive)
    assert 0.3 < longer < 0.7, longer


def test_sft_traces_are_strict_verdicts_from_a_noisy_teacher(task: Path) -> None:
    import random

    rows = pq.read_table(task / "sft" / "train.parquet").to_pylist()
    assert len(rows) == 400
    for r in rows[:50]:
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["system", "user", "assistant"]
        v = parse_verdict(r["messages"][-1]["content"], "strict")
        assert v.format_ok and v.verdict in ("A", "B", "tie")
        assert "[Response A]" in r["messages"][1]["content"]
    acc = json.loads((task / "task.json").read_text())["sft"]["teacher_accuracy"]
    assert 0.5 < acc < 0.7  # TaskSpec default 0.6
    rng = random.Random(0)
    assert all(teacher_trace("A", rng, 1.0)[0] == "A" for _ in range(20))
    assert all(teacher_trace("A", rng, 0.0)[0] != "A" for _ in range(20))


def test_a_tie_blind_teacher_names_a_side_on_ties() -> None:
    import random

    rng = random.Random(0)
    sides = [teacher_trace("tie", rng, 1.0, tie_recall=0.0)[0] for _ in range(200)]
    assert set(sides) == {"A", "B"}  # never "tie", and both sides
    assert [teacher_trace("tie", rng, 1.0, tie_recall=1.0)[0] for _ in range(20)] == ["tie"] * 20
    assert all(
        teacher_trace("B", rng, 1.0, tie_recall=0.0)[0] == "B" for _ in range(20)
    )  # decisive untouched
    with pytest.raises(ValueError, match="teacher_tie_recall"):
        TaskSpec(teacher_tie_recall=1.5).check()


def test_data_prepare_exports_swap_balanced_rows(task: Path, tmp_path: Path) -> None:
    """`omni-rl data prepare` with the compact template: A/B balanced, labels match the gold rule as shown."""
    out = tmp_path / "genrm"
    cmd = [sys.executable, "-m", "omni_rl.cli", "data", "prepare", "loader=omni_rewardbench",
           f"path={task / 'pairs_train.jsonl'}", f"out_dir={out}", f"template={TEMPLATE}", "progress=false"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = pq.read_table(out / "train.parquet").to_pylist()
    labels = [r["reward_model"]["ground_truth"] for r in rows]
    assert abs(labels.count("A") - labels.count("B")) <= 2 and labels.count("tie") > 0
    for r in rows[:100]:
        user = r["prompt"][-1]["content"]
        a = user.split("[Response A]", 1)[1].split("[End A]", 1)[0]
        b = user.split("[Response B]", 1)[1].split("[End B]", 1)[0]
        assert gold_label(a, b) == r["reward_model"]["ground_truth"]
    assert CRITERIA in rows[0]["prompt"][0]["content"]  # the criteria reach the judge's system prompt
    assert not any(w in rows[0]["prompt"][0]["content"] for w in GOOD_WORDS)  # ... without giving the words


def test_sft_loss_floors_separate_content_blind_from_content_use(tiny_text_model: Path, task: Path) -> None:
    """The floors the chain's report prints beside the SFT loss: a perfect teacher leaves only the blind one."""
    from transformers import AutoTokenizer

    from omni_rl.learn.synthetic import sft_loss_floors, sft_rows

    rows = _rows(task, "train")
    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    noisy = json.loads((task / "task.json").read_text())["sft"]["loss_floor"]
    assert 0.0 < noisy["content_perfect"] < noisy["content_blind"]
    assert (
        8 <= noisy["response_tokens"] <= 16
    )  # "<think>X contains it</think><answer>X</answer>" + end tokens
    exact = sft_loss_floors(sft_rows(rows, TaskSpec(teacher_accuracy=1.0)), tok)
    assert exact["content_perfect"] == 0.0
    assert abs(exact["verdict_entropy_content_blind"] - 1.0986) < 0.05  # three near-balanced labels: ~ln 3
