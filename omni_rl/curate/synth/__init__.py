"""`omni-rl synth`: preference pairs without human labels (Omni-RRM's Omni-Preference pipeline).

    omni-rl synth input=prompts.jsonl out_dir=outputs/synth \
        candidates.strong.base_url=http://127.0.0.1:8001/v1 candidates.strong.model=big \
        candidates.weak.base_url=http://127.0.0.1:8002/v1 candidates.weak.model=small \
        teacher.base_url=http://127.0.0.1:8003/v1 teacher.model=judge

For each prompt (text, image, video or audio) every candidate model answers; each two candidates form
a pair presumed (stronger, weaker) by `rank`; the teacher judges the pair in BOTH orders through the
project's judge pipeline with a multi-criteria rationale template; agreement rules keep, flip or drop
the pair. Steps are resumable after a kill with no duplicates: every finished call is one fsync'ed
line in `generations.jsonl` / `judgements.jsonl`, and all outputs are rebuilt from those stores:
`pairs.jsonl` (PreferencePair; `omni-rl data prepare loader=preference_pairs`), `sft.parquet`
(rationale traces for recipes/sft_genrm.sh), `rejects.jsonl`, `stats.json` and `stats.md`.
API keys come from the environment variables the config names (`*.api_key_env`), never from the config.
"""

from omni_rl.curate.synth.command import main, run
from omni_rl.curate.synth.config import SynthConfig

__all__ = ["SynthConfig", "main", "run"]
