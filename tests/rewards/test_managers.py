"""Our reward managers inside verl's own reward loop (RewardLoopManager → RewardLoopWorker actors on a
real local Ray cluster), judging with the real vLLM CPU server; multimodal *payloads* (bytes on the wire) on a
real loopback server. That the VL GenRM model sees the forwarded image: tests/omni/test_reward_loop_media.py."""

from __future__ import annotations

import asyncio
import base64
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from transformers import AutoTokenizer
from verl import DataProto
from verl.trainer.ppo.reward import load_reward_manager

from omni_rl.rewards.groups import ACTOR_NAME
from omni_rl.testing.proxy import RecordingProxy
from omni_rl.testing.verl_batch import rollout_dataproto

REPO = Path(__file__).resolve().parents[2]
PAIR_REGEX = r"<think>[a-z ]{1,12}</think><answer>(A|B)</answer>"
GROUPS = {
    "uid-math": ("What is 7 * 6?", ["42", "It is 42.", "43"]),
    "uid-geo": ("Capital of Italy?", ["Rome", "Milan", "The capital is Rome."]),
    "uid-bio": ("Do plants photosynthesise?", ["Yes.", "No.", "Yes, using sunlight."]),
}


def make_config(tok: Path, kwargs: dict, manager: str, n: int, num_workers: int = 2):
    """The reward slice of a verl 0.9 trainer config (reward.* keys only; no legacy keys)."""
    return OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": str(tok), "tokenizer_path": None},
                              "rollout": {"n": n, "val_kwargs": {"n": 1}}},
        "reward": {
            "num_workers": num_workers,
            "custom_reward_function": {"path": str(REPO / "reward_fns/omni.py"), "name": "compute_score",
                                       "reward_kwargs": kwargs},
            "reward_manager": {"source": "importlib", "name": manager,
                               "module": {"path": "pkg://omni_rl.rewards.managers", "name": "custom_reward_manager"}},
            "reward_model": {"enable": False, "enable_resource_pool": False, "model_path": None},
        },
    })  # fmt: skip


def make_batch(tok, rows: list[dict]) -> DataProto:
    """A DataProto shaped like the agent loop's output: left-padded prompts, right-padded responses."""
    p_ids = [tok(r["prompt"])["input_ids"] for r in rows]
    r_ids = [tok(r["response"])["input_ids"] + [tok.eos_token_id] for r in rows]
    non_tensors = {
        "uid": [r["uid"] for r in rows],
        "data_source": [r.get("data_source", "qa") for r in rows],
        "reward_model": [{"ground_truth": r.get("reference")} for r in rows],
        "extra_info": [r.get("extra_info", {}) for r in rows],
        "raw_prompt": [r["raw_prompt"] for r in rows],
    }
    return rollout_dataproto(p_ids, r_ids, tok.pad_token_id or 0, non_tensors)


def group_rows() -> list[dict]:
    return [
        {"uid": uid, "prompt": q, "response": resp, "raw_prompt": [{"role": "user", "content": q}]}
        for uid, (q, resps) in GROUPS.items()
        for resp in resps
    ]


@pytest.fixture
def proxy(vllm_server):
    with RecordingProxy(upstream=vllm_server.base_url.removesuffix("/v1")) as p:
        yield p


def _judge_kwargs(proxy, vllm_server, **over) -> dict:
    kw = {"base_url": proxy.base_url, "model": vllm_server.served_model_name, "max_tokens": 48,
          "extra_body": {"structured_outputs": {"regex": PAIR_REGEX}}}  # fmt: skip
    kw.update(over)
    return kw


@pytest.mark.server
def _kill_barrier() -> None:
    """Kill the named group barrier and wait until its name is free."""
    import time

    import ray

    from omni_rl.rewards.groups import ACTOR_NAME

    try:
        ray.kill(ray.get_actor(ACTOR_NAME))
    except ValueError:
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ray.get_actor(ACTOR_NAME)
        except ValueError:
            return
        time.sleep(0.2)


