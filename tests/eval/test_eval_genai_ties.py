"""GenAI-Bench-Video: the benchmark's four-class tie protocol beside the merged one, each labelled in report.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omni_rl.eval import cli
from omni_rl.eval.cli import DataConfig, EvalConfig, evaluate
from omni_rl.eval.judges import Judgment

VOTES = ["leftvote"] * 4 + ["rightvote"] * 3 + ["tievote"] * 2 + ["bothbad_vote"] * 3


class SaysTie:
    """Answers tie when the prompt asks about rain, else picks A: a judge that never says both-bad."""

    pointwise = False
    name = "says-tie"

    def describe(self) -> dict[str, Any]:
        return {"type": "says_tie"}

    def check(self, pair: Any) -> None:
        return None

    async def judge(self, op: Any, sample: int) -> Judgment:
        v = "tie" if "rain" in op.pair.prompt else "A"
        return Judgment(verdict=v, format_ok=True, text=v)

    async def aclose(self) -> None:
        return None


def test_four_class_and_merged_protocols(tmp_path: Path, stand_in, monkeypatch) -> None:
    monkeypatch.setattr(cli, "build_judge", lambda _cfg: SaysTie())
    rows = [{"id": f"g{i}", "prompt": "rain on a lake" if v in ("tievote", "bothbad_vote") else f"a cat {i}",
             "video_left": f"videos/{i}_l.mp4", "video_right": f"videos/{i}_r.mp4", "vote_type": v}
            for i, v in enumerate(VOTES)]  # fmt: skip
    root = stand_in([r[k] for r in rows for k in ("video_left", "video_right")])
    path = tmp_path / "genai_bench_video.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = evaluate(EvalConfig(data=DataConfig(loader="genai_bench_video", path=str(path), media_root=str(root)),
                                 order="chosen_first", out_dir=str(tmp_path / "o"), progress=False))  # fmt: skip
    tp = report["metrics"]["tie_protocols"]
    # decisive: chosen is always A here, the judge says A → 7 right; ties: 2 tie votes right (tie verdict),
    # 3 both-bad votes wrong under four classes (the judge cannot say both-bad), right when merged.
    assert tp["four_class"]["acc"] == pytest.approx(9 / 12)
    assert tp["merged"]["acc"] == pytest.approx(12 / 12)
    assert tp["four_class"]["votes"] == {"decisive": 7, "tie": 2, "bothbad": 3}
    assert tp["no_ties"]["acc"] == 1.0 and "never answered both-bad" in tp["four_class"]["note"]
    md = (tmp_path / "o" / "report.md").read_text()
    assert "## how ties were scored" in md and "four-class (benchmark)" in md
    assert "merged protocol (not the benchmark's): tie and both-bad votes scored as one tie class" in md
    assert report["metrics"]["headline"]["bars"]["four-class (benchmark)"] == pytest.approx(0.75)
    assert "acc_plus" not in report["metrics"]
