"""Check a launch recipe against verl's real Hydra config: no unknown, legacy or silently ignored keys.

verl's Hydra tree accepts new keys from a layered yaml without complaint and `main_ppo` ignores the
legacy top-level `custom_reward_function.*` / `reward_model.*`. A typo or a legacy key therefore
trains with a default instead of what the recipe says. `check_launch` catches that:

1. run the recipe script with `PYTHON` pointing at a shim that records the exact argv it would run;
2. compose that argv with Hydra (our yaml + selected profiles + overrides over verl's own config);
3. every key the recipe sets must exist in verl's config (or in the dataclass verl builds from that
   node, or a free-form mapping verl reads with `.get`), must not be legacy, and must hold the
   recipe's value in the final config.

`python -m omni_rl.rl.recipe recipes/train_genrm.sh [overrides...]` prints the problems (exit 1 if any).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

LEGACY_TOP_LEVEL = ("custom_reward_function", "reward_model")
# Keys absent from verl's yaml that verl still reads: reward_kwargs (verl/trainer/ppo/reward.py, merged
# into every reward call) and ray_init (verl/trainer/main_ppo.py, passed whole to ray.init, which
# rejects unknown keyword arguments itself).
DYNAMIC_PREFIXES = ("reward.custom_reward_function.reward_kwargs.", "ray_kwargs.ray_init.")
_HYDRA_ONLY = ("hydra", "defaults")
_MISSING = object()


@dataclass
class Launch:
    """What a recipe script runs: the python module, its Hydra config and its overrides."""

    module: str
    config_dir: Path
    config_name: str
    overrides: list[str]
    argv: list[str]


def capture_launch(
    script: str | Path, args: list[str] | None = None, env: dict[str, str] | None = None
) -> Launch:
    """Run `script` with PYTHON set to a recorder and return the exact command it would execute.

    The recorder records the launch (the call naming a config) and runs every other call (the recipe's
    pre-flight, a device count) with this interpreter, so the launch holds what they contribute.
    OMNI_RL_LAUNCH_CAPTURE=1 keeps the pre-flight from writing into checkpoint folders.
    """
    with tempfile.TemporaryDirectory() as tmp:
        shim, out = Path(tmp) / "python", Path(tmp) / "argv.json"
        shim.write_text(
            f"#!{sys.executable}\nimport json, os, sys\n"
            "if not any(a.startswith(('--config-name=', '--config=')) for a in sys.argv[1:]):\n"
            f"    os.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])\n"
            f"json.dump(sys.argv[1:], open({str(out)!r}, 'w'))\n"
        )
        shim.chmod(0o755)
        run_env = {**os.environ, **(env or {}), "PYTHON": str(shim), "OMNI_RL_LAUNCH_CAPTURE": "1"}
        proc = subprocess.run(
            ["bash", str(script), *(args or [])], env=run_env, capture_output=True, text=True, timeout=180
        )
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"{script} did not reach its python command (rc={proc.returncode}): {proc.stderr}"
            )
        argv = json.loads(out.read_text())
    return parse_launch_argv(argv)


def parse_launch_argv(argv: list[str]) -> Launch:
    """Split `-m pkg.module --config-path=D --config-name=N overrides...` (the last -m wins, e.g. torchrun)."""
    idx = max(i for i, a in enumerate(argv) if a == "-m")
    module, rest = argv[idx + 1], argv[idx + 2 :]
    config_dir = config_name = None
    overrides = []
    for arg in rest:
        if arg.startswith("--config-path="):
            config_dir = Path(arg.split("=", 1)[1])
        elif arg.startswith("--config-name="):
            config_name = arg.split("=", 1)[1]
        elif not arg.startswith("-"):
            overrides.append(arg)
    if config_dir is None or config_name is None:
        raise ValueError(f"launch command has no --config-path/--config-name: {argv}")
    return Launch(module, config_dir, config_name, overrides, argv)


def compose(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a Hydra config exactly as `@hydra.main` would for this config dir, name and overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose(config_name=config_name, overrides=overrides)


def verl_config_dir() -> Path:
    """verl's own trainer config folder (the installed package is the truth)."""
    import verl.trainer.config

    return Path(verl.trainer.config.__file__).resolve().parent


@functools.lru_cache(maxsize=8)
def _verl_base(config_name: str, overrides: tuple[str, ...]) -> dict[str, Any]:
    """verl's own config (no recipe layers) as a plain dict; cached: composing it is the slow part."""
    base = OmegaConf.to_container(compose(verl_config_dir(), config_name, list(overrides)), resolve=False)
    assert isinstance(base, dict)
    return base


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaf keys of a nested mapping (an empty mapping is a leaf)."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _yaml_layer(path: Path) -> dict[str, Any]:
    """A recipe yaml's own keys (Hydra's `hydra`/`defaults` entries removed), flattened."""
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert isinstance(data, dict), f"{path}: expected a mapping"
    return flatten({k: v for k, v in data.items() if k not in _HYDRA_ONLY})


def _base_config_name(path: Path) -> str:
    """The verl config a recipe yaml layers over: the first plain entry of its defaults list."""
    defaults = OmegaConf.to_container(OmegaConf.load(path)).get("defaults", [])  # type: ignore[union-attr]
    names = [d for d in defaults if isinstance(d, str) and d != "_self_"]
    if not names:
        raise ValueError(f"{path}: defaults must name the verl config it layers over (e.g. ppo_trainer)")
    return names[0]


