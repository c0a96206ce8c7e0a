"""VL-RewardBench in both public layouts (GitHub jsonl / HF parquet, and R1-Reward's jsonl copy).

The files are built at full size (1,250 items) in the real layouts: ids and `images/<source>/` folders
as the benchmark ships them, general items from sources no prefix map lists (VLFeedback's
LRVInstruction, ...) including the rows whose preferred answer is second, and the text of real
preference rows from fixtures/real. The loader must derive 183/749/318 by the benchmark's rule.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omni_rl.data.loaders import iter_records, load_pairs
from omni_rl.data.loaders.vl_rewardbench import CANONICAL_COUNTS, subset_of
from omni_rl.data.schema import DataError

# General items from sources a hand-made prefix map lacks (the VLFeedback folder holds several).
ODD_GENERAL = ["LRVInstruction-000000007746", "SVIT-2371", "ComVint-1187", "LLaVAR-0412", "M3IT-coco-88",
               "lrv_instruct-301", "VQAv2-4410", "sharegpt4v-55", "LAMM-sys-9", "Visual-Chat-17"]  # fmt: skip
SECOND_WINS = set(ODD_GENERAL[:5])  # the real file's 5 rows whose preferred answer is second are among these


def _ids() -> list[tuple[str, str]]:
    """(id, source folder) for the full benchmark: 183 general, 749 hallucination, 318 reasoning."""
    out = [(f"wildvision-battle-{i}", "wildvision-battle") for i in range(100)]
    out += [(f"VLFeedback-{i}", "vlfeedback") for i in range(73)]
    out += [(i, "vlfeedback") for i in ODD_GENERAL]
    out += [(f"RLAIF-V-{i}", "rlaif-v") for i in range(300)] + [(f"RLHF-V-{i}", "rlhf-v") for i in range(200)]
    out += [(f"hallucination_pair-{i}", "povid") for i in range(249)]
    out += [(f"mathverse_{i}", "reasoning_tasks") for i in range(150)]
    out += [(f"mmmu_pro_test_Computer_Science_{i}", "reasoning_tasks") for i in range(168)]
    return out


@pytest.fixture
def texts(real_fixtures: Path) -> list[dict]:
    """Real prompt/chosen/rejected/reason texts (MM-RLHF-RewardBench rows), cycled over the items."""
    return [json.loads(line) for line in (real_fixtures / "mm_rlhf_reward_bench.jsonl").open()]


def original_rows(texts: list[dict]) -> list[dict]:
    """The GitHub `data/data.jsonl` layout: id, image_path, query, response[2], human_ranking, ..."""
    rows = []
    for k, (rid, folder) in enumerate(_ids()):
        t = texts[k % len(texts)]
        second = rid in SECOND_WINS
        rows.append({"id": rid, "image_path": f"images/{folder}/{rid}.jpg", "query": t["prompt"],
                     "response": [t["rejected"], t["chosen"]] if second else [t["chosen"], t["rejected"]],
                     "human_ranking": [1, 0] if second else [0, 1], "models": ["m1", "m2"], "judge": "human",
                     "rationale": None, "query_source": folder, "meta": {}})  # fmt: skip
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_original_jsonl_derives_the_canonical_subsets(tmp_path: Path, texts, stand_in) -> None:
    rows = original_rows(texts)
    root = stand_in(r["image_path"] for r in rows)
    facts: dict = {}
    recs = list(
        iter_records(
            "vl_rewardbench", write_jsonl(tmp_path / "data.jsonl", rows), media_root=root, facts=facts
        )
    )
    assert all(hasattr(r, "task") for r in recs) and len(recs) == 1250
    assert (
        Counter(p.subset for p in recs)
        == CANONICAL_COUNTS
        == {"general": 183, "hallucination": 749, "reasoning": 318}
    )
    assert facts["subset_check"] == "passed" and facts["schemas"] == {"original": 1250}
    by = {p.id: p for p in recs}
    assert all(by[i].subset == "general" for i in ODD_GENERAL)
    # The source order is recorded: exactly the 5 chosen-second rows, all general.
    second = {p.id for p in recs if not p.meta["source_first_is_chosen"]}
    assert second == SECOND_WINS
    t = texts[173 % len(texts)]  # LRVInstruction-… is item 173; the file shows its preferred answer second
    lrv = by["LRVInstruction-000000007746"]
    assert (lrv.chosen.text, lrv.rejected.text) == (t["chosen"], t["rejected"])
    assert lrv.prompt_media.images == [str(root / "images/vlfeedback/LRVInstruction-000000007746.jpg")]


def test_hf_parquet_with_image_bytes(tmp_path: Path, texts, real_media: Path) -> None:
    jpg = (real_media / "1.jpg").read_bytes()
    rows = [{**{k: r[k] for k in ("id", "query", "response", "human_ranking", "models", "query_source")},
             "image": {"bytes": jpg, "path": f"{r['id']}.jpg"}} for r in original_rows(texts)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test-00000-of-00001.parquet")
    pairs, rejects = load_pairs(
        "vl_rewardbench", tmp_path / "test-00000-of-00001.parquet", cache_dir=tmp_path / "c"
    )
    assert not rejects and Counter(p.subset for p in pairs) == CANONICAL_COUNTS
    assert Path(pairs[0].prompt_media.images[0]).read_bytes() == jpg
    assert sum(not p.meta["source_first_is_chosen"] for p in pairs) == 5


def test_r1_reward_copy_reads_through_the_same_loader(tmp_path: Path, texts, stand_in) -> None:
    """R1-Reward's jsonl: id, prompt, chosen, rejected, image, chosen_reason, rejected_reason — no source order."""
    rows = []
    for k, (rid, folder) in enumerate(_ids()):
        t = texts[k % len(texts)]
        rows.append({"id": rid, "prompt": t["prompt"], "chosen": t["chosen"], "rejected": t["rejected"],
                     "image": f"images/{folder}/{rid}.jpg", "chosen_reason": t["chosen_reason"],
                     "rejected_reason": t["rejected_reason"]})  # fmt: skip
    root = stand_in(r["image"] for r in rows)
    facts: dict = {}
    recs = list(
        iter_records(
            "vl_rewardbench", write_jsonl(tmp_path / "vlrb_r1.jsonl", rows), media_root=root, facts=facts
        )
    )
    assert len(recs) == 1250 and Counter(p.subset for p in recs) == CANONICAL_COUNTS
    assert facts["schemas"] == {"r1_reward_copy": 1250} and facts["subset_check"] == "passed"
    assert all("source_first_is_chosen" not in p.meta and p.group is None for p in recs)
    assert (
        recs[0].chosen.text == texts[0]["chosen"]
        and recs[0].meta["chosen_reason"] == texts[0]["chosen_reason"]
    )


