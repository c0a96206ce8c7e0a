"""Audio-HH-RLHF: real HH-RLHF answer pairs with spoken prompts (real wav files), in the public jsonl layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omni_rl.data.loaders import iter_records, load_pairs
from omni_rl.data.loaders.base import LoaderOptionError
from omni_rl.data.schema import DataError


def _audio_rows(real_fixtures: Path, n: int) -> list[dict]:
    """The first n real HH-RLHF pairs, with the prompt as an audio file and the label as the string "0"/"1"."""
    rows = []
    with (real_fixtures / "hh_rlhf_pairs.jsonl").open() as f:
        for i, line in enumerate(f):
            if len(rows) == n:
                break
            r = json.loads(line)
            if not (r["answer_a"].strip() and r["answer_b"].strip()):
                continue
            rows.append({"id": f"ahh-{i}", "audio_prompt": f"audios/{i}.wav", "answer_a": r["answer_a"],
                         "answer_b": r["answer_b"], "label": str(r["label"])})  # fmt: skip
    return rows


def test_audio_hh_rlhf_real_rows(tmp_path: Path, real_fixtures: Path, stand_in, jsonl) -> None:
    rows = _audio_rows(real_fixtures, 40)
    assert {r["label"] for r in rows} == {"0", "1"}  # both labels occur in the real rows used
    root = stand_in(r["audio_prompt"] for r in rows)
    pairs, rejects = load_pairs("audio_hh_rlhf", jsonl(tmp_path / "audio_hh.jsonl", rows), media_root=root)
    assert not rejects and len(pairs) == 40
    for p, r in zip(pairs, rows, strict=True):
        a_won = r["label"] == "0"
        assert p.chosen.text == (r["answer_a"] if a_won else r["answer_b"])
        assert p.rejected.text == (r["answer_b"] if a_won else r["answer_a"])
        assert p.task == "ta2t" and p.prompt_media.audios == [str(root / r["audio_prompt"])]
        assert p.meta["source_first_is_chosen"] is a_won and p.id == r["id"]


def test_audio_hh_rlhf_missing_audio_is_a_counted_reject(
    tmp_path: Path, real_fixtures: Path, stand_in, jsonl
) -> None:
    rows = _audio_rows(real_fixtures, 6)
    root = stand_in(r["audio_prompt"] for r in rows[:4])  # the last two audio files do not exist
    path = jsonl(tmp_path / "audio_hh.jsonl", rows)
    pairs, rejects = load_pairs("audio_hh_rlhf", path, media_root=root)
    assert len(pairs) == 4
    assert [(r.row, r.field) for r in rejects] == [(rows[4]["id"], "prompt_media.audios"),
                                                  (rows[5]["id"], "prompt_media.audios")]  # fmt: skip
    assert "media file not found" in rejects[0].reason and rows[4]["audio_prompt"] in rejects[0].reason
    unchecked, rejects = load_pairs("audio_hh_rlhf", path, media_root=root, check_files=False)
    assert len(unchecked) == 6 and not rejects


def test_audio_hh_rlhf_bad_label_and_int_labels(tmp_path: Path, stand_in, jsonl) -> None:
    root = stand_in(["a.wav"])
    rows = [
        {"audio_prompt": "a.wav", "answer_a": "x", "answer_b": "y", "label": 1},
        {"audio_prompt": "a.wav", "answer_a": "x", "answer_b": "y", "label": "A"},
        {"audio_prompt": "a.wav", "answer_a": "x", "answer_b": "y", "label": True},
        {"answer_a": "x", "answer_b": "y", "label": "0"},
    ]
    pairs, rejects = load_pairs("audio_hh_rlhf", jsonl(tmp_path / "a.jsonl", rows), media_root=root)
    assert [p.chosen.text for p in pairs] == ["y"]
    assert [(r.row, r.field) for r in rejects] == [
        ("a-1", "label"),
        ("a-2", "label"),
        ("a-3", "audio_prompt"),
    ]


def test_unknown_loader_option_is_an_error_listing_valid_ones(tmp_path: Path, jsonl) -> None:
    path = jsonl(tmp_path / "g.jsonl", [{"prompt": "p", "video_left": "l.mp4", "video_right": "r.mp4",
                                        "vote_type": "leftvote"}])  # fmt: skip
    with pytest.raises(
        LoaderOptionError, match=r"unknown option.*'bothbat'.*valid options: source_name.*bothbad"
    ):
        list(iter_records("genai_bench_video", path, bothbat="drop"))
    with pytest.raises(LoaderOptionError, match=r"bothbad='dorp'; expected one of"):
        list(iter_records("genai_bench_video", path, bothbad="dorp"))
    with pytest.raises(LoaderOptionError, match=r"audio_hh_rlhf.*unknown option"):
        list(iter_records("audio_hh_rlhf", path, task="ta2t"))
    assert not issubclass(LoaderOptionError, DataError)  # a config error, never a row reject
