"""Can verl 0.9.1's FSDP actor and our `hf_cpu` rollout train the Qwen2.5-Omni thinker (GenRM on audio)?
Not on audio. These tests pin exactly what blocks it, with verl's own code, so they fail the day a verl
upgrade lifts a blocker (then add a `cpu_tiny_omni` profile):

1. Processor. `verl.utils.tokenizer.hf_processor` (verl/utils/tokenizer/tokenizer.py:208-236) only knows the
   Qwen2-VL / Qwen2.5-VL / Qwen3-VL / GLM-4V / Mllama / Gemma4 processors: `Qwen2_5OmniProcessor` reaches
   `raise ValueError("Unsupported processor type")` (line 236), which the `except` at 242-246 turns into a
   warning and `processor = None`. Every verl process (trainer, agent loop, rollout, actor) gets no processor.
2. Data. With no processor, `RLHFDataset._build_messages` (verl/utils/dataset/rl_dataset.py:323) asserts
   "processor is needed to process multimodal data" on every row with audio (or images/videos): an audio GenRM
   parquet cannot even be loaded. (Were a processor bound, verl's M-RoPE positions would still be wrong for
   audio: `_compute_position_ids` (verl/experimental/agent_loop/agent_loop.py:920-965) calls
   `processor.get_rope_index` with image/video grids only; the Omni thinker's also needs `audio_seqlens` and
   `use_audio_in_video`, and nothing in verl binds it.)
3. Checkpoint form. The released form (`Qwen2_5OmniForConditionalGeneration`, model_type `qwen2_5_omni`, thinker
   weights under `thinker.`) maps to `AutoModel` in `get_hf_auto_model_class` (verl/utils/model.py:709), which
   has no entry for it, so the FSDP actor cannot build it (workers/engine/fsdp/transformer_impl.py:274-281).
   A thinker-only checkpoint (model_type `qwen2_5_omni_thinker`) maps to `AutoModelForImageTextToText` and loads,
   in the actor and in `hf_cpu` (text-only, since the processor is None).

What does work today: GenRM GRPO of the thinker-only checkpoint on *text* judge prompts (last test).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

from omni_rl.learn.tiny_models import build_omni_processor
from omni_rl.testing.verl_env import recipe_env, run_recipe


@pytest.fixture(scope="module")
def omni_models(tiny_omni_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny Omni model in its released form, and the same thinker saved thinker-only."""
    from safetensors.torch import load_file
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    full = tiny_omni_model
    thinker = tmp_path_factory.mktemp("omni") / "thinker-only"
    cfg = AutoConfig.from_pretrained(full)
    model = Qwen2_5OmniThinkerForConditionalGeneration(cfg.thinker_config)
    weights = load_file(str(full / "model.safetensors"))
    state = {k.removeprefix("thinker."): v for k, v in weights.items() if k.startswith("thinker.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # tied to the embeddings
    model.save_pretrained(thinker)
    build_omni_processor().save_pretrained(thinker)
    return {"full": full, "thinker": thinker}


def _hf_processor(path: Path) -> tuple[object, list[str]]:
    from verl.utils.tokenizer import hf_processor

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proc = hf_processor(str(path))
    return proc, [str(w.message) for w in caught]


def test_verl_has_no_processor_for_the_omni_thinker(omni_models: dict[str, Path]) -> None:
    """Blocker 1: verl's processor loader drops Qwen2_5OmniProcessor (the VL processor is kept)."""
    from transformers import AutoProcessor

    assert type(AutoProcessor.from_pretrained(omni_models["thinker"])).__name__ == "Qwen2_5OmniProcessor"
    proc, messages = _hf_processor(omni_models["thinker"])
    assert proc is None
    assert any("Unsupported processor type: Qwen2_5OmniProcessor" in m for m in messages), messages


def test_verl_dataset_refuses_audio_rows_without_processor(
    omni_models: dict[str, Path], tmp_path: Path
) -> None:
    """Blocker 2: an audio judge row cannot be loaded by verl's RLHFDataset when the processor is None."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    path = tmp_path / "audio.parquet"
    row = {
        "data_source": "audio_hh_rlhf",
        "prompt": [{"role": "user", "content": "<audio>\nWhich response is better?"}],
        "audios": [str(tmp_path / "tone.wav")],
        "reward_model": {"ground_truth": "A"},
        "extra_info": {"index": 0},
    }
    pd.DataFrame([row]).to_parquet(path)
    cfg = OmegaConf.create(
        {"max_prompt_length": 4096, "cache_dir": str(tmp_path / "cache"), "filter_overlong_prompts": False,
         "return_raw_chat": True}
    )  # fmt: skip
    tok = AutoTokenizer.from_pretrained(omni_models["thinker"])
    ds = RLHFDataset(str(path), tok, cfg, processor=_hf_processor(omni_models["thinker"])[0])
    with pytest.raises(AssertionError, match="processor is needed to process multimodal data"):
        ds[0]


def test_actor_model_class_needs_a_thinker_only_checkpoint(omni_models: dict[str, Path]) -> None:
    """Blocker 3: the released form resolves to AutoModel (unbuildable); thinker-only loads, also in hf_cpu."""
    from transformers import AutoModel
    from verl.utils.model import get_hf_auto_model_class

    from omni_rl.cpu.rollout import HFGenerateServer

    full_cfg = AutoConfig.from_pretrained(omni_models["full"])
    assert get_hf_auto_model_class(full_cfg) is AutoModel
    with pytest.raises(ValueError, match="Unrecognized configuration class"):
        AutoModel.from_config(full_cfg)
    thinker_cfg = AutoConfig.from_pretrained(omni_models["thinker"])
    assert get_hf_auto_model_class(thinker_cfg) is AutoModelForImageTextToText
    rollout = OmegaConf.create(
        {
            "_target_": "verl.workers.config.RolloutConfig",
            "name": "hf_cpu",
            "prompt_length": 64,
            "response_length": 4,
        }
    )
    model_cfg = OmegaConf.create(
        {"_target_": "verl.workers.config.HFModelConfig", "path": str(omni_models["thinker"])}
    )
    server = HFGenerateServer(rollout, model_cfg, replica_rank=0)
    assert type(server.model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    assert server.processor is None  # text-only: media are refused, never silently dropped
    with pytest.raises(NotImplementedError, match="text-only"):
        server._check_media("a0", {"images": None, "videos": None, "audio": [torch.zeros(1600)]})


@pytest.mark.slow
def test_thinker_trains_on_text_through_verl_main_ppo(
    omni_models: dict[str, Path], real_fixtures: Path, tmp_path: Path
) -> None:
    """What does work: the thinker-only checkpoint is a GenRM backbone for *text* judge prompts —
    `PROFILE=cpu_tiny bash recipes/train_genrm.sh` runs two GRPO steps with verl's FSDP actor building
    Qwen2_5OmniThinkerForConditionalGeneration and `hf_cpu` serving the pushed weights (staleness 0)."""
    import subprocess
    import sys

    from omni_rl.learn.curves import step_metrics
    from omni_rl.rewards.genrm import compute_score_sync

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "pairs.jsonl").write_text(
        "\n".join((real_fixtures / "hh_rlhf_pairs.jsonl").read_text().splitlines()[:4]) + "\n"
    )
    prep = [sys.executable, "-m", "omni_rl.cli", "data", "prepare", "loader=hh_rlhf", "progress=false"]
    prep += [f"path={tmp_path / 'pairs.jsonl'}", f"out_dir={tmp_path}"]
    assert subprocess.run(prep, cwd=repo, capture_output=True, text=True, timeout=300).returncode == 0
    env = recipe_env("cpu_tiny")
    log = run_recipe("train_genrm.sh", env, tmp_path, tmp_path / "train.parquet", omni_models["thinker"])
    assert "Qwen2_5OmniThinkerForConditionalGeneration contains" in log  # the actor verl built
    metrics = step_metrics(log)
    assert sorted(metrics) == [1, 2]
    kwargs = yaml.safe_load((repo / "recipes/config/profile/cpu_tiny.yaml").read_text())["reward"]
    kwargs = kwargs["custom_reward_function"]["reward_kwargs"]
    for step, m in metrics.items():
        rows = [json.loads(x) for x in (tmp_path / "rollouts" / f"{step}.jsonl").read_text().splitlines()]
        ours = [
            compute_score_sync("hh_rlhf", r["output"], r["gts"], extra_info={}, **kwargs)["score"]
            for r in rows
        ]
        assert len(rows) == 4 and [r["score"] for r in rows] == pytest.approx(ours, abs=1e-5)
        assert m["training/off_policy/trajectory_staleness/max"] == 0, "rollout served stale weights"
