"""The GenRM reward inside verl: loaded by verl's own loader, scored by verl's `naive` reward manager on a
DataProto built from parquet exported by omni_rl.data, and the R1 consistency judge on a real vLLM server."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from omni_rl.rewards import genrm
from omni_rl.testing.verl_batch import rollout_dataproto

REPO = Path(__file__).resolve().parents[2]
THINK = "<think>Response {x} answers the question directly and is more helpful.</think>"
ROLLOUTS = ("right", "wrong", "tie", "malformed", "truncated")


def rollout(kind: str, label: str) -> str:
    """A response of the given kind for a row whose human label is `label`."""
    other = {"A": "B", "B": "A", "tie": "A"}[label]
    return {
        "right": f"{THINK.format(x=label)}<answer>{label}</answer>",
        "wrong": f"{THINK.format(x=other)}<answer>{other}</answer>",
        "tie": f"{THINK.format(x='A')}<answer>tie</answer>",
        "malformed": f"Final verdict: [[{label}]]",
        "truncated": f"{THINK.format(x=label) * 3}<answer>{label}</answer>",  # cut by the length limit
    }[kind]


def expected_score(kind: str, label: str) -> float:
    """The default reward: 0 for bad format, else 0.5 format + 1.0 if the verdict matches."""
    if kind in ("malformed", "truncated"):
        return 0.0
    verdict = {"right": label, "wrong": "other", "tie": "tie"}[kind]
    return 0.5 + (1.0 if verdict == label else 0.0)


@pytest.fixture(scope="module")
def exported_rows(real_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Real hh-rlhf pairs plus one tie, exported to verl parquet by omni_rl.data.export, read back."""
    from omni_rl.data.export import ExportConfig, export_pairs
    from omni_rl.data.loaders import load_pairs

    pairs, rejects = load_pairs("hh_rlhf", real_fixtures / "hh_rlhf_pairs.jsonl")
    assert pairs and len(rejects) < len(pairs)
    tie = dataclasses.replace(pairs[10], id="tie-0", tie=True)
    out = tmp_path_factory.mktemp("genrm_parquet")
    result = export_pairs([*pairs[:6], tie], ExportConfig(out_dir=str(out), progress=False, seed=1))
    rows = pq.read_table(result.files["train"]).to_pylist()
    assert {r["reward_model"]["ground_truth"] for r in rows} == {"A", "B", "tie"}
    return rows


def verl_config(**reward_kwargs: object):
    """verl's real ppo_trainer config with our reward function set through the verl 0.9 keys."""
    from omni_rl.rl.recipe import compose, verl_config_dir

    overrides = [
        "actor_rollout_ref.rollout.name=vllm",
        f"reward.custom_reward_function.path={REPO / 'reward_fns' / 'genrm.py'}",
        *(f"+reward.custom_reward_function.reward_kwargs.{k}={v}" for k, v in reward_kwargs.items()),
    ]
    return compose(verl_config_dir(), "ppo_trainer", overrides)


def response_limit(tokenizer) -> int:
    """A max response length that fits every rollout kind except `truncated` (verl cuts that one)."""
    n = lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"])  # noqa: E731
    limit = max(n(rollout(k, lab)) for k in ROLLOUTS if k != "truncated" for lab in ("A", "B", "tie"))
    assert all(n(rollout("truncated", lab)) > limit + 10 for lab in ("A", "B", "tie"))
    return limit


def build_batch(rows: list[dict], responses: list[str], tokenizer) -> object:
    """A DataProto shaped like verl's rollout output: left-padded prompts, right-padded responses."""
    limit = response_limit(tokenizer)
    prompt_ids = [
        tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True) for r in rows
    ]
    prompt_ids = [p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p for p in prompt_ids]
    resp_ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:limit] for t in responses]
    return rollout_dataproto(
        prompt_ids,
        resp_ids,
        tokenizer.pad_token_id,
        {
            "data_source": [r["data_source"] for r in rows],
            "reward_model": [r["reward_model"] for r in rows],
            "extra_info": [dict(r["extra_info"]) for r in rows],
        },
        response_len=limit,
    )


async def score_with_verl(
    cfg, rows: list[dict], responses: list[str], tokenizer
) -> tuple[list[dict], torch.Tensor]:
    """verl's own path: load_reward_manager -> run_single per sample -> assemble_rm_scores."""
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(cfg, tokenizer)
    assert type(manager).__name__ == "NaiveRewardManager"
    data = build_batch(rows, responses, tokenizer)
    outs = [await manager.run_single(data[i : i + 1]) for i in range(len(data))]
    rm_scores = manager.assemble_rm_scores(data, [o["reward_score"] for o in outs])
    return outs, rm_scores


@pytest.fixture(scope="module")
def tokenizer(tiny_text_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_text_model)


def test_verl_loader_finds_and_pickles_our_function() -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    fn = get_custom_reward_fn(verl_config(tie_credit=0.25))
    assert fn.func.__name__ == "_call_with_kwargs_async"  # verl awaits it on the reward loop
    assert fn.args[0] is genrm.compute_score and fn.args[1] == {"tie_credit": 0.25}
    clone = pickle.loads(pickle.dumps(fn))  # Ray ships the function to reward workers
    assert clone.args[0] is genrm.compute_score


