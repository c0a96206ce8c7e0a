"""Environments for child processes that run verl: only the script or the test decides the plug-ins.

Why: a caller's `VERL_*` variables (plug-in list, platform) would otherwise leak into a recipe or a probe
and change which of our verl hooks load; every test that starts verl begins from the same clean slate.
"""

from __future__ import annotations

import os
import sys


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
