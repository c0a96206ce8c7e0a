"""`omni-rl eval` guards on real files: reject rate, order=source, data.limit, Acc+ only where defined, options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omni_rl.eval.cli import DataConfig, EvalConfig, JudgeConfig, evaluate, main

GENERAL = [f"wildvision-battle-{i}" for i in range(173)] + [
    "LRVInstruction-000000007746", "SVIT-2371", "ComVint-1187", "LLaVAR-0412", "M3IT-coco-88",
    "lrv_instruct-301", "VQAv2-4410", "sharegpt4v-55", "LAMM-sys-9", "Visual-Chat-17"]  # fmt: skip
HALLU = (
    [f"RLAIF-V-{i}" for i in range(300)]
    + [f"RLHF-V-{i}" for i in range(200)]
    + [f"hallucination_pair-{i}" for i in range(249)]
)
REASON = [f"mathverse_{i}" for i in range(150)] + [f"mmmu_pro_test_Art_{i}" for i in range(168)]


def _texts(real_fixtures: Path) -> list[dict]:
    return [json.loads(line) for line in (real_fixtures / "mm_rlhf_reward_bench.jsonl").open()]


def vlrb_r1_copy(real_fixtures: Path, tmp_path: Path, ids: list[str] | None = None) -> Path:
    """R1-Reward's VL-RewardBench jsonl (real MM-RLHF texts as the answers), 1,250 items."""
    texts = _texts(real_fixtures)
    rows = [{"id": rid, "prompt": t["prompt"], "chosen": t["chosen"], "rejected": t["rejected"],
             "image": f"images/{rid}.jpg", "chosen_reason": t["chosen_reason"],
             "rejected_reason": t["rejected_reason"]}
            for k, rid in enumerate(ids or GENERAL + HALLU + REASON) for t in [texts[k % len(texts)]]]  # fmt: skip
    path = tmp_path / "vl_rewardbench_r1.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cfg(path: Path, out: Path, loader: str = "vl_rewardbench", **kw) -> EvalConfig:
    data = {"check_files": False, **kw.pop("data", {})}
    return EvalConfig(data=DataConfig(loader=loader, path=str(path), **data), judge=JudgeConfig(type="always_first"),
                      out_dir=str(out), progress=False, **kw)  # fmt: skip


def test_r1_copy_gets_three_subsets_and_no_acc_plus(real_fixtures: Path, tmp_path: Path) -> None:
    report = evaluate(cfg(vlrb_r1_copy(real_fixtures, tmp_path), tmp_path / "o"))
    subsets = report["metrics"]["by_subset"]["subsets"]
    assert {s: r["n"] for s, r in subsets.items()} == {"general": 183, "hallucination": 749, "reasoning": 318}
    assert report["metrics"]["by_subset"]["macro"] is not None and "acc_plus" not in report["metrics"]
    md = (tmp_path / "o" / "report.md").read_text()
    assert (
        "Acc+" not in md and "full-file check: passed" in md and "r1_reward_copy" in md and "**macro**" in md
    )
    assert "order: **random** (seed 0)" in md