def test_wrong_full_file_counts_are_a_data_error_naming_rows(tmp_path: Path, texts) -> None:
    rows = original_rows(texts)
    rows[500] = {**rows[500], "id": "Q-Instruct-77", "image_path": "images/vlfeedback/Q-Instruct-77.jpg"}
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_pairs("vl_rewardbench", path, check_files=False)
    assert (
        "Q-Instruct-77" in err.value.row
        and "Q-Instruct-77" in err.value.message
        and "general has 184 rows (canonical 183)" in err.value.message
    )
    assert (
        "hallucination has 748 rows (canonical 749)" in err.value.message and str(path) in err.value.message
    )
    # A partial file is not held to the full-file counts (and says the check did not run).
    facts: dict = {}
    part = list(
        iter_records(
            "vl_rewardbench", write_jsonl(tmp_path / "p.jsonl", rows[:1249]), check_files=False, facts=facts
        )
    )
    assert len(part) == 1249 and facts["subset_check"].startswith("not run: 1249 rows")


def test_rule_row_level_facts(tmp_path: Path) -> None:
    assert (
        subset_of("RLAIF-V-123")
        == subset_of("rlhf-v_9")
        == subset_of("hallucination_pair-42")
        == "hallucination"
    )
    assert subset_of("MathVerse_7") == subset_of("mmmu_pro_test_Art_1") == "reasoning"
    assert (
        subset_of("anything-else-1") == subset_of("LRVInstruction-1", "images/vlfeedback/x.jpg") == "general"
    )
    rows = [
        {"id": "RLAIF-V-1", "image_path": "images/vlfeedback/a.jpg", "query": "q", "response": ["a", "b"], "human_ranking": [0, 1]},
        {"id": "RLAIF-V-2", "query": "q", "response": ["a", "b"], "human_ranking": [float("nan"), 1]},
        {"id": "RLAIF-V-3", "query": "q", "response": ["a", "b"], "human_ranking": [0, "1"]},
        {"id": "RLAIF-V-4", "query": "q", "response": ["a", "b"], "human_ranking": [1, 1]},
    ]  # fmt: skip
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # json.dumps writes NaN, as pandas does
    pairs, rejects = load_pairs("vl_rewardbench", path)
    assert [(r.row, r.field) for r in rejects] == [("RLAIF-V-1", "image_path"), ("RLAIF-V-2", "human_ranking"),
                                                  ("RLAIF-V-3", "human_ranking")]  # fmt: skip
    assert "not finite" in rejects[1].reason and "disagrees" in rejects[0].reason
    assert [p.id for p in pairs] == ["RLAIF-V-4"] and pairs[0].tie and pairs[0].task == "t2t"
