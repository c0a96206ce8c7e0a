"""End to end against the real vLLM CPU server: `omni-rl eval` with the GenRM judge is killed mid-run,
rerun, and must finish with every judgment exactly once; parse failures are counted, not sided."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omni_rl.eval.report import REPORT_FILES

pytestmark = pytest.mark.server
SECRET = "sk-test-never-log-me-1234"
PAIRS = 24  # x2 orders = 48 judgments


def eval_cmd(vllm_server, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "omni_rl.cli", "eval",
        "data.loader=hh_rlhf", f"data.path={data}", f"data.limit={PAIRS}",
        "judge.type=genrm", f"judge.base_url={vllm_server.base_url}", f"judge.model={vllm_server.served_model_name}",
        "judge.max_tokens=8", "order=both", "concurrency=4", f"out_dir={out}", *extra,
    ]  # fmt: skip


def cache_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_genrm_eval_killed_then_resumed_on_real_server(
    vllm_server, real_fixtures: Path, tmp_path: Path
) -> None:
    data, out = real_fixtures / "hh_rlhf_pairs.jsonl", tmp_path / "run"
    cache = out / "cache.jsonl"
    env = dict(os.environ, OMNI_RL_JUDGE_API_KEY=SECRET)
    log1 = (tmp_path / "run1.log").open("w")
    proc = subprocess.Popen(eval_cmd(vllm_server, data, out), stdout=log1, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while len(cache_lines(cache)) < 4:
        assert proc.poll() is None, (
            f"eval exited before it could be killed:\n{(tmp_path / 'run1.log').read_text()}"
        )
        assert time.monotonic() < deadline, "no judgments cached within 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    first = [json.loads(x) for x in cache_lines(cache) if x.endswith("}")]
    assert 4 <= len(first) < 2 * PAIRS, "the kill must land mid-run"

    run2 = subprocess.run(eval_cmd(vllm_server, data, out, "progress=false"), capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert run2.returncode == 0, run2.stdout + run2.stderr
    rows = [json.loads(x) for x in cache_lines(cache)]
    keys = [(r["judge"], r["benchmark"], r["item"], r["order"], r["sample"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * PAIRS  # no duplicates, no losses
    assert rows[: len(first)] == first  # what survived the kill was kept, not re-judged

    report = json.loads((out / "report.json").read_text())
    run = report["run"]
    assert run["resumed"] == len(first) and run["judged"] == 2 * PAIRS - len(first)
    assert run["order"] == "both" and report["judge"]["sampling"]["temperature"] == 0.0
    m = report["metrics"]
    n_fail = sum(r["verdict"] is None for r in rows)
    assert m["judgments"] == 2 * PAIRS and m["failures"]["count"] == n_fail > 0  # tiny model: garbage text
    assert m["accuracy"] == pytest.approx(sum(r["verdict"] == r["label"] for r in rows) / len(rows))
    assert all(r["format_ok"] is False for r in rows if r["verdict"] is None)
    assert m["swap_consistency"]["n_pairs"] == PAIRS
    md = (out / "report.md").read_text()
    assert f"parse failures (no verdict, counted as wrong): **{n_fail}**" in md
    assert all((out / f).stat().st_size > 0 for f in REPORT_FILES)
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["config"]["judge"]["api_key_set"] is True
    texts = [run2.stdout, run2.stderr, (tmp_path / "run1.log").read_text()]
    texts += [(out / f).read_text() for f in ("report.json", "report.md", "cache.jsonl", "rejects.jsonl")]
    assert not any(SECRET in t for t in texts), "the API key leaked into a log or report"


def test_media_pairs_against_text_only_server_are_errors_or_skips_never_verdicts(
    vllm_server, real_fixtures: Path, real_media: Path, tmp_path: Path
) -> None:
    # real MM-RLHF rows, with the fixture's real jpg/mp4 standing in for the images/videos they reference
    rows = [
        json.loads(x) for x in (real_fixtures / "mm_rlhf_reward_bench.jsonl").read_text().splitlines()[:8]
    ]
    for r in rows:
        r.update({k: v for k, v in (("image", "1.jpg"), ("video", "1.mp4")) if r.get(k)})
    data = tmp_path / "mm.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = [
        sys.executable, "-m", "omni_rl.cli", "eval", "data.loader=mm_rlhf", f"data.path={data}",
        f"data.media_root={real_media}", f"judge.base_url={vllm_server.base_url}",
        f"judge.model={vllm_server.served_model_name}", "judge.max_tokens=8", "progress=false",
    ]  # fmt: skip
    # sent as images: the text model's server refuses (400); counted as errors, the run stops loudly
    sent = subprocess.run(
        [*base, f"out_dir={tmp_path / 'sent'}", "max_errors=2"], capture_output=True, text=True
    )
    assert sent.returncode == 3 and "aborted" in sent.stderr and "not a multimodal model" in sent.stderr
    assert not (tmp_path / "sent" / "cache.jsonl").exists() or not cache_lines(
        tmp_path / "sent" / "cache.jsonl"
    )
    # declared text-only: every pair is skipped, written to rejects, and the report says so
    skip = subprocess.run(
        [*base, f"out_dir={tmp_path / 'skip'}", "judge.text_only=true"], capture_output=True, text=True
    )
    assert skip.returncode == 1 and "nothing was judged" in skip.stderr
    report = json.loads((tmp_path / "skip" / "report.json").read_text())
    assert report["run"]["skipped"] == len(rows) and report["metrics"]["judgments"] == 0
    assert set(report["metrics"]["by_subset"]["skipped_subsets"]) == {"image"}
    rejects = [json.loads(x) for x in (tmp_path / "skip" / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == len(rows) and all("text-only judge" in r["reason"] for r in rejects)


def test_vote_at_k_with_sampled_judgments_on_real_server(
    vllm_server, real_fixtures: Path, tmp_path: Path
) -> None:
    from omni_rl.eval.cli import DataConfig, EvalConfig, JudgeConfig, evaluate

    cfg = EvalConfig(
        data=DataConfig(loader="hh_rlhf", path=str(real_fixtures / "hh_rlhf_pairs.jsonl"), limit=4),
        judge=JudgeConfig(
            base_url=vllm_server.base_url,
            model=vllm_server.served_model_name,
            max_tokens=8,
            temperature=1.0,
            seed=11,
        ),
        samples=3,
        out_dir=str(tmp_path),
        progress=False,
    )
    report = evaluate(cfg)
    rows = [json.loads(x) for x in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert sorted({r["sample"] for r in rows}) == [0, 1, 2] and len(rows) == 12
    va = report["metrics"]["vote_at_k"]
    assert va["k_max"] == 3 and set(va["acc"]) == {"1", "2", "3"} and va["n_units"] == 4
    assert report["judge"]["sampling"] == {"temperature": 1.0, "top_p": 1.0, "max_tokens": 8, "seed": 11}
    assert "vote@K" in (tmp_path / "report.md").read_text()
    # the judge's identity comes from the server itself: its model root (the weights' folder) and their hash
    ident = report["judge"]["identity"]
    assert ident["served_model"]["id"] == vllm_server.served_model_name and ident["served_model"].get("root")
    assert ident["weights_hash"] and len(ident["fingerprint"]) == 16
    assert all(r["judge_fp"] == ident["fingerprint"] and len(r["item_hash"]) == 16 for r in rows)
