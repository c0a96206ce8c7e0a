"""`omni-rl data hard-samples` against a real vLLM server: K samples per row, classified, files written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from omni_rl.curate.hard_samples import classify, main
from omni_rl.judge.parse import parse_verdict

CHOICES = [f"<think>reason {v}</think><answer>{v}</answer>" for v in ("A", "B", "tie")]


@pytest.mark.parametrize(
    ("verdicts", "label", "klass"),
    [
        (["A", "A", "A"], "A", "easy"),
        (["A", "B", "A"], "A", "inconsistent"),
        (["A", None], "A", "inconsistent"),
        (["B", "B"], "A", "wrong"),
        ([None, None], "tie", "wrong"),
        (["tie"], "tie", "easy"),
    ],
)
def test_classify(verdicts: list, label: str, klass: str) -> None:
    assert classify(verdicts, label) == klass


@pytest.fixture(scope="module")
def genrm_parquet(real_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omni_rl.data.export import ExportConfig, export_pairs
    from omni_rl.data.loaders import load_pairs

    pairs, _ = load_pairs("hh_rlhf", real_fixtures / "hh_rlhf_pairs.jsonl")
    tie = dataclasses.replace(pairs[20], id="tie-0", tie=True)
    out = tmp_path_factory.mktemp("hs_in")
    return Path(
        export_pairs([*pairs[:7], tie], ExportConfig(out_dir=str(out), progress=False)).files["train"]
    )


@pytest.mark.server
def test_hard_samples_on_real_vllm(
    genrm_parquet: Path, vllm_server, tiny_text_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "hard"
    # vLLM constrained decoding: the tiny model's samples are always well-formed, and vary with the seed
    extra = '{structured_outputs: {choice: ["' + '", "'.join(CHOICES) + '"]}}'
    argv = [
        f"path={genrm_parquet}", f"out_dir={out}", f"base_url={vllm_server.base_url}",
        f"model={vllm_server.served_model_name}", "k=3", "temperature=1.0", "max_tokens=24",
        f"extra_body={extra}", "progress=false",
    ]  # fmt: skip
    assert main(argv) == 0
    rows = pq.read_table(genrm_parquet).to_pylist()
    report = json.loads((out / "report.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert report["rows"] == len(rows) == len(samples) and report["classes"]["failed"] == 0
    assert report["judge"]["judge/successes"] == 3 * len(rows)
    for s in samples:
        assert len(s["verdicts"]) == 3 and s["class"] == classify(s["verdicts"], s["label"])
        assert s["label"] == rows[s["index"]]["reward_model"]["ground_truth"]
    hard_ids = [s["id"] for s in samples if s["class"] != "easy"]
    hard = pq.read_table(out / "hard.parquet")
    assert hard.schema == pq.read_schema(genrm_parquet)  # trainable with the same recipe
    assert [r["extra_info"]["id"] for r in hard.to_pylist()] == hard_ids
    sft = pq.read_table(out / "sft.parquet").to_pylist()
    with_correct = [s for s in samples if s["label"] in s["verdicts"]]
    assert len(sft) == len(with_correct) == report["sft_rows"]
    for row, s in zip(sft, with_correct, strict=True):
        assert row["messages"][:-1] == rows[s["index"]]["prompt"]
        assert parse_verdict(row["messages"][-1]["content"]).verdict == s["label"]
    if sft:  # verl's own SFT dataset (recipes/sft_genrm.sh) reads the file and trains on the trace only
        from omegaconf import OmegaConf
        from transformers import AutoTokenizer
        from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

        tok = AutoTokenizer.from_pretrained(tiny_text_model)
        data = MultiTurnSFTDataset(
            str(out / "sft.parquet"), tok, OmegaConf.create({"max_length": 4096, "pad_mode": "right"})
        )
        item = data[0]
        trained = tok.decode(item["input_ids"][item["loss_mask"].bool()])
        assert parse_verdict(trained.replace("<|im_end|>", "").strip()).verdict == with_correct[0]["label"]


def test_unreachable_judge_fails_loudly_with_rejects(genrm_parquet: Path, tmp_path: Path) -> None:
    from omni_rl.testing.servers import free_port

    out = tmp_path / "dead"
    argv = [
        f"path={genrm_parquet}", f"out_dir={out}", f"base_url=http://127.0.0.1:{free_port()}/v1",
        "model=x", "k=2", "max_retries=0", "timeout=5", "progress=false", "limit=3",
    ]  # fmt: skip
    with pytest.raises(SystemExit, match=r"3/3 rows could not be judged"):
        main(argv)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 3 and all("JudgeError" in r["reason"] for r in rejects)
    assert pq.read_table(out / "hard.parquet").num_rows == 0


def test_bad_arguments_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="set path="):
        main([])
    with pytest.raises(SystemExit, match="not found"):
        main(
            [f"path={tmp_path}/x.parquet", f"out_dir={tmp_path}", "base_url=http://127.0.0.1:1/v1", "model=m"]
        )


def test_sft_traces_with_images_load_in_verls_sft_dataset(
    real_media: Path, tiny_vl_model: Path, tmp_path: Path
) -> None:
    """verl's SFT dataset takes `{"image": path}` items (bare paths raised a TypeError in qwen_vl_utils)."""
    import pyarrow as pa
    from omegaconf import OmegaConf
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from omni_rl.curate.hard_samples import HardSamplesConfig, RowResult, _Outputs

    schema = pa.schema([("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
                        ("images", pa.list_(pa.string())), ("videos", pa.list_(pa.string())),
                        ("audios", pa.list_(pa.string()))])  # fmt: skip
    trace = "<think>the first one shows it</think><answer>A</answer>"
    image_row = {"prompt": [{"role": "user", "content": "<image>\nWhich caption is better? A or B"}],
                 "images": [str(real_media / "1.jpg")], "videos": [], "audios": []}  # fmt: skip
    audio_row = {"prompt": [{"role": "user", "content": "<audio>\nWhich is better?"}],
                 "images": [], "videos": [], "audios": [str(real_media / "1.jpg")]}  # fmt: skip
    outputs = _Outputs(HardSamplesConfig(out_dir=str(tmp_path)), schema)
    for i, row in enumerate((image_row, audio_row)):
        outputs.add(row, RowResult(i, f"r{i}", "ti2t", "A", ["A"], [trace], "easy"))
    files = outputs.close(want_sft=True)
    sft = pq.read_table(files["sft"]).to_pylist()
    assert [r["id"] for r in sft] == ["r0"]  # the audio prompt cannot be an SFT trace in verl
    assert sft[0]["images"] == [{"image": str(real_media / "1.jpg")}] and "videos" not in sft[0]
    tok = AutoTokenizer.from_pretrained(tiny_vl_model)
    data = MultiTurnSFTDataset(files["sft"], tok, OmegaConf.create({"max_length": 8192}),
                               AutoProcessor.from_pretrained(tiny_vl_model))  # fmt: skip
    item = data[0]
    assert item["multi_modal_inputs"]["image_grid_thw"].shape == (1, 3)
    assert "<answer>A</answer>" in tok.decode(item["input_ids"][item["loss_mask"].bool()])
