"""GenRM GRPO on multimodal judge prompts through verl's real main_ppo on CPU:
`PROFILE=cpu_tiny_vl bash recipes/train_genrm.sh` trains the tiny Qwen2.5-VL for two steps on a parquet that
`omni-rl data prepare` exported from real MM-RLHF rows with the fixtures' real JPEGs and MP4 frames.

What is proven, from verl's own outputs and the opt-in input trace (OMNI_RL_CPU_TRACE, omni_rl/cpu/trace.py):
- both steps run and no sample is dropped (verl would log the failure and pad the batch with a copy);
- the `hf_cpu` rollout received every prompt's media as vision features: 3 distinct real images and the
  video's 4 frames (temporal grid 2), one request per sample;
- the actor's forward received `pixel_values`/`image_grid_thw` (and `pixel_values_videos`/`video_grid_thw`)
  for those same media, with verl's M-RoPE position ids (4 rows: text + t/h/w);
- rollout and actor saw the *same* vision input: the actor's recomputed log-probs match the rollout's
  (fp32 both sides) far below the change one image swap causes (tests/cpu/test_rollout_vl.py);
- every rollout was scored by reward_fns/genrm.py (verl's dump re-scored), and the merged checkpoint's
  weights, vision tower included, moved.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from omni_rl.learn.curves import step_metrics
from omni_rl.testing.verl_env import recipe_env, run_recipe

REPO = Path(__file__).resolve().parents[2]
STEPS = 2
N = 2  # rollout.n in cpu_tiny
PAIRS = {"1.jpg": "image", "1.mp4": "video", "2.jpg": "image", "3.jpg": "image"}  # real media per row

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def vl_parquet(real_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four short real MM-RLHF rows (3 image, 1 video) with the fixtures' real media substituted."""
    out = tmp_path_factory.mktemp("genrm-vl-data")
    rows = [json.loads(x) for x in (real_fixtures / "mm_rlhf_reward_bench.jsonl").read_text().splitlines()]
    size = lambda r: len(r["prompt"]) + len(r["chosen"]) + len(r["rejected"])  # noqa: E731
    by_kind = {k: sorted((r for r in rows if r.get(k)), key=size) for k in ("image", "video")}
    picked = []
    for i, (media, kind) in enumerate(PAIRS.items()):
        row = dict(by_kind[kind][i])
        row.pop("image" if kind == "video" else "video", None)
        picked.append({**row, kind: media})
    (out / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in picked))
    cmd = [sys.executable, "-m", "omni_rl.cli", "data", "prepare", "loader=mm_rlhf", "progress=false"]
    cmd += [f"path={out / 'pairs.jsonl'}", f"media_root={real_fixtures / 'media'}", f"out_dir={out}"]
    cmd += ["video_frames=4"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return out / "train.parquet"


def _env(trace: Path) -> dict[str, str]:
    return recipe_env("cpu_tiny_vl", OMNI_RL_CPU_TRACE=str(trace))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _grids(entry: dict, key: str) -> list[tuple[int, ...]]:
    return [tuple(g) for g in entry.get(key, [])]


def check_vision_inputs(trace: Path) -> None:
    """Rollout requests and actor forwards both carried the prompts' real media as vision features."""
    rollout = _jsonl(trace / "rollout.jsonl")
    assert len(rollout) == len(PAIRS) * N, f"{len(rollout)} media requests"
    images = Counter(g for e in rollout for g in _grids(e, "image_grid_thw"))
    videos = Counter(g for e in rollout for g in _grids(e, "video_grid_thw"))
    assert sum(images.values()) == 3 * N and sum(videos.values()) == N
    assert all(g[0] == 2 for g in videos), "4 video frames = 2 temporal patches"
    for e in rollout:
        for key, grid in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
            rows = sum(t * h * w for t, h, w in _grids(e, grid))
            assert e["shapes"].get(key, [0])[0] == rows, e
    actor = _jsonl(trace / "actor.jsonl")
    assert actor, "the actor's forward was never traced"
    seen_images, seen_videos = set(), set()
    for e in actor:
        batch, length = e["shapes"]["input_ids"]
        assert e["shapes"]["position_ids"] == [4, batch, length], "verl's M-RoPE position ids (text + t/h/w)"
        for key, grid in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
            rows = sum(t * h * w for t, h, w in _grids(e, grid))
            assert e["shapes"].get(key, [0])[0] == rows, e
        seen_images |= set(_grids(e, "image_grid_thw"))
        seen_videos |= set(_grids(e, "video_grid_thw"))
    assert seen_images == set(images) and seen_videos == set(videos)


def check_scores(work: Path, metrics: dict[int, dict[str, float]]) -> None:
    """verl's per-step rollout dump re-scored by our GenRM reward gives verl's scores."""
    from omni_rl.rewards.genrm import compute_score_sync

    prof = yaml.safe_load((REPO / "recipes/config/profile/cpu_tiny.yaml").read_text())
    kwargs = prof["reward"]["custom_reward_function"]["reward_kwargs"]
    for step, m in metrics.items():
        rows = _jsonl(work / "rollouts" / f"{step}.jsonl")
        assert len(rows) == 2 * N
        ours = [
            compute_score_sync("mm_rlhf", r["output"], r["gts"], extra_info={}, **kwargs)["score"]
            for r in rows
        ]
        assert [r["score"] for r in rows] == pytest.approx(ours, abs=1e-5)
        assert m["critic/score/mean"] == pytest.approx(sum(ours) / len(ours), abs=1e-4)
        assert m["training/off_policy/trajectory_staleness/max"] == 0, "rollout served stale weights"


def check_merged(model: Path, work: Path, env: dict[str, str]) -> None:
    """The checkpoint merges to an HF Qwen2.5-VL whose language *and* vision weights moved."""
    from transformers import AutoModelForImageTextToText

    cmd = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp"]
    cmd += [
        "--local_dir",
        str(work / "ckpt" / f"global_step_{STEPS}" / "actor"),
        "--target_dir",
        str(work / "hf"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    before = AutoModelForImageTextToText.from_pretrained(model, dtype=torch.float32).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(work / "hf", dtype=torch.float32).state_dict()
    assert before.keys() == after.keys()
    moved = [k for k in before if not torch.allclose(before[k], after[k].float())]
    assert any(".visual." in k for k in moved) and any(".language_model." in k for k in moved)


def test_cpu_vl_profile_trains_on_real_images_and_video(
    vl_parquet: Path, tiny_vl_model: Path, tmp_path: Path
) -> None:
    """`PROFILE=cpu_tiny_vl bash recipes/train_genrm.sh`: two GRPO steps with vision inputs on both sides."""
    env = _env(tmp_path / "trace")
    log = run_recipe("train_genrm.sh", env, tmp_path, vl_parquet, tiny_vl_model)
    assert "Error in _run_prompt" not in log and "synthetic padding" not in log, "a sample was dropped"
    metrics = step_metrics(log)
    assert sorted(metrics) == list(range(1, STEPS + 1)), f"steps logged: {sorted(metrics)}"
    check_vision_inputs(tmp_path / "trace")
    for m in metrics.values():
        # the same tokens with another image: log-perplexity moves by > 1e-2 (test_rollout_vl.py)
        assert m["rollout_corr/log_ppl_diff_max"] < 1e-4 and m["rollout_corr/log_ppl_diff_min"] > -1e-4
    check_scores(tmp_path, metrics)
    check_merged(tiny_vl_model, tmp_path, env)
    print({s: (m["critic/score/mean"], m["timing_s/step"]) for s, m in metrics.items()})
