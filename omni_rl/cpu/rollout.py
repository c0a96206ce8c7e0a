"""A verl rollout backend that generates with HF `generate` on CPU and takes the actor's weights each step.

verl 0.9 only registers vllm/sglang/trtllm rollouts, none of which run in a CPU-only venv. This backend
plugs into the same two registries those use, under the name `hf_cpu`:

- `RolloutReplicaRegistry["hf_cpu"]` -> `HFCpuReplica`: launches one `HFGenerateServer` Ray actor per
  replica, the token-in/token-out server that verl's agent loop calls (`generate(...) -> TokenOutput`).
- `_ROLLOUT_REGISTRY[("hf_cpu", "async")]` -> `HFCpuServerAdapter`: lives in the trainer's hybrid worker;
  `update_weights` receives the FSDP engine's full tensors and pushes them to the server, so every step
  samples from the current policy (checkpoint_engine.backend=naive, the sync trainer's path).

Select it with `actor_rollout_ref.rollout.name=hf_cpu`. For a vision-language model (one with an HF
processor, e.g. Qwen2.5-VL) the server turns verl's `image_data`/`video_data` into `pixel_values` /
`image_grid_thw` (/ `pixel_values_videos` / `video_grid_thw`) with the same processor call verl's agent loop
uses for the actor, so rollout and actor see identical vision features. A text-only model refuses media.
With `OMNI_RL_CPU_TRACE=<dir>` every request's input shapes are recorded (omni_rl.cpu.trace).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any

import ray
import torch
from torch.distributed.device_mesh import DeviceMesh
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from omni_rl.cpu import ROLLOUT_NAME
from omni_rl.cpu.trace import describe_inputs, record

# processor outputs that are positions or masks for the processor's own token ids, not media features
_NOT_FEATURES = ("input_ids", "attention_mask", "mm_token_type_ids")


def server_actor_name(replica_rank: int, role: str = "", suffix: str = "") -> str:
    """Ray actor name of a replica's server; the adapter in the trainer finds the policy's server by it.

    Like verl's vLLM servers, a reward-model (or teacher) replica gets its role in the name, so a GenRM
    served by verl's reward pool (RM=pool) and the policy's rollout never claim the same actor name.
    """
    middle = f"{role}_" if role else ""
    return f"{ROLLOUT_NAME}_server_{middle}{replica_rank}{suffix}"


def replica_role(replica: Any) -> str:
    """The replica's role in its server name: reward, teacher, or empty for the policy."""
    if getattr(replica, "is_reward_model", False):
        return "reward"
    return "teacher" if getattr(replica, "is_teacher_model", False) else ""


def _top_k(value: int | None) -> int | None:
    """verl's 'no top-k' is -1 (vLLM style); HF's is None."""
    return None if value is None or value <= 0 else int(value)


