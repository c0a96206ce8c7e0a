"""Loaders on small hand-written rows in each public schema, with real fixture media standing in."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omni_rl.data.loaders import REGISTRY, get_loader, load_pairs
from omni_rl.data.loaders.vl_rewardbench import CANONICAL_COUNTS, subset_of
from omni_rl.data.schema import DataError


def test_registry_has_every_loader() -> None:
    assert set(REGISTRY) == {
        "omni_rewardbench",
        "sharegpt_ranking",
        "vl_rewardbench",
        "mm_rlhf",
        "multimodal_rewardbench",
        "hh_rlhf",
        "genai_bench_video",
        "r1_reward",
        "audio_hh_rlhf",
        "preference_pairs",
    }
    with pytest.raises(KeyError, match="known: audio_hh_rlhf, genai_bench_video"):
        get_loader("nope")


# --- Omni-RewardBench: one row per task, in the public field names --------------------------------
OMNI_ROWS = [
    {"id": "t2t-1", "prompt": "Write a haiku", "response1": "old pond", "response2": "frog", "criteria": "poetic",
     "criteria_preference": "response1"},
    {"id": "ti2t-1", "prompt": "What is shown?", "image_path": "ti2t/a.jpg", "response1": "a cat",
     "response2": "a dog", "criteria": "accurate", "criteria_preference": "response2"},
    {"id": "tv2t-1", "prompt": "Describe the clip", "video": "tv2t/a.mp4", "response1": "x", "response2": "y",
     "criteria": "detail", "criteria_preference": "tie"},
    {"id": "ta2t-1", "prompt": "Transcribe", "audio_path": "ta2t/a.wav", "response1": "hello", "response2": "hi",
     "criteria": "exact", "criteria_preference": "response1"},
    {"id": "t2i-1", "prompt": "A red car", "response1_path": "t2i/1.jpg", "response2_path": "t2i/2.jpg",
     "criteria": "faithful", "criteria_preference": "response2"},
    {"id": "t2v-1", "prompt": "A dog running", "response1_path": "t2v/1.mp4", "response2_path": "t2v/2.mp4",
     "criteria": "motion", "criteria_preference": "response1"},
    {"id": "t2a-1", "prompt": "Birdsong", "response1_path": "t2a/1.wav", "response2_path": "t2a/2.wav",
     "criteria": "clean", "criteria_preference": "response2"},
    {"id": "t23d-1", "prompt": "A chair", "response1_path": ["t23d/1a.jpg", "t23d/1b.jpg", "t23d/1c.jpg"],
     "response2_path": ["t23d/2a.jpg", "t23d/2b.jpg", "t23d/2c.jpg"], "criteria": "geometry",
     "criteria_preference": "response1"},
    {"id": "ti2i-1", "prompt": "Make it night", "image_path": "ti2i/src.jpg", "response1_path": "ti2i/1.jpg",
     "response2_path": "ti2i/2.jpg", "criteria": "edit follows", "criteria_preference": "response2"},
]  # fmt: skip


def _media_refs(rows: list[dict]) -> list[str]:
    refs = []
    for r in rows:
        for k in ("image_path", "video", "audio_path", "response1_path", "response2_path"):
            v = r.get(k)
            refs += v if isinstance(v, list) else [v] if v else []
    return refs


def test_omni_rewardbench_all_nine_tasks_inferred(tmp_path: Path, stand_in, jsonl) -> None:
    root = stand_in(_media_refs(OMNI_ROWS))
    pairs, rejects = load_pairs(
        "omni_rewardbench", jsonl(tmp_path / "omni.jsonl", OMNI_ROWS), media_root=root
    )
    assert not rejects
    assert [p.task for p in pairs] == [r["id"].split("-")[0] for r in OMNI_ROWS]
    by = {p.id: p for p in pairs}
    assert by["t2t-1"].chosen.text == "old pond" and by["t2t-1"].criteria == "poetic"
    assert by["ti2t-1"].chosen.text == "a dog" and by["ti2t-1"].prompt_media.images == [
        str(root / "ti2t/a.jpg")
    ]
    assert by["tv2t-1"].tie and by["tv2t-1"].prompt_media.videos == [str(root / "tv2t/a.mp4")]
    assert by["ta2t-1"].prompt_media.audios == [str(root / "ta2t/a.wav")]
    assert by["t2i-1"].chosen.media.images == [str(root / "t2i/2.jpg")]
    assert by["t2v-1"].chosen.media.videos == [str(root / "t2v/1.mp4")]
    assert by["t2a-1"].rejected.media.audios == [str(root / "t2a/1.wav")]
    assert len(by["t23d-1"].chosen.media.images) == 3  # multi-view renders
    assert by["ti2i-1"].chosen.media.images == [str(root / "ti2i/2.jpg")]


def test_omni_rewardbench_bad_rows_name_the_field(tmp_path: Path, stand_in, jsonl) -> None:
    root = stand_in(["ti2t/a.jpg"])
    rows = [
        {**OMNI_ROWS[0], "criteria_preference": "response3"},
        {**OMNI_ROWS[1], "image_path": "../../etc/passwd"},
        {**OMNI_ROWS[1], "image_path": "ti2t/missing.jpg"},
        {**OMNI_ROWS[0], "response2": ""},
        {**OMNI_ROWS[0], "task": "t2q"},
    ]
    pairs, rejects = load_pairs("omni_rewardbench", jsonl(tmp_path / "bad.jsonl", rows), media_root=root)
    assert not pairs
    assert [(r.field, r.row) for r in rejects] == [
        ("criteria_preference", "t2t-1"),
        ("image_path", "ti2t-1"),
        ("prompt_media.images", "ti2t-1"),
        ("rejected", "t2t-1"),
        ("task", "t2t-1"),
    ]
    assert "escapes media_root" in rejects[1].reason and "not found" in rejects[2].reason


def test_omni_rewardbench_task_option_and_parquet_bytes(tmp_path: Path, real_media: Path) -> None:
    img = (real_media / "2.jpg").read_bytes()
    table = pa.Table.from_pylist(
        [{"prompt": "what?", "image_path": {"bytes": img, "path": "x.jpg"}, "response1": "a", "response2": "b",
          "criteria": "c", "criteria_preference": "response1"}]
    )  # fmt: skip
    pq.write_table(table, tmp_path / "ti2t.parquet")
    pairs, rejects = load_pairs(
        "omni_rewardbench", tmp_path / "ti2t.parquet", cache_dir=tmp_path / "cache", task="ti2t"
    )
    assert not rejects and pairs[0].task == "ti2t" and pairs[0].id == "ti2t-0"
    assert Path(pairs[0].prompt_media.images[0]).read_bytes() == img


# --- LLaMA-Factory sharegpt ranking (Omni-RewardData) ---------------------------------------------
def test_sharegpt_ranking(tmp_path: Path, stand_in, jsonl) -> None:
    root = stand_in(["imgs/a.jpg", "vids/v.mp4"])
    rows = [
        {"conversations": [{"from": "human", "value": "<image>What is in the picture?"}],
         "chosen": {"from": "gpt", "value": "A bird."}, "rejected": {"from": "gpt", "value": "A car."},
         "images": ["imgs/a.jpg"]},
        {"conversations": [{"from": "system", "value": "Prefer brevity."},
                           {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
                           {"from": "human", "value": "<video>Summarise"}],
         "chosen": {"from": "gpt", "value": "Short."}, "rejected": "Long long long.", "videos": ["vids/v.mp4"]},
        {"messages": [{"role": "user", "content": "2+2?"}], "chosen": {"role": "assistant", "content": "4"},
         "rejected": {"role": "assistant", "content": "5"}},
        {"conversations": [{"from": "human", "value": "<image><image> compare"}],
         "chosen": {"from": "gpt", "value": "x"}, "rejected": {"from": "gpt", "value": "y"}, "images": ["imgs/a.jpg"]},
        {"conversations": [{"from": "gpt", "value": "no user turn"}], "chosen": "x", "rejected": "y"},
    ]  # fmt: skip
    pairs, rejects = load_pairs("sharegpt_ranking", jsonl(tmp_path / "r.jsonl", rows), media_root=root)
    assert [p.task for p in pairs] == ["ti2t", "tv2t", "t2t"]
    assert pairs[0].prompt == "<image>What is in the picture?" and pairs[0].chosen.text == "A bird."
    assert pairs[1].prompt == "User: Hi\n\nAssistant: Hello!\n\nUser: <video>Summarise"
    assert pairs[1].meta["system"] == "Prefer brevity." and pairs[1].rejected.text == "Long long long."
    assert pairs[2].chosen.text == "4"
    assert [(r.row, r.field) for r in rejects] == [("r-3", "prompt"), ("r-4", "conversations")]
    assert "2 <image> placeholder(s) but 1 images" in rejects[0].reason

    crit, _ = load_pairs("sharegpt_ranking", tmp_path / "r.jsonl", media_root=root, system_as_criteria=True)
    assert crit[1].criteria == "Prefer brevity."


# --- VL-RewardBench ---------------------------------------------------------------------------------
def test_vl_rewardbench_subsets_are_case_insensitive() -> None:
    assert subset_of("RLAIF-V-123") == "hallucination"
    assert subset_of("rlhf-v_9") == "hallucination"
    assert subset_of("hallucination_pair_42") == "hallucination"
    assert subset_of("MathVerse_7") == "reasoning" and subset_of("mmmu_pro_1") == "reasoning"
    assert subset_of("wildvision-3") == "general" and subset_of("VLFeedback_1") == "general"


def _vlrb_rows(counts: dict[str, int]) -> list[dict]:
    prefixes = {"general": ["wildvision", "VLFeedback"], "hallucination": ["RLAIF-V", "hallucination_pair", "RLHF-V"],
                "reasoning": ["mathverse", "MMMU-Pro"]}  # fmt: skip
    rows = []
    for subset, n in counts.items():
        for i in range(n):
            pre = prefixes[subset][i % len(prefixes[subset])]
            rows.append({"id": f"{pre}_{i}", "query": f"q{i}", "response": [f"good {i}", f"bad {i}"],
                         "image": "img/a.jpg", "human_ranking": [0, 1], "models": ["m1", "m2"]})  # fmt: skip
    return rows


def test_vl_rewardbench_rows_and_full_file_counts(tmp_path: Path, stand_in, jsonl) -> None:
    root = stand_in(["img/a.jpg"])
    rows = _vlrb_rows(CANONICAL_COUNTS)
    rows[5]["human_ranking"] = [1, 0]
    rows[6]["human_ranking"] = [0, 0]
    pairs, rejects = load_pairs("vl_rewardbench", jsonl(tmp_path / "full.jsonl", rows), media_root=root)
    assert not rejects and len(pairs) == 1250
    assert pairs[0].chosen.text == "good 0" and pairs[0].task == "ti2t"
    assert pairs[5].chosen.text == "bad 5" and pairs[5].meta["source_first_is_chosen"] is False
    assert pairs[6].tie

    wrong = _vlrb_rows({"general": 184, "hallucination": 748, "reasoning": 318})
    with pytest.raises(DataError, match="subset counts"):
        load_pairs("vl_rewardbench", jsonl(tmp_path / "wrong.jsonl", wrong), media_root=root)
    small, _ = load_pairs("vl_rewardbench", jsonl(tmp_path / "s.jsonl", wrong[:10]), media_root=root)
    assert len(small) == 10  # partial files are not held to the full-file counts


def test_vl_rewardbench_unknown_prefix_is_general(tmp_path: Path, stand_in, jsonl) -> None:
    """The benchmark's rule: sources other than the named hallucination/reasoning ones are general."""
    root = stand_in(["img/a.jpg"])
    rows = [
        {
            "id": "mystery_1",
            "query": "q",
            "response": ["a", "b"],
            "image": "img/a.jpg",
            "human_ranking": [0, 1],
        }
    ]
    pairs, rejects = load_pairs("vl_rewardbench", jsonl(tmp_path / "u.jsonl", rows), media_root=root)
    assert not rejects and pairs[0].id == "mystery_1" and pairs[0].subset == "general"


