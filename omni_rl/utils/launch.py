"""Pre-flight of a recipe launch: attention choice, the resume decision, and paths that survive `ray job submit`.

recipes/lib.sh runs this before `exec`-ing verl and puts what it prints (one Hydra override per line)
*before* the user's own arguments, so the user still wins:

- `actor_rollout_ref.model.override_config.attn_implementation=<flash_attention_2|sdpa>`
  (omni_rl.utils.attention; verl's FSDP engine defaults to flash-attention and crashes without it);
- under `ray job submit` (OMNI_RL_ROOT set and not the cwd): the recipe's relative data/model/checkpoint
  paths made absolute against OMNI_RL_ROOT, because the job runs in an uploaded copy of the repository
  without data/, .cache/ or checkpoints/ (a relative path the *user* passed is refused with the fix);
- the resume decision, logged: verl's `resume_mode=auto` silently resumes whatever checkpoint sits in
  `trainer.default_local_dir`. Each launch writes `omni_rl_job.json` there; a checkpoint written by a
  different recipe is refused (exit 3) instead of being resumed.

    python -m omni_rl.utils.launch --config-dir recipes/config --config-name genrm_grpo -- [overrides...]
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

JOB_FILE = "omni_rl_job.json"
ATTN_KEY = "actor_rollout_ref.model.override_config.attn_implementation"
# inputs are made absolute only if they exist under the root (an HF hub id such as Qwen/X stays as is)
INPUT_PATH_KEYS = (
    "data.train_files",
    "data.val_files",
    "actor_rollout_ref.model.path",
    "reward.reward_model.model_path",
    "model.path",
)
OUTPUT_PATH_KEYS = ("trainer.default_local_dir",)


class LaunchRefused(RuntimeError):
    """The launch would do something the user did not ask for (e.g. resume another job's checkpoint)."""


@dataclass
class JobIdentity:
    """What makes two launches 'the same job' for resuming: the recipe and the model it trains."""

    recipe: str
    profiles: str
    model: str

    def describe(self) -> str:
        """Human form for log lines."""
        return f"recipe={self.recipe} profiles=[{self.profiles}] model={self.model}"


def identity(config_name: str, cfg: DictConfig, overrides: list[str]) -> JobIdentity:
    """The identity of a launch from its recipe name, selected profiles and model path."""
    profiles = next((o.split("=", 1)[1].strip("[]") for o in overrides if o.startswith("+profile=")), "")
    model = OmegaConf.select(cfg, "actor_rollout_ref.model.path") or OmegaConf.select(cfg, "model.path")
    return JobIdentity(config_name, profiles, str(model))


def resume_decision(cfg: DictConfig, job: JobIdentity, write: bool) -> str:
    """Log line for what verl will do with `default_local_dir`; raises LaunchRefused for a foreign checkpoint."""
    mode = OmegaConf.select(cfg, "trainer.resume_mode", default=None)
    ckpt_dir = OmegaConf.select(cfg, "trainer.default_local_dir", default=None)
    if mode is None or ckpt_dir is None:
        return "resume: this trainer has no resume_mode/default_local_dir; nothing to check"
    folder = Path(ckpt_dir).absolute()
    latest = _latest_step(folder)
    owner_file = folder / JOB_FILE
    owner = json.loads(owner_file.read_text()) if owner_file.exists() else None
    if mode == "auto" and latest is not None:
        if owner is not None and owner.get("recipe") != job.recipe:
            raise LaunchRefused(
                f"{folder} holds global_step_{latest} of another job ({owner.get('recipe')}, "
                f"model={owner.get('model')}); this launch is {job.describe()}. verl would resume it and "
                "train the wrong model. Pick another folder (trainer.experiment_name=... or "
                "trainer.default_local_dir=...) or start fresh with trainer.resume_mode=disable."
            )
        who = "this job" if owner else "an unknown job (no omni_rl_job.json)"
        msg = f"resume: {folder} holds global_step_{latest} of {who} -> verl resumes from step {latest}"
        total = OmegaConf.select(cfg, "trainer.total_training_steps", default=None)
        if isinstance(total, int) and latest >= total:
            msg += f"; WARNING: total_training_steps={total} is already reached, so it will train nothing"
    elif mode == "auto":
        msg = f"resume: no checkpoint in {folder} -> training from scratch"
    else:
        msg = f"resume: trainer.resume_mode={mode} (folder {folder})"
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        owner_file.write_text(json.dumps(job.__dict__, indent=1) + "\n")
    return msg


def _latest_step(folder: Path) -> int | None:
    """The step verl's own tracker file names, when its global_step_N folder exists."""
    tracker = folder / "latest_checkpointed_iteration.txt"
    if not tracker.exists():
        return None
    step = int(tracker.read_text().strip())
    return step if (folder / f"global_step_{step}").exists() else None


def absolute_paths(cfg: DictConfig, user_overrides: list[str], root: Path) -> list[str]:
    """Overrides making the recipe's relative paths absolute under `root`; user-given relative paths refused."""
    user_keys = {o.lstrip("+").split("=", 1)[0]: o.split("=", 1)[1] for o in user_overrides if "=" in o}
    out: list[str] = []
    for key in (*INPUT_PATH_KEYS, *OUTPUT_PATH_KEYS):
        raw = _raw(cfg, key)
        if not isinstance(raw, str) or not raw or raw.startswith(("/", "${")) or "://" in raw:
            continue
        if key in user_keys:
            if (root / raw).exists() or key in OUTPUT_PATH_KEYS:
                raise LaunchRefused(
                    f"{key}={raw} is relative, but under `ray job submit` the job runs in an uploaded copy "
                    f"of the repository without it: pass {key}={root / raw}"
                )
            continue
        if key in OUTPUT_PATH_KEYS or (root / raw).exists():
            out.append(f"{key}={root / raw}")
    return out


def _raw(cfg: DictConfig, key: str) -> Any:
    """A key's value without resolving interpolations (None when absent)."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return None
        node = node._get_node(part)
    return node._value() if hasattr(node, "_value") else node


def attention_key(cfg: DictConfig) -> str | None:
    """Where verl reads the HF attention implementation: the PPO actor's model, or the SFT trainer's."""
    if OmegaConf.select(cfg, "actor_rollout_ref.model") is not None:
        return ATTN_KEY
    if OmegaConf.select(cfg, "model.override_config") is not None:
        return "model.override_config.attn_implementation"
    return None


def preflight(config_dir: Path, config_name: str, overrides: list[str], write: bool) -> list[str]:
    """Print the decisions to stderr and return the overrides to put between the profiles and the user's."""
    from omni_rl.utils.attention import choose

    profiles = [o for o in overrides if o.startswith("+profile=")]
    user = [o for o in overrides if not o.startswith("+profile=")]
    extra: list[str] = []
    cfg = compose(config_dir, config_name, overrides)
    attn_key = attention_key(cfg)
    if attn_key is not None:
        impl, reason = choose()
        extra.append(f"++{attn_key}={impl}")
        print(f"[omni-rl] attention: {impl} ({reason})", file=sys.stderr)
    root = Path(os.environ.get("OMNI_RL_ROOT") or Path.cwd()).resolve()
    if root != Path.cwd().resolve():
        extra += absolute_paths(cfg, user, root)
        cfg = compose(config_dir, config_name, [*profiles, *extra, *user])
    print(f"[omni-rl] {resume_decision(cfg, identity(config_name, cfg, profiles), write)}", file=sys.stderr)
    return extra


def compose(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """Compose like `@hydra.main` (the same as omni_rl.rl.recipe.compose, without importing verl plug-ins).

    The recipes search `pkg://verl.trainer.config`, which makes Hydra import verl (~6 s of torch, Ray and
    tensordict) just to read its yaml files; the same folder is searched as a file path instead (the composed
    config is identical), so a launch's pre-flight costs well under a second.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base=None):
        return hydra_compose(
            config_name=config_name, overrides=[*_file_searchpath(config_dir, config_name), *overrides]
        )


def _file_searchpath(config_dir: Path, config_name: str) -> list[str]:
    """A `hydra.searchpath` override naming verl's config folder by path (found without importing verl)."""
    import importlib.util

    import yaml

    path = config_dir / f"{config_name}.yaml"
    spec = importlib.util.find_spec("verl")
    if not path.is_file() or spec is None or spec.origin is None:
        return []
    searchpath = ((yaml.safe_load(path.read_text()) or {}).get("hydra") or {}).get("searchpath") or []
    verl_dir = Path(spec.origin).parent / "trainer" / "config"
    if "pkg://verl.trainer.config" not in searchpath or not verl_dir.is_dir():
        return []
    entries = [f"file://{verl_dir}" if e == "pkg://verl.trainer.config" else e for e in searchpath]
    return [f"hydra.searchpath=[{','.join(entries)}]"]


_HYDRA_VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--info", "-i")


def split_hydra_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(overrides, hydra flags with their values) from a recipe's argument list."""
    overrides, flags = [], []
    it = iter(args)
    for arg in it:
        if arg.startswith("-"):
            flags.append(arg)
            if arg in _HYDRA_VALUE_FLAGS:
                nxt = next(it, None)
                if nxt is not None:
                    flags.append(nxt)
        else:
            overrides.append(arg)
    return overrides, flags


def main(argv: list[str] | None = None) -> int:
    """CLI used by recipes/lib.sh: overrides on stdout, decisions on stderr, exit 3 when refused."""
    args = list(sys.argv[1:] if argv is None else argv)
    sep = args.index("--") if "--" in args else len(args)
    opts, overrides = args[:sep], args[sep + 1 :]
    config_dir = Path(opts[opts.index("--config-dir") + 1])
    config_name = opts[opts.index("--config-name") + 1]
    plain, hydra_flags = split_hydra_flags(overrides)
    # printing the config (--cfg job) or recording a launch in tests must not touch checkpoint folders
    write = not hydra_flags and os.environ.get("OMNI_RL_LAUNCH_CAPTURE") != "1"
    try:
        extra = preflight(config_dir, config_name, plain, write)
    except LaunchRefused as exc:
        print(f"[omni-rl] refusing to launch: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # a config that does not compose: say it in one line, as verl would fail too
        if type(exc).__module__.split(".")[0] not in ("hydra", "omegaconf"):
            raise
        print(f"[omni-rl] {config_name} does not compose with these arguments: {exc}", file=sys.stderr)
        return 2
    print("\n".join(extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