def _group_layers(group_dir: Path, name: str) -> list[tuple[str, dict[str, Any]]]:
    """A group option's layers in Hydra's order: its own defaults list (other options of the same group,
    e.g. `cpu_tiny_vl` over `cpu_tiny`), with its own keys at `_self_` (implicitly last)."""
    path = group_dir / f"{name}.yaml"
    defaults = OmegaConf.to_container(OmegaConf.load(path)).get("defaults", [])  # type: ignore[union-attr]
    entries = [d for d in defaults if isinstance(d, str)]
    if "_self_" not in entries:
        entries.append("_self_")
    out: list[tuple[str, dict[str, Any]]] = []
    for entry in entries:
        out.extend([(str(path), _yaml_layer(path))] if entry == "_self_" else _group_layers(group_dir, entry))
    return out


def layers(launch: Launch) -> list[tuple[str, dict[str, Any]]]:
    """(source, flat keys) in application order: base yaml, each selected profile, CLI overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = [
        (
            str(launch.config_dir / f"{launch.config_name}.yaml"),
            _yaml_layer(launch.config_dir / f"{launch.config_name}.yaml"),
        )
    ]
    cli: dict[str, Any] = {}
    for ov in OverridesParser.create().parse_overrides(launch.overrides):
        key = ov.key_or_group
        if (launch.config_dir / key).is_dir():  # a config group such as profile=[smoke,...]
            value = ov.value()
            for name in value if isinstance(value, list) else [value]:
                out.extend(_group_layers(launch.config_dir / key, str(name)))
        elif not ov.is_delete():
            cli.update(
                flatten(_to_plain(ov.value()), f"{key}.")
                if isinstance(ov.value(), dict)
                else {key: _to_plain(ov.value())}
            )
    out.append(("command line", cli))
    return out


def _to_plain(value: Any) -> Any:
    """Hydra/OmegaConf values as plain python for comparison."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=False)
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


def _lookup(tree: Any, key: str) -> Any:
    """Value at a dotted key in a plain nested dict, or _MISSING."""
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _dataclass_field(base: dict, key: str, dict_only: bool = False) -> bool:
    """True if the key's parent node is built into a verl dataclass (`_target_`) that has this field
    (with `dict_only`: a field annotated as a dict)."""
    parent, _, leaf = key.rpartition(".")
    node = _lookup(base, parent) if parent else base
    target = node.get("_target_") if isinstance(node, dict) else None
    if not isinstance(target, str):
        return False
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    if not dataclasses.is_dataclass(cls):
        return False
    field = {f.name: f for f in dataclasses.fields(cls)}.get(leaf)
    return field is not None and (not dict_only or "dict" in str(field.type).lower())


def _free_form(base: dict, key: str) -> bool:
    """True if some ancestor of key is an empty mapping in verl's config (free-form, e.g. engine_kwargs.vllm),
    or a dict-typed field of a verl dataclass (e.g. FSDPEngineConfig.mixed_precision, read with `.get`)."""
    parts = key.split(".")
    for i in range(1, len(parts)):
        ancestor = ".".join(parts[:i])
        node = _lookup(base, ancestor)
        if isinstance(node, dict) and not node:
            return True
        if (node is None or node is _MISSING) and _dataclass_field(base, ancestor, dict_only=True):
            return True
    return False


def check_key(base: dict, key: str) -> str | None:
    """Why a key is not a live verl key (legacy or unknown), or None when it is fine."""
    if key.split(".", 1)[0] in LEGACY_TOP_LEVEL:
        return f"{key}: legacy top-level key, silently ignored by verl 0.9 main_ppo (use reward.*)"
    if _lookup(base, key) is not _MISSING or key.startswith(DYNAMIC_PREFIXES):
        return None
    if _dataclass_field(base, key) or _free_form(base, key):
        return None
    return f"{key}: unknown to verl's config (typo, or a key from another verl version)"


def check_launch(launch: Launch, base_overrides: list[str] | None = None) -> tuple[DictConfig, list[str]]:
    """Compose the recipe as verl would and list every unknown, legacy or overridden-away key."""
    yaml_path = launch.config_dir / f"{launch.config_name}.yaml"
    final = compose(launch.config_dir, launch.config_name, launch.overrides)
    base = _verl_base(_base_config_name(yaml_path), tuple(base_overrides or ()))
    final_plain = OmegaConf.to_container(final, resolve=False)
    problems: list[str] = []
    expected: dict[str, tuple[str, Any]] = {}
    for source, flat in layers(launch):
        for key, value in flat.items():
            why = check_key(base, key)  # type: ignore[arg-type]
            if why:
                problems.append(f"{source}: {why}")
            expected[key] = (source, value)
    for key, (source, value) in expected.items():
        got = _lookup(final_plain, key)
        if got != value:
            problems.append(f"{source}: {key}={value!r} is ignored: the composed config has {got!r}")
    return final, problems


def main(argv: list[str] | None = None) -> int:
    """CLI: `python -m omni_rl.rl.recipe SCRIPT [overrides...]` — print problems, exit 1 if any."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m omni_rl.rl.recipe recipes/train_genrm.sh [hydra overrides...]")
        return 0 if argv else 2
    launch = capture_launch(argv[0], argv[1:])
    _, problems = check_launch(
        launch, ["actor_rollout_ref.rollout.name=vllm"] if "ppo" in launch.module else []
    )
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s) in {argv[0]} ({launch.module}, {launch.config_name})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