# --- GenAI-Bench-Video -------------------------------------------------------------------------------
def test_genai_bench_video_votes(tmp_path: Path, stand_in, jsonl) -> None:
    root = stand_in(["v/l.mp4", "v/r.mp4"])
    rows = [
        {"prompt": "a cat", "video_left": "v/l.mp4", "video_right": "v/r.mp4", "vote_type": vote}
        for vote in ("leftvote", "rightvote", "tievote", "bothbad_vote", "maybe")
    ]
    path = jsonl(tmp_path / "g.jsonl", rows)
    pairs, rejects = load_pairs("genai_bench_video", path, media_root=root)
    left, right = str(root / "v/l.mp4"), str(root / "v/r.mp4")
    assert [p.chosen.media.videos for p in pairs] == [[left], [right], [left], [left]]
    assert [p.tie for p in pairs] == [False, False, True, True] and all(p.task == "t2v" for p in pairs)
    assert [(r.row, r.field) for r in rejects] == [("g-4", "vote_type")]
    pairs, rejects = load_pairs("genai_bench_video", path, media_root=root, bothbad="drop")
    assert len(pairs) == 3 and "bothbad" in rejects[0].reason


# --- R1-Reward ---------------------------------------------------------------------------------------
def test_r1_reward_rows(tmp_path: Path, stand_in, jsonl) -> None:
    root = stand_in(["r1/a.jpg"])
    text = (
        "You are a judge. Compare the two answers to the question.\n[Question]: What colour is the sky?\n"
        "[Response 1]: Blue, because of Rayleigh scattering.\n[Response 2]: Green.\n\n"
        "Please output <answer>1</answer> or <answer>2</answer>."
    )
    message = [
        {"role": "user", "content": [{"type": "image", "image": "r1/a.jpg"}, {"type": "text", "text": text}]}
    ]
    rows = [
        {"id": "r1-0", "message": json.dumps(message), "question": "What colour is the sky?", "answer": "1"},
        {
            "id": "r1-1",
            "message": message,
            "question": "What colour is the sky?",
            "answer": "<answer>2</answer>",
        },
        {"id": "r1-2", "message": json.dumps([{"role": "user", "content": "no markers"}]), "answer": "1"},
        {"id": "r1-3", "message": message, "answer": "3"},
    ]
    pairs, rejects = load_pairs("r1_reward", jsonl(tmp_path / "r1.jsonl", rows), media_root=root)
    assert [p.chosen.text for p in pairs] == ["Blue, because of Rayleigh scattering.", "Green."]
    assert pairs[0].rejected.text == "Green." and pairs[0].prompt == "What colour is the sky?"
    assert pairs[0].task == "ti2t" and pairs[0].prompt_media.images == [str(root / "r1/a.jpg")]
    assert [(r.row, r.field) for r in rejects] == [("r1-2", "message"), ("r1-3", "answer")]