@pytest.mark.ray
@pytest.mark.slow
def test_group_win_rate_per_uid_across_verls_reward_workers(ray_cluster, proxy, vllm_server, tiny_text_model):
    from verl.experimental.reward_loop import RewardLoopManager

    kw = _judge_kwargs(proxy, vllm_server, group={"scheme": "round_robin"})
    cfg = make_config(tiny_text_model, kw, "GroupWinRateRewardManager", n=3, num_workers=2)
    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    batch = make_batch(tok, group_rows())  # 9 samples over 2 workers: verl pads one copy of row 0
    manager = RewardLoopManager(cfg)
    try:
        out = manager.compute_rm_score(batch)
    finally:
        _kill_barrier()  # it is owned by a reward worker of this test; later tests must not get a dying handle

    assert out.batch["rm_scores"].shape == batch.batch["responses"].shape
    finals = out.batch["rm_scores"].sum(-1).tolist()
    wr = out.non_tensor_batch["group_win_rate"].astype(float)
    np.testing.assert_allclose(finals, wr, atol=1e-6)
    by_uid = defaultdict(list)
    for i, uid in enumerate(batch.non_tensor_batch["uid"]):
        by_uid[uid].append(i)
    late = out.non_tensor_batch["group_late"].astype(float)
    for uid, idx in by_uid.items():
        assert len(idx) == 3 and all(out.non_tensor_batch["group_size"][i] == 3 for i in idx)
        if late[idx].sum() == 0:  # round robin: each pair hands out exactly 1 → win rates sum to G/2
            assert wr[idx].sum() == pytest.approx(1.5, abs=1e-6), uid
    # workers split the batch 5/5, so uid-geo's members were scored on different workers
    assert out.non_tensor_batch["judge_failed"].astype(float).sum() == 0
    calls = len(proxy.chat_requests())
    assert calls == 3 * 3 * 2 + 6 * int(late.sum())  # C(3,2) pairs × 2 orders per group
    assert set(out.meta_info["reward_extra_keys"]) >= {"score", "group_win_rate", "swap_disagree"}


@pytest.mark.server
async def test_anchor_scheme_in_a_reward_worker_loop(proxy, vllm_server, tiny_text_model) -> None:
    """The cheap scheme: G-1 pairs per group; the anchor gets exactly 0.5."""
    kw = _judge_kwargs(proxy, vllm_server, group={"scheme": "anchor", "timeout_s": 300})
    cfg = make_config(tiny_text_model, kw, "GroupWinRateRewardManager", n=3)
    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    manager = load_reward_manager(cfg, tok)  # verl's loader, importlib source
    batch = make_batch(tok, group_rows())
    outs = await asyncio.gather(*(manager.run_single(batch[i : i + 1]) for i in range(len(batch))))
    assert len(proxy.chat_requests()) == 3 * 2 * 2  # (G-1) pairs × 2 orders × 3 groups
    for g in range(3):
        rates = [outs[3 * g + k]["reward_extra_info"]["group_win_rate"] for k in range(3)]
        assert rates.count(0.5) >= 1 and all(0.0 <= r <= 1.0 for r in rates)
        assert all(outs[3 * g + k]["reward_extra_info"]["group_pairs"] == 2 for k in range(3))
    keys = {frozenset(o["reward_extra_info"]) for o in outs}
    assert len(keys) == 1  # identical keys for every sample


@pytest.mark.server
async def test_multimodal_forwarding_from_raw_prompt(real_media, tiny_text_model) -> None:
    """raw_prompt images (PIL, as RLHFDataset builds them) reach the GenRM as image_url data URIs."""
    images = [Image.open(real_media / name).convert("RGB") for name in ("1.jpg", "3.jpg")]
    raw_prompt = [{"role": "user", "content": [{"type": "image", "image": images[0]}, {"type": "image", "image": images[1]},
                                               {"type": "text", "text": "Which photo is brighter?"}]}]  # fmt: skip
    row = {"uid": "u", "prompt": "Which photo is brighter?", "response": "The first one.", "reference": "The second.",
           "raw_prompt": raw_prompt, "extra_info": {"criteria": "Be faithful to the images."}}  # fmt: skip
    with RecordingProxy(upstream=None) as rec:  # records and answers "<answer>A</answer>" to everything
        cfg = make_config(
            tiny_text_model, {"base_url": rec.base_url, "model": "vl-judge"}, "OmniRewardManager", n=1
        )
        tok = AutoTokenizer.from_pretrained(tiny_text_model)
        manager = load_reward_manager(cfg, tok)
        out = await manager.run_single(make_batch(tok, [row]))
        reqs = rec.chat_requests()
    assert len(reqs) == 2
    info = out["reward_extra_info"]
    # "A" in both orders = the judge always prefers the first slot: a full disagreement, averaged to 0.5
    assert info["swap_disagree"] == 1.0 and out["reward_score"] == 0.5 and info["judge_failed"] == 0.0
    for req in reqs:
        assert "Be faithful to the images." in req.body["messages"][0]["content"]
        parts = next(m["content"] for m in req.body["messages"] if m["role"] == "user")
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).size for u in urls] == [
            im.size for im in images
        ]
        assert parts[0]["type"] == "text" and "[User Request]" in parts[0]["text"]


