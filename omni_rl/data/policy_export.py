"""`omni-rl data policy-prompts`: the policy-GRPO parquet (recipes/align_policy.sh) from the same loaders.

    omni-rl data policy-prompts loader=mm_rlhf path=bench.jsonl out_dir=data/policy val_fraction=0.05

Each preference pair's prompt becomes one policy row that verl 0.9's RLHFDataset reads unchanged and
`reward_fns/omni.py` scores: `prompt` (a user turn with `<image>`/`<video>`/`<audio>` placeholders),
`images`/`videos`/`audios`, `data_source`, `reward_model.ground_truth` (the reference answer: the pair's
chosen response text) and `extra_info` (`prompt`, `prompt_media`, `criteria`, `task`, `reference` with
its media, `id`, `split`). Pairs that share a prompt (same text and media) give one row; duplicates and
loader rejects are counted in stats.json, and rejects are written to rejects.jsonl.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from omni_rl.data.export import split_of
from omni_rl.data.inputs import InputSpec, input_specs
from omni_rl.data.loaders.base import Reject
from omni_rl.data.schema import Media, PreferencePair
from omni_rl.utils.config import config_help, load_config

_KINDS = (("images", "<image>"), ("videos", "<video>"), ("audios", "<audio>"))


@dataclass
class PolicyExportConfig:
    """Where the prompts come from and where the parquet goes (every key settable as key=value)."""

    loader: str | None = None
    path: str | None = None
    media_root: str | None = None
    loader_options: dict[str, Any] = field(default_factory=dict)
    inputs: list[InputSpec] = field(default_factory=list)
    out_dir: str = "data/policy"
    val_fraction: float = 0.0  # split by hash of the pair's group (or id), as `data prepare` does
    data_source: str | None = None  # default: the pair's source (selects rules in reward_fns/omni.py)
    check_files: bool = True


def media_dict(media: Media) -> dict[str, list[str]]:
    """A Media as the plain dict verl's columns and reward_fns/omni.py read."""
    return {k: [str(p) for p in getattr(media, k)] for k, _ in _KINDS}


def user_content(prompt: str, media: Media) -> str:
    """The prompt text with one placeholder per media item (inline placeholders are kept, others lead)."""
    lines = []
    for kind, tag in _KINDS:
        missing = len(getattr(media, kind)) - prompt.count(tag)
        lines += [tag] * max(0, missing)
    return "\n".join([*lines, prompt]) if lines else prompt


def policy_row(pair: PreferencePair, index: int, split: str, data_source: str | None) -> dict[str, Any]:
    """One verl policy row for a pair's prompt; the chosen response is the reference answer."""
    media = media_dict(pair.prompt_media)
    ref = pair.chosen
    return {
        "data_source": data_source or pair.source or "omni_rl",
        "prompt": [{"role": "user", "content": user_content(pair.prompt, pair.prompt_media)}],
        **media,
        "ability": "policy",
        "reward_model": {"style": "genrm", "ground_truth": ref.text},
        "extra_info": {
            "index": index,
            "id": pair.id,
            "task": pair.task,
            "source": pair.source,
            "prompt": pair.prompt,
            "prompt_media": media,
            "criteria": pair.criteria,
            "reference": {"text": ref.text, "media": media_dict(ref.media)},
            "reference_tie": pair.tie,
            "split": split,
        },
    }


def parquet_schema() -> pa.Schema:
    """One fixed schema so every split (and an empty media list) has the same column types."""
    strs = pa.list_(pa.string())
    media_t = pa.struct([("images", strs), ("videos", strs), ("audios", strs)])
    extra = pa.struct(
        [
            ("index", pa.int64()),
            ("id", pa.string()),
            ("task", pa.string()),
            ("source", pa.string()),
            ("prompt", pa.string()),
            ("prompt_media", media_t),
            ("criteria", pa.string()),
            ("reference", pa.struct([("text", pa.string()), ("media", media_t)])),
            ("reference_tie", pa.bool_()),
            ("split", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("images", strs),
            ("videos", strs),
            ("audios", strs),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            ("extra_info", extra),
        ]
    )


def export_policy_prompts(cfg: PolicyExportConfig) -> dict[str, Any]:
    """Read every input, write {train,val}.parquet, rejects.jsonl and stats.json; returns the stats."""
    from omni_rl.data.loaders import iter_records

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    stats: Counter = Counter()
    by_task: Counter = Counter()
    with (out / "rejects.jsonl").open("w", encoding="utf-8") as rejects:
        for spec in input_specs(cfg, "policy-prompts"):
            if not Path(spec.path).exists():
                raise SystemExit(f"policy-prompts: input file not found: {spec.path}")
            cache = spec.cache_dir or str(out / "media")
            records = iter_records(
                spec.loader, spec.path, media_root=spec.media_root, cache_dir=cache,
                check_files=cfg.check_files, **spec.options,
            )  # fmt: skip
            for rec in records:
                if isinstance(rec, Reject):
                    rejects.write(rec.to_json() + "\n")
                    stats["rejects"] += 1
                    continue
                stats["pairs_in"] += 1
                key = json.dumps([rec.prompt, media_dict(rec.prompt_media)])
                if key in seen:
                    stats["duplicate_prompts"] += 1
                    continue
                seen.add(key)
                split = split_of(rec, cfg.val_fraction)
                n = sum(len(v) for v in rows.values())
                rows.setdefault(split, []).append(policy_row(rec, n, split, cfg.data_source))
                by_task[rec.task] += 1
    files = {}
    for split, split_rows in rows.items():
        path = out / f"{split}.parquet"
        pq.write_table(pa.Table.from_pylist(split_rows, schema=parquet_schema()), path)
        files[split] = str(path)
    result = {**dict(stats), "rows_out": {s: len(r) for s, r in rows.items()}, "by_task": dict(by_task)}
    result["files"] = files
    (out / "stats.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI entry of `omni-rl data policy-prompts key=value ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print((__doc__ or "") + "\nkeys (defaults):\n" + config_help(PolicyExportConfig))
        return 0
    cfg = load_config(PolicyExportConfig, argv)
    stats = export_policy_prompts(cfg)
    print(json.dumps(stats, indent=2))
    if not stats["files"]:
        print("policy-prompts: no rows written (every pair was rejected; see rejects.jsonl)", file=sys.stderr)
        return 1
    return 0
