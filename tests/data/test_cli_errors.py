"""`omni-rl data prepare` failure modes: file-level errors are one line + exit 2, and a failed run leaves no parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omni_rl.data.cli import main
from omni_rl.data.export import ExportConfig, export_pairs
from omni_rl.data.loaders import iter_records


def _hh(real_fixtures: Path, tmp_path: Path, n: int = 40) -> Path:
    path = tmp_path / "hh.jsonl"
    path.write_text("".join((real_fixtures / "hh_rlhf_pairs.jsonl").read_text().splitlines(True)[:n]))
    return path


@pytest.mark.parametrize("kind", ["missing", "directory", "truncated_json", "wrong_extension", "not_parquet"])
def test_file_level_errors_are_one_line_and_exit_2(
    kind: str, tmp_path: Path, real_fixtures: Path, capsys
) -> None:
    rows = json.loads((real_fixtures / "multimodal_rewardbench_reasoning_preference.json").read_text())[:5]
    path = {
        "missing": tmp_path / "absent.json",
        "directory": tmp_path / "folder.json",
        "truncated_json": tmp_path / "cut.json",
        "wrong_extension": tmp_path / "rows.csv",
        "not_parquet": tmp_path / "rows.parquet",
    }[kind]
    if kind == "directory":
        path.mkdir()
    elif kind == "truncated_json":
        path.write_text(json.dumps(rows)[:-300])
    elif kind in ("wrong_extension", "not_parquet"):
        path.write_text(json.dumps(rows))
    rc = main(
        [
            "prepare",
            "loader=multimodal_rewardbench",
            f"path={path}",
            f"out_dir={tmp_path / 'o'}",
            "progress=false",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and str(path) in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    hint = {"missing": "file not found", "directory": "is a folder", "truncated_json": "not valid json",
            "wrong_extension": "unsupported file type", "not_parquet": "not a readable parquet"}[kind]  # fmt: skip
    assert hint in err
    assert not (tmp_path / "o" / "train.parquet").exists()


def test_unknown_loader_option_on_the_cli_lists_valid_ones(
    tmp_path: Path, real_fixtures: Path, capsys
) -> None:
    rc = main(["prepare", "loader=hh_rlhf", f"path={_hh(real_fixtures, tmp_path)}", f"out_dir={tmp_path / 'o'}",
               "+loader_options.sorce_name=x", "progress=false"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "unknown option(s) 'sorce_name'" in err and "valid options: source_name" in err


def test_failed_prepare_leaves_no_partial_parquet(tmp_path: Path, real_fixtures: Path) -> None:
    out = tmp_path / "o"
    hh = _hh(real_fixtures, tmp_path, 600)

    def crash_midway():
        for i, rec in enumerate(iter_records("hh_rlhf", hh)):
            if i == 550:
                raise RuntimeError("disk full")
            yield rec

    with pytest.raises(RuntimeError, match="disk full"):
        export_pairs(crash_midway(), ExportConfig(out_dir=str(out), batch_size=64, progress=False))
    assert sorted(p.name for p in out.iterdir()) == ["rejects.jsonl"]  # no train.parquet, no temp file
    # A successful run leaves exactly the final files, and a later failed run does not touch them.
    ok = export_pairs(
        iter_records("hh_rlhf", hh), ExportConfig(out_dir=str(out), batch_size=64, progress=False)
    )
    before = Path(ok.files["train"]).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["rejects.jsonl", "stats.json", "train.parquet"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps({"text_prompt": "q", "answer_a": "a", "answer_b": "b", "label": 9}) + "\n"
                           for _ in range(5)) + hh.read_text().splitlines(True)[0])  # fmt: skip
    assert main(["prepare", "loader=hh_rlhf", f"path={bad}", f"out_dir={out}", "progress=false"]) == 1
    assert Path(ok.files["train"]).read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_loaders_lists_each_loaders_options(capsys) -> None:
    assert main(["loaders"]) == 0
    out = capsys.readouterr().out
    assert "audio_hh_rlhf" in out and "option bothbad: tie:" in out and "option task:" in out
