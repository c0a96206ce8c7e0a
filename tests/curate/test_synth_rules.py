"""Agreement rules and the resumable store, on hand-made records (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omni_rl.curate.synth.calls import StepStore, StoreError
from omni_rl.curate.synth.config import CandidateConfig, RulesConfig, SynthConfig, check_config, pair_names
from omni_rl.curate.synth.rules import decide, length_only, winner_of
from omni_rl.utils.config import load_config

TEXTS = {"chosen": "Paris is the capital of France.", "rejected": "It is Lyon."}


def rec(verdict: str | None, failure: str = "ok", ok: bool = True, p_a: float | None = None) -> dict:
    """A stored judgement as judge_order writes it."""
    return {"ok": ok, "verdict": verdict, "failure": failure, "p_a": p_a, "soft": p_a is not None}


@pytest.mark.parametrize(
    ("ab", "ba", "action", "reason", "winner"),
    [
        (rec("A"), rec("B"), "keep", "agree", "chosen"),
        (rec("B"), rec("A"), "flip", "teacher_prefers_rejected", "rejected"),
        (rec("A"), rec("A"), "drop", "position_bias", None),
        (rec("B"), rec("B"), "drop", "position_bias", None),
        (rec("tie"), rec("tie"), "drop", "tie", None),
        (rec("A"), rec("tie"), "drop", "unsure", None),
        (rec(None, "parse"), rec("B"), "drop", "unparsable", None),
        (rec(None, "truncated"), rec("B"), "drop", "truncated", None),
        (rec(None, "transport", ok=False), rec("B"), "drop", "teacher_failure", None),
        (None, rec("B"), "drop", "teacher_failure", None),
    ],
)
def test_decide(ab: dict | None, ba: dict, action: str, reason: str, winner: str | None) -> None:
    d = decide(ab, ba, TEXTS, RulesConfig())
    assert (d.action, d.reason, d.winner) == (action, reason, winner)


def test_failures_never_become_labels() -> None:
    """Whatever the other order says, a failed order drops the pair."""
    for bad in (rec(None, "parse"), rec(None, "truncated"), rec(None, "transport", ok=False), None):
        for good in (rec("A"), rec("B"), rec("tie")):
            assert decide(bad, good, TEXTS, RulesConfig()).action == "drop"
            assert decide(good, bad, TEXTS, RulesConfig()).action == "drop"


def test_rule_options() -> None:
    one = RulesConfig(agreement="one")
    assert decide(rec("A"), rec("tie"), TEXTS, one).action == "keep"
    assert decide(rec("tie"), rec("A"), TEXTS, one).action == "flip"  # BA's A is the presumed-rejected one
    assert (
        decide(rec("B"), rec("A"), TEXTS, RulesConfig(on_disagree="drop")).reason
        == "teacher_prefers_rejected"
    )
    # vote margin: one decisive order + a tie = 0.5 < 0.6
    low = decide(rec("A"), rec("tie"), TEXTS, RulesConfig(agreement="one", min_margin=0.6))
    assert (low.action, low.reason, low.margin) == ("drop", "low_margin", 0.5)
    # soft margin: P(chosen) = (0.7 + (1 - 0.4)) / 2 = 0.65 -> margin 0.3
    soft = decide(rec("A", p_a=0.7), rec("B", p_a=0.4), TEXTS, RulesConfig(min_margin=0.2))
    assert soft.action == "keep" and soft.margin == pytest.approx(0.3)
    assert (
        decide(rec("A", p_a=0.7), rec("B", p_a=0.4), TEXTS, RulesConfig(min_margin=0.31)).reason
        == "low_margin"
    )


def test_length_guard() -> None:
    short = "The capital of France is Paris."
    padded = short + " " + " ".join(["Indeed, the capital of France is Paris."] * 3)
    rules = RulesConfig(length_guard=True)
    assert length_only(padded, short, rules)
    assert not length_only(
        "Completely different words here, many many more of them than before.", "Paris.", rules
    )
    texts = {"chosen": padded, "rejected": short}
    assert decide(rec("A"), rec("B"), texts, rules).reason == "length_only"
    assert decide(rec("A"), rec("B"), texts, RulesConfig()).action == "keep"  # guard off by default


def test_winner_of() -> None:
    assert [winner_of(v, "AB") for v in ("A", "B", "tie", None)] == ["chosen", "rejected", "tie", None]
    assert [winner_of(v, "BA") for v in ("A", "B")] == ["rejected", "chosen"]


def test_store_torn_tail_duplicates_and_retry(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    s = StepStore(path)
    s.load()
    s.append({"key": "k1", "ok": False, "failure": "transport"})
    s.append({"key": "k1", "ok": True, "text": "x"})
    s.append({"key": "k1", "ok": True, "text": "second success, ignored"})
    s.append({"key": "k2", "ok": True, "text": "y"})
    s.close()
    with path.open("ab") as f:
        f.write(b'{"key": "k3", "ok": tr')  # a kill mid-write
    s = StepStore(path)
    stats = s.load()
    assert (stats.lines, stats.ok, stats.duplicates, stats.torn_tail_bytes) == (
        4,
        2,
        1,
        len(b'{"key": "k3", "ok": tr'),
    )
    assert s.records["k1"]["text"] == "x" and "k3" not in s.records
    assert path.read_bytes().endswith(b"\n")
    assert s.done("k1", retry_failed=True)["text"] == "x"
    s.append({"key": "k4", "ok": False})
    assert s.done("k4", retry_failed=True) is None and s.done("k4", retry_failed=False) is not None
    s.close()
    path.write_text('{"key": "a", "ok": true}\nnot json\n{"key": "b", "ok": true}\n')
    with pytest.raises(StoreError, match="line 2"):
        StepStore(path).load()


def test_config_candidates_pairing_and_checks() -> None:
    over = [
        "input=x.jsonl",
        "base_url=http://127.0.0.1:1/v1",
        "candidates.strong.model=s",
        "candidates.weak.model=w",
    ]
    cfg = load_config(SynthConfig, [*over, "teacher.model=t", "+candidates.mid.model=m", "+candidates.mid.rank=1",
                                    "candidates.weak.rank=2"], "synth")  # fmt: skip
    check_config(cfg)
    assert cfg.candidates["mid"].base_url == "http://127.0.0.1:1/v1"
    assert pair_names(cfg) == [("strong", "mid"), ("strong", "weak"), ("mid", "weak")]
    cfg.pairing = "adjacent"
    assert pair_names(cfg) == [("strong", "mid"), ("mid", "weak")]
    cfg.pairing = "first_vs_rest"
    assert pair_names(cfg) == [("strong", "mid"), ("strong", "weak")]
    with pytest.raises(SystemExit, match=r"teacher\.base_url"):
        check_config(
            SynthConfig(
                input="x", candidates={"a": CandidateConfig("u", "a"), "b": CandidateConfig("u", "b")}
            )
        )
    with pytest.raises(SystemExit, match="at least two candidates"):
        check_config(load_config(SynthConfig, ["input=x", "candidates.strong.model=s"], "synth"))
    with pytest.raises(SystemExit, match=r"rules\.on_disagree"):
        check_config(load_config(SynthConfig, [*over, "teacher.model=t", "rules.on_disagree=maybe"], "synth"))
    assert json.dumps(str(cfg)).count("OMNI_RL_SYNTH_API_KEY") >= 1  # the config holds env var names only
