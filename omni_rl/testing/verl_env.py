"""Environments for child processes that run verl: only the script or the test decides the plug-ins.

Why: a caller's `VERL_*` variables (plug-in list, platform) would otherwise leak into a recipe or a probe
and change which of our verl hooks load; every test that starts verl begins from the same clean slate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omni_rl.serving import REPO_ROOT


def plugin_free_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus every `VERL_*` setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_")}
    env.update(extra)
    return env


def recipe_env(profile: str, **extra: str) -> dict[str, str]:
    """What a recipe script needs on this machine: a profile, this interpreter, no hub, no Ray usage stats."""
    base = {
        "PROFILE": profile,
        "PYTHON": sys.executable,
        "HF_HUB_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    return plugin_free_env(**{**base, **extra})


def run_recipe(script: str, env: dict[str, str], work: Path, data: Path, model: Path, *extra: str) -> str:
    """Run `recipes/<script>` on one test's data and model with its checkpoints and rollout dumps under `work`.

    Returns the combined log (also saved as work/train.log); a non-zero exit fails with the log's tail.
    """
    cmd = ["bash", f"recipes/{script}", f"data.train_files={data}", f"actor_rollout_ref.model.path={model}",
           f"trainer.default_local_dir={work / 'ckpt'}", f"trainer.rollout_data_dir={work / 'rollouts'}", *extra]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1100)
    log = res.stdout + res.stderr
    (work / "train.log").write_text(log)
    assert res.returncode == 0, log[-5000:]
    return log