def test_order_source_is_refused_without_a_source_order(real_fixtures: Path, tmp_path: Path, capsys) -> None:
    path = vlrb_r1_copy(real_fixtures, tmp_path)
    argv = ["data.loader=vl_rewardbench", f"data.path={path}", "data.check_files=false", "judge.type=always_first",
            "order=source", f"out_dir={tmp_path / 'o'}", "progress=false"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "order=source" in err and "does not know which response the file showed first" in err
    assert (
        "1250 of 1250 pairs" in err
        and "Traceback" not in err
        and not (tmp_path / "o" / "cache.jsonl").exists()
    )


def test_order_source_is_reported_with_the_real_share(real_fixtures: Path, tmp_path: Path) -> None:
    rows = [json.loads(x) for x in (real_fixtures / "hh_rlhf_pairs.jsonl").read_text().splitlines()[:60]]
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = evaluate(cfg(path, tmp_path / "o", loader="hh_rlhf", order="source"))
    first = sum(r["label"] == 0 for r in rows if r["answer_a"].strip() and r["answer_b"].strip())
    assert report["run"]["source_order"]["preferred_first"] == first
    assert report["metrics"]["accuracy"] == pytest.approx(first / report["run"]["pairs"])
    assert "**macro**" not in (tmp_path / "o" / "report.md").read_text()  # HH-RLHF defines no macro average
    assert (
        f"preferred response was first in {first} of {report['run']['pairs']} pairs"
        in (tmp_path / "o" / "report.md").read_text()
    )


def test_reject_rate_guard_and_reject_count_in_summary(
    real_fixtures: Path, tmp_path: Path, capsys, stand_in
) -> None:
    src = real_fixtures / "mm_rlhf_reward_bench.jsonl"
    raw = [json.loads(line) for line in src.open()]
    root = stand_in([r.get("image") or r.get("video") for r in raw][:9])  # 9 of 170 media files exist
    argv = ["data.loader=mm_rlhf", f"data.path={src}", f"data.media_root={root}", "judge.type=always_first",
            f"out_dir={tmp_path / 'o'}", "progress=false"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "rows rejected (> max_reject_fraction=0.5)" in err and "media file not found" in err
    assert not (tmp_path / "o" / "report.json").exists()
    assert main([*argv, "data.max_reject_fraction=0.99"]) == 0
    out = capsys.readouterr().out
    n_rej = sum(1 for _ in (tmp_path / "o" / "rejects.jsonl").open())
    assert n_rej >= 161 and f"rejected {n_rej} rows" in out


def test_limit_is_not_defeated_by_the_whole_file_check(real_fixtures: Path, tmp_path: Path, capsys) -> None:
    ids = GENERAL + HALLU + REASON
    ids[400] = (
        "Q-Instruct-77"  # a hallucination item with an id of no named source: general 184, hallucination 748
    )
    path = vlrb_r1_copy(real_fixtures, tmp_path, ids)
    argv = ["data.loader=vl_rewardbench", f"data.path={path}", "data.check_files=false", "judge.type=always_first",
            f"out_dir={tmp_path / 'o'}", "progress=false"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Q-Instruct-77" in err and "general has 184 rows (canonical 183)" in err and "Traceback" not in err
    assert main([*argv, "data.limit=25"]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["run"]["pairs"] == 25 and report["data"]["facts"]["subset_check"].startswith(
        "not run: 25 rows"
    )
    assert "whole-file checks did not run" in (tmp_path / "o" / "report.md").read_text()


def test_loader_options_reach_the_loader_and_typos_fail(tmp_path: Path, capsys, stand_in) -> None:
    root = stand_in(["v/l.mp4", "v/r.mp4"])
    rows = [{"prompt": "a cat", "video_left": "v/l.mp4", "video_right": "v/r.mp4", "vote_type": v}
            for v in ("leftvote", "bothbad_vote", "tievote", "rightvote")]  # fmt: skip
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["data.loader=genai_bench_video", f"data.path={path}", f"data.media_root={root}", "judge.type=always_first",
            f"out_dir={tmp_path / 'o'}", "progress=false"]  # fmt: skip
    assert main([*base, "+data.options.bothbad=dorp"]) == 2
    assert "bothbad='dorp'; expected one of tie, drop" in capsys.readouterr().err
    assert main([*base, "+data.options.bothbat=drop"]) == 2
    assert "unknown option(s) 'bothbat'" in capsys.readouterr().err
    assert main([*base, "+data.options.bothbad=drop"]) == 0
    assert json.loads((tmp_path / "o" / "report.json").read_text())["run"]["pairs"] == 3


@pytest.mark.parametrize("kind", ["missing", "directory", "truncated"])
def test_file_level_errors_are_one_line_exit_2(
    kind: str, real_fixtures: Path, tmp_path: Path, capsys
) -> None:
    path = {
        "missing": tmp_path / "absent.json",
        "directory": tmp_path / "dir.json",
        "truncated": tmp_path / "cut.json",
    }[kind]
    if kind == "directory":
        path.mkdir()
    elif kind == "truncated":
        path.write_text(
            (real_fixtures / "multimodal_rewardbench_reasoning_preference.json").read_text()[:5000]
        )
    argv = ["data.loader=multimodal_rewardbench", f"data.path={path}", "judge.type=always_first",
            f"out_dir={tmp_path / 'o'}", "progress=false"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