@pytest.mark.server
async def test_group_judge_failure_gives_the_whole_group_neutral_and_validation_falls_back(
    proxy, vllm_server, tiny_text_model
) -> None:
    kw = _judge_kwargs(
        proxy, vllm_server, max_retries=0, on_failure="neutral", group={"scheme": "round_robin"}
    )
    cfg = make_config(tiny_text_model, kw, "GroupWinRateRewardManager", n=3)
    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    manager = load_reward_manager(cfg, tok)
    rows = [r for r in group_rows() if r["uid"] == "uid-geo"]
    batch = make_batch(tok, rows)
    proxy.fail_status[:] = [500]  # one of the 6 calls fails for good (no retries)
    outs = await asyncio.gather(*(manager.run_single(batch[i : i + 1]) for i in range(3)))
    assert [o["reward_score"] for o in outs] == [0.5, 0.5, 0.5]  # no reward shaped by a server error
    assert all(o["reward_extra_info"]["judge_failed"] == 1.0 for o in outs)
    assert len(proxy.chat_requests()) == 6
    # validation rows (val_kwargs.n = 1): no group to rank, scored per sample against the reference
    proxy.reset()
    val = [{**rows[0], "uid": "val-1", "reference": "Rome.", "extra_info": {"split": "test"}}]
    out = await manager.run_single(make_batch(tok, val))
    info = out["reward_extra_info"]
    assert info["group_size"] == 0.0 and info["judge_calls"] == 2.0 and 0.0 < out["reward_score"] < 1.0
    assert set(info) == set(outs[0]["reward_extra_info"])  # same keys on both paths


@pytest.mark.server
async def test_reference_free_validation_row_gets_a_defined_pointwise_reward(
    proxy, vllm_server, tiny_text_model
) -> None:
    """val_kwargs.n = 1 and no reference: a group of one has nothing to compare with, so the GenRM scores it alone."""
    cfg = make_config(tiny_text_model, _judge_kwargs(proxy, vllm_server), "GroupWinRateRewardManager", n=3)
    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    manager = load_reward_manager(cfg, tok)
    row = {
        **group_rows()[3],
        "uid": "val-free",
        "extra_info": {"split": "val"},
    }  # no reward_model.ground_truth
    out = await manager.run_single(make_batch(tok, [row]))
    info = out["reward_extra_info"]
    assert info["group_pointwise"] == 1.0 and info["judge_calls"] == 1.0 and 0.0 <= out["reward_score"] <= 1.0
    assert info["judge_failed"] == 0.0
    (req,) = proxy.chat_requests()
    assert "Milan" not in str(req.body["messages"]) and "Rome" in str(
        req.body["messages"]
    )  # only this response
    if info["parse_failed"]:  # the tiny random model may babble: then the reward is the documented neutral
        assert out["reward_score"] == 0.5


