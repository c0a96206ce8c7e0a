"""Stale caches: a changed benchmark row is re-judged, and a changed judge under the same name refuses to resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from omni_rl.data.loaders import load_pairs
from omni_rl.eval.cache import ResultCache
from omni_rl.eval.cli import DataConfig, EvalConfig, evaluate, main
from omni_rl.eval.fingerprint import item_hash, judge_identity
from omni_rl.eval.judges import Judgment
from omni_rl.eval.runner import JudgeChanged, run_judge


def _hh_rows(real_fixtures: Path, n: int) -> list[dict]:
    rows = [json.loads(x) for x in (real_fixtures / "hh_rlhf_pairs.jsonl").read_text().splitlines()]
    return [r for r in rows if r["answer_a"].strip() and r["answer_b"].strip()][:n]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class LongerWins:
    """A content-reading judge (the longer answer wins): its verdicts depend on what the rows say."""

    pointwise = False
    name = "longer-wins"

    def describe(self) -> dict[str, Any]:
        return {"type": "longer_wins"}

    def check(self, pair: Any) -> None:
        return None

    async def judge(self, op: Any, sample: int) -> Judgment:
        v = "A" if len(op.a.text) >= len(op.b.text) else "B"
        return Judgment(verdict=v, format_ok=True, text=v)

    async def aclose(self) -> None:
        return None


def test_flipped_labels_are_rejudged_not_reused(real_fixtures: Path, tmp_path: Path, monkeypatch) -> None:
    from omni_rl.eval import cli

    monkeypatch.setattr(cli, "build_judge", lambda _cfg: LongerWins())
    rows = _hh_rows(real_fixtures, 30)
    path = _write(tmp_path / "hh.jsonl", rows)

    def run(out: Path) -> dict:
        return evaluate(
            EvalConfig(data=DataConfig(loader="hh_rlhf", path=str(path)), out_dir=str(out), progress=False)
        )

    first = run(tmp_path / "same")
    flipped = [{**r, "label": 1 - r["label"]} if i % 3 == 0 else r for i, r in enumerate(rows)]  # 10 of 30
    _write(path, flipped)
    rerun = run(tmp_path / "same")
    fresh = run(tmp_path / "fresh")
    assert rerun["metrics"]["accuracy"] == fresh["metrics"]["accuracy"] != first["metrics"]["accuracy"]
    assert rerun["run"]["judged"] == 10 and rerun["run"]["resumed"] == 20
    assert rerun["run"]["changed_items_rejudged"] == 10
    # the cache keeps both lines of a changed item; a reload keeps the newer one
    cache = ResultCache(tmp_path / "same" / "cache.jsonl")
    st = cache.load()
    assert st.lines == 40 and st.superseded == 10 and st.records == 30


def test_item_hash_sees_text_label_and_media(tmp_path: Path, real_media: Path) -> None:
    pairs, _ = load_pairs("hh_rlhf", _write(tmp_path / "a.jsonl", [{"text_prompt": "q", "answer_a": "a",
                                                                   "answer_b": "b", "label": 0}]))  # fmt: skip
    p = pairs[0]
    h = item_hash(p)
    assert item_hash(p) == h
    p.chosen.text = "a!"
    assert item_hash(p) != h
    img = tmp_path / "x.jpg"
    img.write_bytes((real_media / "1.jpg").read_bytes())
    p.prompt_media.images = [str(img)]
    h2 = item_hash(p)
    img.write_bytes((real_media / "2.jpg").read_bytes())  # same path, new picture
    assert item_hash(p) != h2


class FolderJudge:
    """A judge whose weights live in a local folder (like a scalar RM checkpoint) and whose name never changes."""

    pointwise = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = "ckpt-judge"

    def describe(self) -> dict[str, Any]:
        return {"type": "test", "path": str(self.folder)}

    def check(self, pair: Any) -> None:
        return None

    async def judge(self, op: Any, sample: int) -> Judgment:
        return Judgment(verdict="A", format_ok=True, text="A")

    async def aclose(self) -> None:
        return None


def test_new_checkpoint_under_the_same_name_refuses_to_resume(real_fixtures: Path, tmp_path: Path) -> None:
    pairs, _ = load_pairs("hh_rlhf", _write(tmp_path / "hh.jsonl", _hh_rows(real_fixtures, 12)))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"hidden_size": 64}))
    (ckpt / "model.safetensors").write_bytes(b"\x01" * 4096)
    judge = FolderJudge(ckpt)

    async def go(resume: str = "auto") -> Any:
        ident = await judge_identity(judge)
        with ResultCache(tmp_path / "cache.jsonl") as cache:
            return ident, await run_judge(pairs, judge, "hh", cache, progress=False, judge_fp=ident["fingerprint"],
                                          resume=resume)  # fmt: skip

    ident1, first = asyncio.run(go())
    assert first.judged == 12 and ident1["weights_hash"]
    (ckpt / "model.safetensors").write_bytes(b"\x02" * 4096)  # retrained: same name, same size, new weights
    with pytest.raises(JudgeChanged, match="12 judgments by this judge name made with another fingerprint"):
        asyncio.run(go())
    ident2, forced = asyncio.run(go("force"))
    assert ident2["fingerprint"] != ident1["fingerprint"]
    assert forced.judged == 0 and forced.resumed == 12 and forced.reused_other_judge == 12
    (ckpt / "config.json").write_text(json.dumps({"hidden_size": 128}))
    assert asyncio.run(judge_identity(judge))["fingerprint"] != ident2["fingerprint"]


def test_changed_judge_is_one_line_exit_2_on_the_cli(real_fixtures: Path, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path / "hh.jsonl", _hh_rows(real_fixtures, 8))
    base = ["data.loader=hh_rlhf", f"data.path={path}", "judge.type=random", f"out_dir={tmp_path / 'o'}",
            "progress=false", f"cache={tmp_path / 'shared.jsonl'}"]  # fmt: skip
    assert main([*base, "judge.seed=1"]) == 0
    lines = (tmp_path / "shared.jsonl").read_text().splitlines()
    # the same judge name with another fingerprint recorded: what a new checkpoint under an old name looks like
    (tmp_path / "shared.jsonl").write_text(
        "".join(json.dumps({**json.loads(x), "judge_fp": "0" * 16}) + "\n" for x in lines)
    )
    assert main([*base, "judge.seed=1"]) == 2
    err = capsys.readouterr().err
    assert "another fingerprint" in err and "resume=force" in err and "Traceback" not in err
    assert main([*base, "judge.seed=1", "resume=force"]) == 0
