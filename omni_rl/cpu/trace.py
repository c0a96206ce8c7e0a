"""Opt-in record of what the CPU rollout and the actor's forward actually receive (shapes, media grids).

A multimodal run can look healthy while the model never sees the media (a dropped `pixel_values` only
changes numbers). With `OMNI_RL_CPU_TRACE=<dir>` set in the trainer's environment (verl's Ray workers
inherit it), the `hf_cpu` rollout server appends one JSON line per request to `<dir>/rollout.jsonl` and
the actor engine one per forward micro-batch to `<dir>/actor.jsonl`. Unset, nothing is recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

TRACE_ENV = "OMNI_RL_CPU_TRACE"


def trace_dir() -> Path | None:
    """The trace folder, or None when tracing is off."""
    value = os.environ.get(TRACE_ENV)
    return Path(value) if value else None


def describe_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Shapes of every tensor input, plus the values of the media grids (`*_grid_thw`)."""
    out: dict[str, Any] = {"shapes": {}}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            out["shapes"][key] = list(value.shape)
            if key.endswith("_grid_thw"):
                out[key] = value.tolist()
    return out


def record(kind: str, entry: Mapping[str, Any]) -> None:
    """Append `entry` as one JSON line to `<trace dir>/<kind>.jsonl` (no-op when tracing is off)."""
    folder = trace_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"pid": os.getpid(), **entry}) + "\n"
    with open(folder / f"{kind}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line)


def traced_lm_head_engine() -> type:
    """verl's FSDP LM-head engine, recording each micro-batch's model inputs when tracing is on."""
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    class TracedFSDPEngineWithLMHead(FSDPEngineWithLMHead):
        """Same engine; `prepare_model_inputs` output is what the HF model's forward receives."""

        def prepare_model_inputs(self, micro_batch: Any) -> tuple[dict, dict]:
            model_inputs, output_args = super().prepare_model_inputs(micro_batch)
            if trace_dir() is not None:
                record("actor", describe_inputs(model_inputs))
            return model_inputs, output_args

    return TracedFSDPEngineWithLMHead
