"""Prepare Audio-HH-RLHF (spoken prompts, text answers) as verl GRPO parquet for GenRM training.

    python data/prepare_audio_hh_rlhf.py path=<file> media_root=<folder> [key=value ...]

Thin wrapper over `omni-rl data prepare loader=audio_hh_rlhf`; every key: `omni-rl data prepare --help`.
Sources and licences: data/README.md.
"""

import sys

from omni_rl.data.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "loader=audio_hh_rlhf", "out_dir=data/out/audio_hh_rlhf", *sys.argv[1:]]))
