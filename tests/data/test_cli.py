"""`omni-rl data ...`: key=value overrides, a --config file with several inputs, stats of an export."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from omni_rl.cli import main as omni_main
from omni_rl.data.cli import main


def _hh_head(real_fixtures: Path, tmp_path: Path, n: int = 300) -> Path:
    """The first n real HH-RLHF rows (keeps CLI tests quick; the loader test reads all 2,000)."""
    lines = (real_fixtures / "hh_rlhf_pairs.jsonl").read_text().splitlines()[:n]
    path = tmp_path / "hh_rlhf_pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prepare_key_value_overrides(real_fixtures: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "hh"
    hh = _hh_head(real_fixtures, tmp_path)
    raw = [json.loads(x) for x in hh.read_text().splitlines()]
    n_bad = sum(not (r["answer_a"].strip() and r["answer_b"].strip()) for r in raw)
    rc = main(
        ["prepare", "loader=hh_rlhf", f"path={hh}", f"out_dir={out}",
         "order=both", "val_fraction=0.1", "seed=3", "progress=false", "template=pairwise_no_tie"]
    )  # fmt: skip
    assert rc == 0
    stats = json.loads((out / "stats.json").read_text())
    assert n_bad >= 1 and stats["pairs_in"] == 300 - n_bad and stats["rejects"] == n_bad
    assert sum(stats["rows_out"].values()) == 2 * (300 - n_bad)
    assert stats["label_share_A"]["train"] == 0.5 and stats["label_share_A"]["val"] == 0.5
    rows = pq.read_table(out / "val.parquet").slice(0, 2).to_pylist()
    assert rows[0]["extra_info"]["template"] == "pairwise_no_tie"
    assert len((out / "rejects.jsonl").read_text().splitlines()) == n_bad
    err = capsys.readouterr().err
    assert "omni-rl data export" in err and "top reject reasons" in err


def test_prepare_config_file_with_several_inputs(real_fixtures: Path, tmp_path: Path, stand_in) -> None:
    raw = json.loads((real_fixtures / "multimodal_rewardbench_reasoning_preference.json").read_text())[:20]
    mmrb = tmp_path / "mmrb.json"
    mmrb.write_text(json.dumps(raw))
    root = stand_in(r["Image"] for r in raw)
    conf = tmp_path / "mix.yaml"
    conf.write_text(yaml.safe_dump({
        "out_dir": str(tmp_path / "mix"),
        "progress": False,
        "inputs": [
            {"loader": "multimodal_rewardbench", "path": str(mmrb), "media_root": str(root)},
            {"loader": "hh_rlhf", "path": str(_hh_head(real_fixtures, tmp_path, 100)),
             "options": {"source_name": "hh"}},
        ],
    }))  # fmt: skip
    assert omni_main(["data", "prepare", f"--config={conf}", "ties=drop"]) == 0
    stats = json.loads((tmp_path / "mix" / "stats.json").read_text())
    # row 74 of the real HH file has an empty answer: 99 of the first 100 rows are usable
    assert stats["sources"] == {"multimodal_rewardbench": 20, "hh": 99}
    assert stats["by_task"]["train"] == {"ti2t": 20, "t2t": 99} and stats["media"] == {"images": 20}

    assert main(["stats", f"path={tmp_path / 'mix'}"]) == 0
    js = tmp_path / "s.json"
    assert main(["stats", f"path={tmp_path / 'mix' / 'train.parquet'}", f"json_out={js}"]) == 0
    assert json.loads(js.read_text())["by_task"]["train"] == {"ti2t": 20, "t2t": 99}


def test_prepare_errors_are_clear(tmp_path: Path, capsys) -> None:
    assert (
        main(["prepare", "loader=hh_rlhf", f"path={tmp_path / 'nope.jsonl'}", f"out_dir={tmp_path / 'n'}"])
        == 2
    )
    assert f"{tmp_path / 'nope.jsonl'}: file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="expected key=value"):
        main(["prepare", "loader"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text_prompt": "q", "answer_a": "a", "answer_b": "b", "label": 7}) + "\n")
    assert (
        main(["prepare", "loader=hh_rlhf", f"path={bad}", f"out_dir={tmp_path / 'o'}", "progress=false"]) == 1
    )
    assert "1/1 rows rejected" in capsys.readouterr().err
    rejects = [json.loads(x) for x in (tmp_path / "o" / "rejects.jsonl").read_text().splitlines()]
    assert rejects[0]["field"] == "label" and rejects[0]["row"] == "bad-0"
    assert main(["nope"]) == 2
    assert main(["loaders"]) == 0


def test_hard_samples_is_dispatched_lazily(capsys) -> None:
    import importlib
    import importlib.util

    if importlib.util.find_spec("omni_rl.curate.hard_samples") is None:
        assert omni_main(["data", "hard-samples"]) == 2
        assert "not installed" in capsys.readouterr().err
        return
    module = importlib.import_module("omni_rl.curate.hard_samples")
    direct = int(module.main(["--help"]) or 0)
    direct_out = capsys.readouterr().out
    assert omni_main(["data", "hard-samples", "--help"]) == direct
    assert capsys.readouterr().out == direct_out