@pytest.mark.ray
@pytest.mark.slow
def test_group_win_rate_on_verls_streaming_path(ray_cluster, proxy, vllm_server, tiny_text_model) -> None:
    """verl's streaming reward path (no RM pool or a standalone one): every trajectory is sent, as it finishes,
    to a random RewardLoopWorker by AgentLoopWorker._compute_score with a fresh DataProto and no meta_info.
    Groups complete across workers in arrival order; validation rows (extra_info.split) use val_kwargs.n."""
    import random

    import ray
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput, AgentLoopWorker
    from verl.experimental.reward_loop import RewardLoopManager

    kw = _judge_kwargs(proxy, vllm_server, group={"scheme": "round_robin", "stall_s": 300})
    cfg = make_config(tiny_text_model, kw, "GroupWinRateRewardManager", n=3, num_workers=2)
    cfg.actor_rollout_ref.rollout.val_kwargs.n = 2
    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    rows = group_rows()
    val = [{**r, "uid": "val-geo", "reference": None, "extra_info": {"split": "val"}} for r in rows[3:5]]
    everything = [*rows, *val]
    manager = RewardLoopManager(cfg)  # verl starts the RewardLoopWorker actors
    # verl's own streaming code, without an LLM: only the reward half of AgentLoopWorker is used
    streamer = object.__new__(AgentLoopWorker)
    streamer.reward_loop_worker_handles = manager.reward_loop_worker_handles
    streamer.processor, streamer.mm_processor_kwargs = None, {}
    assert streamer.reward_loop_worker_handles is not None  # the streaming path is the one verl picks here

    async def trajectory(i: int, row: dict, delay: float) -> AgentLoopOutput:
        await asyncio.sleep(delay)  # trajectories finish at different times, groups interleaved
        prompt_ids = tok(row["prompt"])["input_ids"]
        response_ids = tok(row["response"])["input_ids"] + [tok.eos_token_id]
        out = AgentLoopOutput(prompt_ids=prompt_ids, response_ids=response_ids, response_mask=[1] * len(response_ids),
                              metrics=AgentLoopMetrics())  # fmt: skip
        kwargs = {"uid": row["uid"], "data_source": "qa", "reward_model": {"ground_truth": row.get("reference")},
                  "extra_info": row.get("extra_info", {}), "raw_prompt": row["raw_prompt"], "index": i,
                  "agent_name": "single_turn_agent"}  # fmt: skip
        await streamer._compute_score([out], kwargs=kwargs)
        return out

    rng = random.Random(0)
    delays = [rng.uniform(0.0, 3.0) for _ in everything]

    async def rollout() -> list[AgentLoopOutput]:
        return await asyncio.gather(
            *(trajectory(i, r, d) for i, (r, d) in enumerate(zip(everything, delays, strict=True)))
        )

    try:
        outs = asyncio.run(rollout())
        stats = ray.get(ray.get_actor(ACTOR_NAME).stats.remote())
    finally:
        _kill_barrier()
    infos = [o.extra_fields["reward_extra_info"] for o in outs]
    for uid in GROUPS:
        idx = [i for i, r in enumerate(everything) if r["uid"] == uid]
        assert all(infos[i]["group_size"] == 3 and infos[i]["group_late"] == 0 for i in idx), uid
        assert sum(infos[i]["group_win_rate"] for i in idx) == pytest.approx(1.5, abs=1e-6), (
            uid
        )  # C(3,2) wins
        assert [outs[i].reward_score for i in idx] == pytest.approx([infos[i]["group_win_rate"] for i in idx])
    v = [infos[i] for i, r in enumerate(everything) if r["uid"] == "val-geo"]
    assert [x["group_size"] for x in v] == [2, 2] and sum(x["group_win_rate"] for x in v) == pytest.approx(
        1.0
    )
    assert sum(x["judge_failed"] for x in infos) == 0
    assert (
        len(proxy.chat_requests()) == 3 * 3 * 2 + 1 * 2
    )  # 3 train groups × C(3,2) × 2 orders + 1 val pair × 2
    assert stats["open"] == 0 and stats["closed"] == 4  # every group served, none left waiting
    assert len({frozenset(i) for i in infos}) == 1  # identical keys on every sample


def test_adaptive_scheme_without_soft_verdicts_refuses_to_start(tiny_text_model) -> None:
    kw = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "soft": False, "group": {"scheme": "adaptive"}}
    cfg = make_config(tiny_text_model, kw, "GroupWinRateRewardManager", n=4)
    with pytest.raises(ValueError, match="adaptive fits soft P"):
        load_reward_manager(cfg, AutoTokenizer.from_pretrained(tiny_text_model))
