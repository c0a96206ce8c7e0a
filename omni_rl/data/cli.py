"""`omni-rl data prepare | stats | loaders | hard-samples`: build and inspect verl GRPO parquet.

omni-rl data prepare loader=vl_rewardbench path=vlrb.parquet media_root=media/ out_dir=data/vlrb
    order=shuffle seed=0 ties=keep val_fraction=0.05 video_frames=8 template=pairwise_tie
omni-rl data prepare --config=my_mix.yaml          # `inputs:` list of {loader, path, media_root, options}
omni-rl data stats path=data/vlrb                  # stats.json of an export, or any verl parquet

`omni-rl data hard-samples` is omni_rl.curate.hard_samples, dispatched by the top-level `omni-rl` command
(omni_rl.cli) so that data imports nothing above it.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from omni_rl.data.export import ExportConfig, ExportResult, RejectRateError, export_pairs
from omni_rl.data.inputs import InputSpec, input_specs, iter_inputs
from omni_rl.data.loaders.base import FileError, LoaderOptionError
from omni_rl.data.schema import DataError
from omni_rl.data.stats import print_stats
from omni_rl.prompts.render import TemplateConfigError
from omni_rl.utils.config import config_help, load_config

USAGE = __doc__ or ""


@dataclass
class PrepareConfig(ExportConfig):
    """Export options plus the input(s): a single `loader/path` or an `inputs:` list (from --config)."""

    loader: str | None = None
    path: str | None = None
    media_root: str | None = None
    loader_options: dict[str, Any] = field(default_factory=dict)
    inputs: list[InputSpec] = field(default_factory=list)
    check_files: bool = True


@dataclass
class StatsConfig:
    """An export folder (reads stats.json) or a parquet file (counts labels/tasks by streaming)."""

    path: str = "???"
    json_out: str | None = None


def prepare(cfg: PrepareConfig) -> ExportResult:
    """Python API behind `omni-rl data prepare`."""
    specs = input_specs(cfg)
    return export_pairs(iter_inputs(specs, cfg.out_dir, cfg.check_files), cfg)


def parquet_stats(path: Path, batch_size: int = 4096) -> dict[str, Any]:
    """Stream a verl parquet's extra_info/reward_model columns into the same stats shape as an export."""
    import pyarrow.parquet as pq

    by_task: dict[str, Counter] = defaultdict(Counter)
    labels: dict[str, Counter] = defaultdict(Counter)
    media: Counter = Counter()
    rows = 0
    split = path.stem
    cols = ["reward_model", "extra_info", "images", "videos", "audios"]
    pf = pq.ParquetFile(path)
    present = [c for c in cols if c in pf.schema_arrow.names]
    for batch in pf.iter_batches(batch_size=batch_size, columns=present):
        for row in batch.to_pylist():
            rows += 1
            info = row.get("extra_info") or {}
            by_task[split][info.get("task") or "?"] += 1
            labels[split][str((row.get("reward_model") or {}).get("ground_truth"))] += 1
            media.update({k: len(row.get(k) or []) for k in ("images", "videos", "audios")})
    ab = labels[split]["A"] + labels[split]["B"]
    return {
        "pairs_in": rows,
        "rows_out": {split: rows},
        "by_task": {s: dict(c) for s, c in by_task.items()},
        "labels": {s: dict(c) for s, c in labels.items()},
        "label_share_A": {split: labels[split]["A"] / ab if ab else float("nan")},
        "media": {k: v for k, v in media.items() if v},
        "rejects": 0,
        "ties_dropped": 0,
        "rejects_by_reason": {},
    }


def _cmd_prepare(argv: list[str]) -> int:
    """Run an export and print its stats table."""
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE + "\nkeys (defaults):\n" + config_help(PrepareConfig))
        return 0
    cfg = load_config(PrepareConfig, argv, yaml_name="data")
    console = Console(stderr=True)
    try:
        result = prepare(cfg)
    except (FileError, LoaderOptionError, TemplateConfigError, ValueError) as e:
        if isinstance(e, DataError):  # a data problem the file itself shows (e.g. subset counts)
            console.print(f"[red]prepare failed:[/red] {e}", soft_wrap=True)
            return 1
        console.print(f"[red]prepare:[/red] {e}", soft_wrap=True)
        return 2
    except KeyError as e:  # unknown loader: the message lists the known ones
        console.print(f"[red]prepare:[/red] {e.args[0]}", soft_wrap=True)
        return 2
    except RejectRateError as e:
        console.print(f"[red]prepare failed:[/red] {e}", soft_wrap=True)
        return 1
    print_stats(result.stats, console)
    for split, path in result.files.items():
        console.print(f"{split}: {path}")
    console.print(f"rejects: {result.rejects_path}\nstats: {result.stats_path}")
    return 0


def _cmd_stats(argv: list[str]) -> int:
    """Print the stats of an export folder or a parquet file."""
    if any(a in ("-h", "--help") for a in argv):
        print(config_help(StatsConfig))
        return 0
    cfg = load_config(StatsConfig, argv)
    path = Path(cfg.path)
    if path.is_dir():
        if not (path / "stats.json").exists():
            raise SystemExit(f"stats: {path} has no stats.json; pass a .parquet file instead")
        stats = json.loads((path / "stats.json").read_text())
    elif path.suffix == ".parquet" and path.exists():
        stats = parquet_stats(path)
    else:
        raise SystemExit(f"stats: {path} is neither an export folder nor a .parquet file")
    print_stats(stats)
    if cfg.json_out:
        Path(cfg.json_out).write_text(json.dumps(stats, indent=2))
    return 0


def _cmd_loaders(argv: list[str]) -> int:
    """List registered loaders."""
    del argv
    from omni_rl.data.loaders import REGISTRY

    for name, cls in sorted(REGISTRY.items()):
        print(f"{name:<24} {cls.description}")
        for key, what in cls.OPTIONS.items():  # loader_options.KEY= (eval: +data.options.KEY=)
            print(f"{'':<26}option {key}: {what}")
    return 0


def _cmd_policy_prompts(argv: list[str]) -> int:
    """Delegate to omni_rl.data.policy_export (the policy-GRPO prompt parquet)."""
    from omni_rl.data.policy_export import main as policy_main

    return policy_main(argv)


COMMANDS = {
    "prepare": _cmd_prepare,
    "policy-prompts": _cmd_policy_prompts,
    "stats": _cmd_stats,
    "loaders": _cmd_loaders,
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch `omni-rl data <command> key=value ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE + "\ncommands: " + ", ".join([*COMMANDS, "hard-samples"]))
        return 0
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        print(
            f"omni-rl data: unknown command {argv[0]!r}; expected one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    return cmd(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