def test_bad_json_line_and_non_object_rows_are_rejected_not_fatal(tmp_path: Path) -> None:
    good = json.dumps({"text_prompt": "q", "answer_a": "a", "answer_b": "b", "label": 1})
    path = tmp_path / "mixed.jsonl"
    path.write_text(f'{good}\n{{"text_prompt": "q", \n[1, 2]\n{good}\n')
    pairs, rejects = load_pairs("hh_rlhf", path)
    assert [p.chosen.text for p in pairs] == ["b", "b"]
    assert [(r.row, r.field) for r in rejects] == [("line 2", "<line>"), (2, "<row>")]
    assert "invalid json" in rejects[0].reason and "expected an object" in rejects[1].reason


def test_all_nine_tasks_export_with_matching_placeholders(tmp_path: Path, stand_in, jsonl) -> None:
    from omni_rl.data.export import ExportConfig, export_pairs
    from omni_rl.data.loaders import iter_records

    root = stand_in(_media_refs(OMNI_ROWS))
    src = jsonl(tmp_path / "omni.jsonl", OMNI_ROWS)
    res = export_pairs(iter_records("omni_rewardbench", src, media_root=root),
                       ExportConfig(out_dir=str(tmp_path / "o"), progress=False))  # fmt: skip
    rows = pq.read_table(res.files["train"]).to_pylist()
    assert len(rows) == 9 and res.stats["media"] == {"images": 12, "videos": 3, "audios": 3}
    for r in rows:
        text = "".join(m["content"] for m in r["prompt"])
        for kind, tag in (("images", "<image>"), ("videos", "<video>"), ("audios", "<audio>")):
            assert text.count(tag) == len(r[kind]), (r["extra_info"]["id"], kind)
        assert r["extra_info"]["criteria"] in r["prompt"][0]["content"]  # criteria go in the system prompt
    by = {r["extra_info"]["id"]: r for r in rows}
    assert by["tv2t-1"]["reward_model"]["ground_truth"] == "tie"
    assert len(by["t23d-1"]["images"]) == 6 and len(by["ti2i-1"]["images"]) == 3
