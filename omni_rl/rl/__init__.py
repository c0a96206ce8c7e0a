"""verl plug-ins registered by name on import (set VERL_USE_EXTERNAL_MODULES=omni_rl.rl).

Importing it also installs `omni_rl.rl.patches` (reward keys in step metrics, rollout errors surfaced)
lazily: nothing of verl's trainer is imported here, so plug-ins listed after this one (the CPU platform)
still register before verl resolves its platform.
"""

from omni_rl.rl import patches
from omni_rl.rl.stable_reinforce import (
    ADV_ESTIMATOR_NAME,
    POLICY_LOSS_NAME,
    compute_grpo_3sigma_advantage,
    compute_policy_loss_stable_reinforce,
    preclip_log_prob,
    sigma_filter,
)

patches.install()

__all__ = [
    "ADV_ESTIMATOR_NAME",
    "POLICY_LOSS_NAME",
    "compute_grpo_3sigma_advantage",
    "compute_policy_loss_stable_reinforce",
    "preclip_log_prob",
    "sigma_filter",
]
