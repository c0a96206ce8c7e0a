"""`omni-rl merge`: turn a verl checkpoint into a Hugging Face model folder that vLLM can serve.

    omni-rl merge local_dir=checkpoints/omni_rl_genrm/qwen2_5_vl_7b_grpo target_dir=models/genrm
    omni-rl merge local_dir=checkpoints/.../global_step_200/actor target_dir=models/genrm_step200

`local_dir` may be the actor folder itself, a `global_step_N` folder, or the experiment folder (then
the latest step, from verl's `latest_checkpointed_iteration.txt` or the highest `global_step_N`).
The merge itself is verl's: `python -m verl.model_merger merge --backend ... --local_dir ... --target_dir ...`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from omni_rl.utils.config import config_help, load_config

_MARKERS = {"fsdp": "fsdp_config.json", "megatron": "model"}


@dataclass
class MergeConfig:
    """Where the checkpoint is and where the HF model goes."""

    local_dir: str = ""
    target_dir: str = ""
    backend: str = "fsdp"  # fsdp | megatron (verl.model_merger backends)
    trust_remote_code: bool = False


def _latest_step(folder: Path) -> Path | None:
    """The newest global_step_N under an experiment folder (verl's tracker file first)."""
    tracker = folder / "latest_checkpointed_iteration.txt"
    if tracker.is_file():
        step = folder / f"global_step_{tracker.read_text().strip()}"
        if step.is_dir():
            return step
    steps = [p for p in folder.glob("global_step_*") if re.fullmatch(r"global_step_\d+", p.name)]
    return max(steps, key=lambda p: int(p.name.rsplit("_", 1)[1]), default=None)


def resolve_checkpoint(local_dir: str | Path, backend: str = "fsdp") -> Path:
    """The actor checkpoint folder verl's merger expects, or a clear error naming what was found."""
    path = Path(local_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"merge: checkpoint folder not found: {path}")
    marker = _MARKERS[backend]
    for candidate in (path, path / "actor"):
        if (candidate / marker).exists():
            return candidate
    step = _latest_step(path)
    if step is not None and (step / "actor" / marker).exists():
        return step / "actor"
    if step is not None and (step / marker).exists():  # verl's SFT trainer saves the model in global_step_N
        return step
    found = sorted(p.name for p in path.iterdir())[:20]
    raise FileNotFoundError(
        f"merge: {path} is not a verl {backend} checkpoint (no {marker}, no actor/, no global_step_N/actor); "
        f"it contains: {found}"
    )


def merge_command(cfg: MergeConfig, actor_dir: Path) -> list[str]:
    """The verl.model_merger command line for this checkpoint."""
    cmd = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", cfg.backend]
    cmd += ["--local_dir", str(actor_dir), "--target_dir", str(cfg.target_dir)]
    return cmd + (["--trust-remote-code"] if cfg.trust_remote_code else [])


def main(argv: list[str] | None = None) -> int:
    """CLI entry: resolve the checkpoint, run verl's merger, check the HF folder it wrote."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__ + "\nkeys:\n" + config_help(MergeConfig))
        return 0
    cfg = load_config(MergeConfig, argv)
    if cfg.backend not in _MARKERS:
        raise SystemExit(f"merge: backend must be one of {sorted(_MARKERS)}, got {cfg.backend!r}")
    if not (cfg.local_dir and cfg.target_dir):
        raise SystemExit("merge: set local_dir=<checkpoint> and target_dir=<output folder> (see --help)")
    try:
        actor_dir = resolve_checkpoint(cfg.local_dir, cfg.backend)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from exc
    print(f"merging {actor_dir} -> {cfg.target_dir}", flush=True)
    rc = subprocess.run(merge_command(cfg, actor_dir), check=False).returncode
    if rc != 0:
        print(f"merge: verl.model_merger exited with {rc}", file=sys.stderr)
        return rc
    if not (Path(cfg.target_dir) / "config.json").is_file():
        print(f"merge: {cfg.target_dir} has no config.json after merging", file=sys.stderr)
        return 1
    print(f"HF model written to {cfg.target_dir}; serve it with: omni-rl serve model={cfg.target_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
