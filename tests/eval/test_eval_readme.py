"""The README's eval section names the report files the harness actually writes."""

from __future__ import annotations

import re
from pathlib import Path

from omni_rl.eval.report import REPORT_FILES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_names_the_report_files_written() -> None:
    text = README.read_text()
    section = text.split("## Benchmarking reward models", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([\w.-]+\.(?:json|md|png))`", section))
    assert {n for n in named if n.startswith(("report", "accuracy"))} == set(REPORT_FILES)
    assert "accuracy.png" not in section
