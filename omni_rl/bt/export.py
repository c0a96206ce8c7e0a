"""Export a BT model to an architecture vLLM serves as a pooling model (text Qwen2 backbones).

- head=mlp    → `Qwen2ForRewardModel` (score = Linear(h,h)+ReLU+Linear(h,1), the Qwen2.5-Math-RM
                layout); vLLM serves it with `--runner pooling` on `/pooling`, one reward per token —
                the last token's value is the BT reward.
- head=linear → `Qwen2ForSequenceClassification` with num_labels=1; vLLM serves it on `/classify`,
                which is what verl's discriminative reward-model path calls (`use_activation=False`).

The exported folder also loads in transformers (`AutoModelForSequenceClassification` for linear).
- Qwen2.5-VL backbone, head=linear → the VL model's own architecture plus `language_model.score.weight`;
                serve with `--runner pooling --convert classify` and POST chat messages (images included)
                to `/classify` with `use_activation: false`: the value is the in-process BT reward
                (tests/omni/test_bt_vl_serve.py). A VL mlp head is refused: vLLM's seq-cls adapter has
                one linear `score` only; score VL mlp models in-process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omni_rl.bt.model import BTRewardModel

_ARCH = {"mlp": "Qwen2ForRewardModel", "linear": "Qwen2ForSequenceClassification"}


def export_for_vllm(bt_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write `out_dir` with vLLM-native weight names and config; raises for unsupported backbones."""
    from safetensors.torch import save_file
    from transformers import AutoProcessor

    model = BTRewardModel.from_pretrained(bt_dir)
    bcfg = model.config.backbone_config
    head = model.config.head
    vl = bcfg.model_type == "qwen2_5_vl" and head == "linear"
    if bcfg.model_type != "qwen2" and not vl:
        raise ValueError(
            f"export_for_vllm supports Qwen2 text backbones and Qwen2.5-VL with head=linear; this model is "
            f"{bcfg.model_type!r} with head={head!r}. Score it in-process (omni_rl.bt.score.BTScorer)."
        )
    tensors = {f"model.{k}": v for k, v in model.backbone.state_dict().items()}
    linears = [m for m in model.head if hasattr(m, "weight")]
    if vl:  # vLLM's seq-cls adapter (--convert classify) puts the score on the VL model's language model
        tensors["language_model.score.weight"] = linears[0].weight
    elif head == "mlp":
        first, last = linears
        tensors |= {
            "score.0.weight": first.weight,
            "score.0.bias": first.bias,
            "score.2.weight": last.weight,
            "score.2.bias": last.bias,
        }
    else:
        tensors["score.weight"] = linears[0].weight
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = bcfg.to_dict()
    arch = "Qwen2_5_VLForConditionalGeneration" if vl else _ARCH[head]
    cfg.update(architectures=[arch], num_labels=1, id2label={0: "LABEL_0"}, label2id={"LABEL_0": 0})
    cfg["omni_rl_bt"] = {"head": head, "default_criteria": model.config.default_criteria}
    type(bcfg).from_dict(cfg).save_pretrained(out)
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, out / "model.safetensors")
    AutoProcessor.from_pretrained(bt_dir).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m omni_rl.bt.export BT_DIR OUT_DIR`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m omni_rl.bt.export BT_DIR OUT_DIR", file=sys.stderr)
        return 2
    print(export_for_vllm(args[0], args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