async def test_naive_manager_scores_every_rollout_kind(exported_rows: list[dict], tokenizer) -> None:
    rows = [r for r in exported_rows for _ in ROLLOUTS]
    kinds = [k for _ in exported_rows for k in ROLLOUTS]
    labels = [r["reward_model"]["ground_truth"] for r in rows]
    responses = [rollout(k, lab) for k, lab in zip(kinds, labels, strict=True)]
    outs, rm_scores = await score_with_verl(verl_config(), rows, responses, tokenizer)

    for out, kind, label in zip(outs, kinds, labels, strict=True):
        info = out["reward_extra_info"]
        assert out["reward_score"] == pytest.approx(expected_score(kind, label)), (kind, label, info)
        assert tuple(info) == genrm.REWARD_KEYS and info["label"] == label
        if kind == "truncated":
            assert info["format"] == 0.0 and info["verdict"] == "none"
    # verl puts each score on the last valid response token
    limit = response_limit(tokenizer)
    lengths = [min(len(tokenizer(t, add_special_tokens=False)["input_ids"]), limit) for t in responses]
    for i, n in enumerate(lengths):
        assert rm_scores[i, n - 1].item() == pytest.approx(outs[i]["reward_score"])
        assert rm_scores[i].abs().sum().item() == pytest.approx(abs(outs[i]["reward_score"]))


async def test_tie_credit_through_reward_kwargs(exported_rows: list[dict], tokenizer) -> None:
    row = next(r for r in exported_rows if r["reward_model"]["ground_truth"] in ("A", "B"))
    outs, _ = await score_with_verl(verl_config(tie_credit=0.5), [row], [rollout("tie", "A")], tokenizer)
    assert outs[0]["reward_score"] == pytest.approx(0.5 + 0.5)


@pytest.fixture
def fresh_consistency_state():
    """Each consistency test starts from zero counters and no cached clients."""
    genrm._STATE = genrm._ConsistencyState()
    yield genrm._STATE
    genrm._STATE = genrm._ConsistencyState()


@pytest.mark.server
async def test_r1_consistency_judge_on_real_vllm(
    exported_rows: list[dict], tokenizer, vllm_server, fresh_consistency_state
) -> None:
    """Right answers are sent to the consistency judge (constrained to a parseable answer); wrong ones are not."""
    row = exported_rows[0]
    label = row["reward_model"]["ground_truth"]
    cfg = verl_config(
        style="r1",
        consistency_base_url=vllm_server.base_url,
        consistency_model=vllm_server.served_model_name,
        consistency_max_tokens=32,
        # vLLM constrained decoding keeps the tiny model's answer parseable (its text is otherwise noise);
        # passed as a Hydra override, exactly as a user would, so it arrives as an OmegaConf container
        consistency_extra_body='{structured_outputs:{choice:["<answer>A</answer>","<answer>B</answer>"]}}',
    )
    rows = [row, row, row]
    responses = [rollout("right", label), rollout("right", label), rollout("wrong", label)]
    outs, _ = await score_with_verl(cfg, rows, responses, tokenizer)
    for out in outs[:2]:
        info = out["reward_extra_info"]
        assert info["consistency_checked"] == 1.0 and info["consistency_failed"] == 0.0
        assert info["consistency"] in (1.0, -1.0)
        assert out["reward_score"] == pytest.approx(0.5 + 1.0 * (1 + 0.5 * info["consistency"]))
    wrong = outs[2]["reward_extra_info"]
    assert wrong["consistency_checked"] == 0.0 and outs[2]["reward_score"] == pytest.approx(0.5)
    client = next(iter(fresh_consistency_state.clients.values()))
    assert client.stats.successes == 2 and client.stats.failures == 0


async def test_consistency_failures_are_zero_counted_and_bounded(fresh_consistency_state) -> None:
    """A dead endpoint never yields a free 1.0: consistency 0, counted, and past the limit the reward raises."""
    from omni_rl.testing.servers import free_port

    kwargs = dict(
        style="r1",
        consistency_base_url=f"http://127.0.0.1:{free_port()}/v1",
        consistency_model="nobody",
        consistency_max_retries=0,
        consistency_timeout=5.0,
        consistency_failure_window=3,
        consistency_max_failure_rate=0.5,
    )
    text = rollout("right", "A")
    for _ in range(2):
        out = await genrm.compute_score("s", text, "A", **kwargs)
        assert (out["consistency"], out["consistency_failed"], out["consistency_checked"]) == (0.0, 1.0, 1.0)
        assert out["score"] == pytest.approx(1.5)  # 0.5 format + 1 * (1 + 0.5 * 0): no bonus
    assert genrm.consistency_stats()["genrm/consistency_failures"] == 2.0
    with pytest.raises(RuntimeError, match=r"3 of the last 3 judge calls.*consistency_max_failure_rate=0\.5"):
        await genrm.compute_score("s", text, "A", **kwargs)
