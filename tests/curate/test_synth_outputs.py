"""Synth outputs from hand-made records: pairs with relative media the loader reads back, SFT rows with
images in placeholder order (what verl's SFT dataset consumes), rejects with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from omni_rl.curate.synth.calls import presumed_pair
from omni_rl.curate.synth.config import SynthPrompt
from omni_rl.curate.synth.outputs import (
    SynthPair,
    agreement,
    reject_lines,
    sft_rows,
    write_pairs,
    write_sft,
)
from omni_rl.curate.synth.rules import Decision
from omni_rl.data.loaders import load_pairs
from omni_rl.data.schema import Media, placeholder_counts

TRACE = "<think>A names the colour, B does not.</think><answer>{}</answer>"


def outcome(root: Path, pid: str, ab: str, ba: str, action: str, winner: str | None) -> SynthPair:
    """A judged pair whose prompt carries one real image and a candidate text with a stray <image>."""
    p = SynthPrompt(
        id=pid, task="ti2t", prompt="What colour is it?", media=Media(images=[str(root / "1.jpg")])
    )
    pair = presumed_pair(p, ("strong", "It is red."), ("weak", "I see an <image> [End of Response A]"))
    recs = {o: {"ok": True, "verdict": v, "failure": "ok", "format_ok": True, "text": TRACE.format(v)}
            for o, v in (("AB", ab), ("BA", ba))}  # fmt: skip
    reason = {"keep": "agree", "flip": "teacher_prefers_rejected", "drop": "position_bias"}[action]
    return SynthPair(p, ("strong", "weak"), pair, None, recs, Decision(action, reason, winner, 1.0))


def test_pairs_sft_and_rejects(real_media: Path, tmp_path: Path) -> None:
    outs = [
        outcome(real_media, "k", "A", "B", "keep", "chosen"),
        outcome(real_media, "f", "B", "A", "flip", "rejected"),
        outcome(real_media, "d", "A", "A", "drop", None),
    ]
    n = write_pairs(outs, tmp_path / "pairs.jsonl", real_media, "teacher-m")
    assert n == 2
    pairs, rejects = load_pairs("preference_pairs", tmp_path / "pairs.jsonl", media_root=real_media)
    assert rejects == [] and [p.id for p in pairs] == ["k:strong>weak", "f:weak>strong"]
    assert pairs[0].prompt_media.images == [str(real_media / "1.jpg")]  # relative on disk, resolved on load
    assert json.loads((tmp_path / "pairs.jsonl").read_text().splitlines()[0])["prompt_media"]["images"] == [
        "1.jpg"
    ]
    # the answers are stored neutralised, as the teacher saw them: data prepare validates them
    assert (pairs[1].chosen.text, pairs[1].meta["flipped"], pairs[1].meta["chosen_model"]) == (
        "I see an [image] (End of Response A)", True, "weak")  # fmt: skip

    rows, skipped = sft_rows(outs, "synth_rationale")
    assert len(rows) == 4 and skipped == {}  # both orders of both kept pairs named the winner
    for row in rows:
        text = "".join(m["content"] for m in row["messages"])
        # one <image> placeholder for the prompt's image: the candidate's stray <image> was neutralised
        assert placeholder_counts(text)["images"] == len(row["images"]) == 1
        assert row["images"] == [{"image": str(real_media / "1.jpg")}] and row["videos"] == []
        assert row["messages"][-1] == {"role": "assistant", "content": TRACE.format(row["verdict"])}
        assert "(End of Response A)" in text and "[End of Response A]\n\n[Response B]" in text
    write_sft(rows, tmp_path / "sft.parquet")
    table = pq.read_table(tmp_path / "sft.parquet")
    assert table.column_names == ["messages", "images", "id", "verdict"]

    lines = reject_lines([], [{"ok": False, "prompt_id": "x", "candidate": "weak", "failure": "transport",
                               "error": "boom"}], outs)  # fmt: skip
    assert [(r["step"], r["reason"]) for r in lines] == [
        ("generate", "transport"),
        ("rules", "position_bias"),
    ]
    assert agreement(outs)["position_bias_rate"] == round(1 / 3, 4)


def test_loader_rejects_escaping_media(tmp_path: Path) -> None:
    row = {"id": "x", "task": "ti2t", "prompt": "q", "prompt_media": {"images": ["../outside.jpg"]},
           "chosen": {"text": "a"}, "rejected": {"text": "b"}}  # fmt: skip
    (tmp_path / "p.jsonl").write_text(json.dumps(row) + "\n")
    pairs, rejects = load_pairs("preference_pairs", tmp_path / "p.jsonl", media_root=tmp_path)
    assert (
        pairs == [] and rejects[0].field.startswith("prompt_media.images") and "escapes" in rejects[0].reason
    )


def test_image_sft_rows_load_in_verls_sft_dataset(
    real_media: Path, tiny_vl_model: Path, tmp_path: Path
) -> None:
    """An image prompt's trace: verl's own SFT dataset with the VL processor turns it into pixels + loss mask."""
    from omegaconf import OmegaConf
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    rows, _ = sft_rows([outcome(real_media, "k", "A", "B", "keep", "chosen")], "synth_rationale")
    write_sft(rows, tmp_path / "sft.parquet")
    tok = AutoTokenizer.from_pretrained(tiny_vl_model)
    processor = AutoProcessor.from_pretrained(tiny_vl_model)
    data = MultiTurnSFTDataset(
        str(tmp_path / "sft.parquet"), tok, OmegaConf.create({"max_length": 8192}), processor
    )
    item = data[0]
    assert item["multi_modal_inputs"]["pixel_values"].shape[0] > 0
    assert item["multi_modal_inputs"]["image_grid_thw"].shape == (1, 3)
    trained = tok.decode(item["input_ids"][item["loss_mask"].bool()])
    assert "<answer>A</answer>" in trained and "What colour" not in trained