class HFGenerateServer:
    """Ray actor: one HF causal LM on CPU serving verl's token-in/token-out `generate` contract."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        from transformers import GenerationConfig

        self.config: RolloutConfig = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        path = self.model_config.local_path or self.model_config.path
        self.processor = _load_processor(path)
        self.model = _load_model(path)
        self.model.eval()
        self.gen_config = GenerationConfig.from_model_config(self.model.config)
        self.eos_token_id = self.gen_config.eos_token_id
        self.pad_token_id = self.gen_config.pad_token_id
        if self.pad_token_id is None:
            self.pad_token_id = self.eos_token_id if isinstance(self.eos_token_id, int) else 0
        self.placeholder_ids = _placeholder_ids(self.processor)
        self.global_steps: int | None = None
        self.weight_version = 0
        self.requests_served = 0
        self.media_requests = 0
        self.last_media_inputs: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    def get_server_address(self) -> str:
        """A unique key for verl's load balancer (there is no HTTP endpoint behind it)."""
        return f"{ROLLOUT_NAME}-replica-{self.replica_rank}:0"

    def stats(self) -> dict[str, Any]:
        """Counters a test reads to prove weights were pushed and requests served."""
        return {
            "weight_version": self.weight_version,
            "global_steps": self.global_steps,
            "requests_served": self.requests_served,
            "media_requests": self.media_requests,
            "last_media_inputs": self.last_media_inputs,
        }

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        audio_data: list[Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        **_ignored: Any,
    ) -> TokenOutput:
        """Sample one response for `prompt_ids` (and its media) with the current weights, one at a time."""
        media = {"images": image_data or None, "videos": video_data or None, "audio": audio_data or None}
        self._check_media(request_id, media)
        async with self._lock:
            return await asyncio.to_thread(
                self._generate_sync, list(prompt_ids), dict(sampling_params), media, mm_processor_kwargs
            )

    def _check_media(self, request_id: str, media: dict[str, Any]) -> None:
        """Media for a model that cannot take it is a clear error, never a silently text-only sample."""
        kinds = [k for k, v in media.items() if v]
        if not kinds:
            return
        if self.processor is None:
            raise NotImplementedError(
                f"rollout {ROLLOUT_NAME!r}: request {request_id} carries {kinds} but the model "
                f"{self.model_config.path} is text-only (no HF processor); use a VL model"
            )
        if media["audio"] and getattr(self.processor, "feature_extractor", None) is None:
            raise NotImplementedError(
                f"rollout {ROLLOUT_NAME!r}: request {request_id} carries audio but the model's "
                f"processor ({type(self.processor).__name__}) has no audio feature extractor"
            )

    def media_inputs(
        self, prompt_ids: list[int], media: dict[str, Any], mm_processor_kwargs: dict[str, Any] | None = None
    ) -> dict[str, torch.Tensor]:
        """The model's media features for one prompt: verl's own processor call (as its agent loop makes
        for the actor), so pixel features match; prompt_ids already hold the expanded placeholder runs."""
        from verl.utils.tokenizer.tokenizer import build_multimodal_processor_inputs, get_processor_token_id

        placeholders = set(self.placeholder_ids)
        collapsed = [
            t
            for i, t in enumerate(prompt_ids)
            if not (i > 0 and t in placeholders and prompt_ids[i - 1] == t)
        ]
        text = self.processor.tokenizer.decode(collapsed, skip_special_tokens=True)
        out = build_multimodal_processor_inputs(
            self.processor, text=[text], mm_processor_kwargs=mm_processor_kwargs, **media
        )
        features = {k: v for k, v in dict(out.convert_to_tensors("pt")).items() if k not in _NOT_FEATURES}
        if "mm_token_type_ids" in out:  # transformers >= 5.3 builds M-RoPE positions from it
            ids = torch.tensor([prompt_ids], dtype=torch.long)
            types = torch.zeros_like(ids)
            for code, kind in enumerate(("image", "video", "audio"), start=1):
                token = get_processor_token_id(self.processor, kind)
                if token is not None:
                    types[ids == token] = code
            features["mm_token_type_ids"] = types
        return features

    def _max_new_tokens(self, prompt_len: int, params: dict[str, Any]) -> int:
        """Same budget rule as verl's vLLM server: response_length, capped by prompt+response length."""
        if "max_tokens" in params:
            budget = int(params.pop("max_tokens"))
        elif "max_new_tokens" in params:
            budget = int(params.pop("max_new_tokens"))
        else:
            budget = min(
                self.config.response_length,
                self.config.prompt_length + self.config.response_length - prompt_len,
            )
        return max(1, budget)

    def _media_features(
        self, prompt_ids: list[int], media: dict[str, Any] | None, mm_kwargs: dict[str, Any] | None
    ) -> dict[str, torch.Tensor]:
        """Features for `generate` (empty for a text prompt); counted and traced as proof of delivery."""
        if not media or not any(media.values()):
            return {}
        features = self.media_inputs(prompt_ids, media, mm_kwargs)
        self.media_requests += 1
        self.last_media_inputs = {"prompt_len": len(prompt_ids), **describe_inputs(features)}
        record("rollout", {"replica": self.replica_rank, **self.last_media_inputs})
        return features

    @torch.no_grad()
    def _generate_sync(
        self,
        prompt_ids: list[int],
        params: dict[str, Any],
        media: dict[str, Any] | None = None,
        mm_kwargs: dict[str, Any] | None = None,
    ) -> TokenOutput:
        """HF generate on one prompt; logprobs come from the raw (unwarped) logits, like vLLM's."""
        features = self._media_features(prompt_ids, media, mm_kwargs)
        max_new = self._max_new_tokens(len(prompt_ids), params)
        temperature = float(params.get("temperature", 1.0) or 0.0)
        do_sample = temperature > 0
        kwargs: dict[str, Any] = {"do_sample": do_sample}
        if do_sample:
            kwargs.update(temperature=temperature, top_p=float(params.get("top_p", 1.0)))
            kwargs["top_k"] = _top_k(params.get("top_k", -1))
        if params.get("ignore_eos") or self.config.ignore_eos:
            kwargs["min_new_tokens"] = max_new
        rep = float(params.get("repetition_penalty", 1.0) or 1.0)
        if rep != 1.0:
            kwargs["repetition_penalty"] = rep
        if self.placeholder_ids:
            # A media placeholder in a *response* has no media behind it: verl's M-RoPE position ids for
            # the sample then fail and the sample is dropped. Never sample one (logprobs stay the raw ones).
            kwargs["suppress_tokens"] = self.placeholder_ids
        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
            **features,
            **kwargs,
        )
        tokens = out.sequences[0, len(prompt_ids) :].tolist()
        log_probs = None
        if params.get("logprobs"):
            logits = torch.stack(out.logits, dim=1)[0].float()
            log_probs = (
                torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(tokens)[:, None])[:, 0].tolist()
            )
        tokens, log_probs = self._trim_after_eos(tokens, log_probs)
        self.requests_served += 1
        return TokenOutput(
            token_ids=tokens,
            log_probs=log_probs,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    def _trim_after_eos(self, tokens: list[int], log_probs: list[float] | None) -> tuple[list, list | None]:
        """Drop the padding HF appends after EOS (batch of one: there is none, but be exact)."""
        eos = {self.eos_token_id} if isinstance(self.eos_token_id, int) else set(self.eos_token_id or [])
        for i, tok in enumerate(tokens):
            if tok in eos:
                return tokens[: i + 1], (log_probs[: i + 1] if log_probs is not None else None)
        return tokens, log_probs

    def update_weights(self, named_tensors: list[tuple[str, torch.Tensor]], global_steps: int | None) -> int:
        """Copy the actor's full tensors into the served model; unknown names fail loudly."""
        params = self.model.state_dict(keep_vars=True)  # keeps tied names (lm_head.weight) too
        unknown = [name for name, _ in named_tensors if name not in params]
        if unknown:
            raise KeyError(f"{ROLLOUT_NAME}: actor sent weights the rollout model lacks: {unknown[:5]}")
        with torch.no_grad():
            for name, tensor in named_tensors:
                params[name].copy_(tensor.to(params[name].dtype))
        self.weight_version += 1
        if global_steps is not None:
            self.global_steps = global_steps
        return len(named_tensors)

    # --- lifecycle hooks verl calls on every rollout server; nothing to free on CPU -------------------
    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        async with self._lock:
            return None

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        return None

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


def _placeholder_ids(processor: Any) -> list[int]:
    """Token ids of the processor's media placeholders (image/video/audio pads); none for a text model."""
    from verl.utils.tokenizer.tokenizer import get_processor_token_id

    ids = (get_processor_token_id(processor, kind) for kind in ("image", "video", "audio"))
    return sorted({int(t) for t in ids if t is not None})


def _load_processor(path: str) -> Any:
    """verl's own processor loader (None for a text-only model), so media handling matches the trainer."""
    from verl.utils.tokenizer import hf_processor

    return hf_processor(path)


def _load_model(path: str) -> torch.nn.Module:
    """The HF auto class verl's actor picks for this config, so pushed weight names match."""
    from transformers import AutoConfig
    from verl.utils.model import get_hf_auto_model_class

    auto = get_hf_auto_model_class(AutoConfig.from_pretrained(path))
    return auto.from_pretrained(path, dtype=torch.float32)


class HFCpuReplica(RolloutReplica):
    """verl rollout replica backed by one `HFGenerateServer` actor (needs no accelerator)."""

    def server_name(self) -> str:
        """This replica's server actor name: distinct for a reward-model replica and a policy replica."""
        return server_actor_name(self.replica_rank, replica_role(self), getattr(self, "name_suffix", ""))

    async def launch_servers(self) -> None:
        """Start the server actor beside the trainer (0 CPUs reserved: it shares the trainer's slot)."""
        server_cls = ray.remote(HFGenerateServer)
        server = server_cls.options(
            name=self.server_name(),
            num_cpus=0,
            max_concurrency=self.max_concurrency,
        ).remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        self.servers = [server]
        self._server_handle = server
        self._server_address = await server.get_server_address.remote()


class HFCpuServerAdapter(BaseRollout):
    """In the trainer's hybrid worker: forwards the actor's weights to this replica's server."""

    def __init__(
        self,
        config: RolloutConfig,
        model_config: HFModelConfig,
        device_mesh: DeviceMesh | None = None,
        replica_rank: int = -1,
    ) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % world
        self.is_leader_rank = self.rollout_rank == 0
        self._server: ray.actor.ActorHandle | None = None

    def _server_handle(self) -> ray.actor.ActorHandle | None:
        """The replica's server (launched after this adapter, hence looked up lazily); None off-leader."""
        if not self.is_leader_rank:
            return None
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(
        self,
        weights: Iterable[tuple[str, torch.Tensor]],
        wire_format: str = "named_tensors",
        global_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Gather the full tensors on CPU and hand them to the server in one call."""
        if wire_format != "named_tensors":
            raise NotImplementedError(
                f"{ROLLOUT_NAME} rollout takes wire_format='named_tensors', got {wire_format!r}"
            )
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError(
                f"{ROLLOUT_NAME} rollout needs merged weights (set model.lora.merge=true)"
            )
        named = [(name, _full_cpu(t)) for name, t in weights]
        server = self._server_handle()
        if server is not None:
            await server.update_weights.remote(named, global_steps)


def _full_cpu(tensor: torch.Tensor) -> torch.Tensor:
    """A plain CPU tensor (DTensors are gathered) that pickles cheaply to the server actor."""
    if hasattr(tensor, "full_tensor"):
        tensor = tensor.full_tensor()
    return tensor.detach().to("cpu").contiguous()
