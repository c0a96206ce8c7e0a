"""Omni-RewardBench in its public layout: a benchmark folder of task folders (`<task>/test.parquet`) and media
under `media_data/`; T2V responses are video paths in `response{k}`, T2I/T2A use `response{k}_path`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omni_rl.data.loaders import FileError, load_pairs
from omni_rl.data.loaders.omni_rewardbench import task_from_folder

COMMON = {"criteria": "Follows the prompt closely.", "source": "bench", "model1": "m-a", "model2": "m-b"}


def _task_rows(real_fixtures: Path) -> dict[str, list[dict]]:
    """Rows per task folder, in the public field names, with real HH-RLHF text for the text tasks."""
    hh = [json.loads(line) for line in (real_fixtures / "hh_rlhf_pairs.jsonl").open()][:3]
    return {
        "text_to_text": [{"id": f"tt{i}", "prompt": r["text_prompt"], "response1": r["answer_a"],
                          "response2": r["answer_b"], "criteria_preference": ["response1", "response2"][r["label"]],
                          **COMMON} for i, r in enumerate(hh)],
        "text_image_to_text": [{"id": "tit0", "prompt": "What is shown?", "image_path": "ti2t/q0.jpg",
                                "response1": "A plate of food.", "response2": "A car.",
                                "criteria_preference": "response1", **COMMON}],
        "text_to_image": [{"id": "t2i0", "prompt": "A red car", "response1_path": "t2i/0_a.jpg",
                           "response2_path": "t2i/0_b.jpg", "criteria_preference": "response2", **COMMON}],
        "text_to_video": [{"id": "t2v0", "prompt": "A dog running", "response1": "t2v/0_a.mp4",
                           "response2": "t2v/0_b.mp4", "criteria_preference": "response1", **COMMON},
                          {"id": "t2v1", "prompt": "Waves", "response1": "t2v/1_a.mp4",
                           "response2": "t2v/1_b.mp4", "criteria_preference": "tie", **COMMON}],
        "text_to_audio": [{"id": "t2a0", "prompt": "Birdsong", "response1_path": "t2a/0_a.wav",
                           "response2_path": "t2a/0_b.wav", "criteria_preference": "response2", **COMMON}],
    }  # fmt: skip


def _media(rows: dict[str, list[dict]]) -> list[str]:
    keys = ("image_path", "response1_path", "response2_path")
    out = [r[k] for rs in rows.values() for r in rs for k in keys if r.get(k)]
    return out + [r[k] for r in rows["text_to_video"] for k in ("response1", "response2")]


@pytest.fixture
def bench(tmp_path: Path, real_fixtures: Path, stand_in) -> Path:
    """OmniRewardBench/<task>/test.parquet + media_data/ (real jpg/mp4, real wav)."""
    rows = _task_rows(real_fixtures)
    root = tmp_path / "OmniRewardBench"
    for folder, rs in rows.items():
        (root / folder).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rs), root / folder / "test.parquet")
    (root / "media_data").symlink_to(stand_in(_media(rows)), target_is_directory=True)
    return root


def test_task_names_are_derived_from_folder_names() -> None:
    assert [task_from_folder(n) for n in ("text_to_text", "text_image_to_text", "text_video_to_text",
            "text_audio_to_text", "text_to_image", "text_to_video", "text_to_audio", "text_to_3d",
            "text_image_to_image", "t2v", "media_data", "text_to_smell")] == [
        "t2t", "ti2t", "tv2t", "ta2t", "t2i", "t2v", "t2a", "t23d", "ti2i", "t2v", None, None]  # fmt: skip


def test_benchmark_folder_reads_every_task(bench: Path) -> None:
    pairs, rejects = load_pairs("omni_rewardbench", bench)
    assert not rejects
    by = {p.id: p for p in pairs}
    assert sorted(by) == sorted(["t2t/tt0", "t2t/tt1", "t2t/tt2", "ti2t/tit0",
                                 "t2i/t2i0", "t2v/t2v0", "t2v/t2v1",
                                 "t2a/t2a0"])  # fmt: skip
    media = bench / "media_data"
    v = by["t2v/t2v0"]
    assert v.task == "t2v" and v.chosen.text == "" and v.chosen.media.videos == [str(media / "t2v/0_a.mp4")]
    assert v.rejected.media.videos == [str(media / "t2v/0_b.mp4")] and by["t2v/t2v1"].tie
    assert by["t2i/t2i0"].chosen.media.images == [str(media / "t2i/0_b.jpg")]
    assert by["t2a/t2a0"].task == "t2a" and by["t2a/t2a0"].chosen.media.audios == [str(media / "t2a/0_b.wav")]
    assert by["ti2t/tit0"].task == "ti2t" and by["t2t/tt0"].task == "t2t"
    assert by["t2i/t2i0"].criteria == COMMON["criteria"] and by["t2i/t2i0"].meta["model1"] == "m-a"


def test_one_task_file_takes_its_task_and_media_root_from_the_layout(bench: Path) -> None:
    pairs, rejects = load_pairs("omni_rewardbench", bench / "text_to_video" / "test.parquet")
    assert not rejects and [p.id for p in pairs] == ["t2v0", "t2v1"]
    assert all(p.task == "t2v" and p.chosen.media.videos for p in pairs)
    assert pairs[0].chosen.media.videos == [str(bench / "media_data" / "t2v/0_a.mp4")]


def test_a_response_that_is_only_a_media_file_name_is_an_error(tmp_path: Path, bench: Path) -> None:
    rows = [{"id": "x1", "prompt": "Say hi", "response1": "clip_0001.mp4", "response2": "Hello!",
             "criteria_preference": "response2", **COMMON}]  # fmt: skip
    (tmp_path / "text_to_text").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "text_to_text" / "test.parquet")
    _, rejects = load_pairs(
        "omni_rewardbench", tmp_path / "text_to_text" / "test.parquet", media_root=bench / "media_data"
    )
    assert [(r.row, r.field) for r in rejects] == [("x1", "response1")]
    assert "only a media file name" in rejects[0].reason and "t2t" in rejects[0].reason
    # A loose file (no task folder): a media path in response{k} is media, and the task follows (t2v).
    loose = tmp_path / "loose.jsonl"
    loose.write_text(json.dumps({**rows[0], "response1": "t2v/0_a.mp4", "response2": "t2v/0_b.mp4"}) + "\n")
    pairs, rejects = load_pairs("omni_rewardbench", loose, media_root=bench / "media_data")
    assert not rejects and pairs[0].task == "t2v" and pairs[0].rejected.media.videos


def test_folder_without_task_folders_is_a_file_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileError, match="no task folders"):
        load_pairs("omni_rewardbench", tmp_path / "empty")
