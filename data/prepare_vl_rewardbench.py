"""Prepare VL-RewardBench (original schema or R1-Reward's copy; subsets by the benchmark's rule) as verl GRPO parquet for GenRM training.

    python data/prepare_vl_rewardbench.py path=<file> media_root=<folder> [key=value ...]

Note: the full 1,250-item file must give subsets 183/749/318 or the run fails with the rows named.

Thin wrapper over `omni-rl data prepare loader=vl_rewardbench`; every key: `omni-rl data prepare --help`.
Sources and licences: data/README.md.
"""

import sys

from omni_rl.data.cli import main

if __name__ == "__main__":
    sys.exit(
        main(
            [
                "prepare",
                "loader=vl_rewardbench",
                "out_dir=data/out/vl_rewardbench",
                "order=shuffle",
                *sys.argv[1:],
            ]
        )
    )
