"""The input list of a data export: which files to read and with which loader (shared by `data prepare`
and `data policy-prompts`, so neither command module imports the other)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_rl.data.loaders.base import Reject
from omni_rl.data.schema import PreferencePair


@dataclass
class InputSpec:
    """One source file and the loader that reads it."""

    loader: str = "???"
    path: str = "???"
    media_root: str | None = None  # default: the file's folder
    cache_dir: str | None = None  # where inline media bytes are written (default <out_dir>/media)
    options: dict[str, Any] = field(default_factory=dict)


def input_specs(cfg: Any, command: str = "prepare") -> list[InputSpec]:
    """The inputs to read; the top-level loader/path is shorthand for a one-item list (any config with
    `loader, path, media_root, loader_options, inputs`: `data prepare` and `data policy-prompts`)."""
    specs = list(cfg.inputs)
    if cfg.loader or cfg.path:
        if not (cfg.loader and cfg.path):
            raise SystemExit(f"{command}: set both loader=<name> and path=<file> (or an inputs: list)")
        specs.insert(0, InputSpec(cfg.loader, cfg.path, cfg.media_root, None, dict(cfg.loader_options)))
    if not specs:
        raise SystemExit(f"{command}: no input; pass loader=<name> path=<file> (see `omni-rl data loaders`)")
    return specs


def iter_inputs(specs: list[InputSpec], out_dir: str, check_files: bool) -> Iterator[PreferencePair | Reject]:
    """Chain every input's pairs and rejects into one stream."""
    from omni_rl.data.loaders import iter_records

    for spec in specs:
        cache = spec.cache_dir or str(Path(out_dir) / "media")
        yield from iter_records(
            spec.loader,
            spec.path,
            media_root=spec.media_root,
            cache_dir=cache,
            check_files=check_files,
            **spec.options,
        )
