"""The reward-model object behind `omni_rl.api`: config, GenRM/scalar/BT judging, candidates, sync loop."""
