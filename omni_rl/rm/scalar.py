"""Scalar reward models (a python callable, or a saved Bradley-Terry model) behind the same RM face."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omni_rl.data.schema import Media, Response
from omni_rl.rm.config import RMFailureError


def import_callable(spec: str) -> Callable[..., Any]:
    """Resolve "package.module:attr" to a callable, with an error that says what to pass."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"scalar_fn must look like 'package.module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn):
        raise TypeError(f"scalar_fn {spec!r} is not callable")
    return fn


class BTAdapter:
    """A saved Bradley-Terry model as a scalar RM (loads lazily, pickles as its path)."""

    def __init__(self, path: str, device: str = "cpu") -> None:
        from omni_rl.bt.score import BTScorer

        if not Path(path).is_dir():
            raise FileNotFoundError(f"bt_path {path} is not a folder saved by `omni-rl train-bt`")
        self.scorer = BTScorer(path=path, device=device)

    def __call__(self, prompt: str, response: Response, media: Media, criteria: str | None) -> float:
        """The BT reward of one response (BTScorer batches concurrent calls into one forward)."""
        return self.scorer.score(prompt, response, criteria, media)


async def scalar_score(
    fn: Callable[..., Any], prompt: str, response: Response, media: Media, criteria: str | None
) -> float:
    """Call a scalar RM (sync callables run in a thread so the loop stays responsive); finite or raise."""
    if inspect.iscoroutinefunction(fn):
        value = await fn(prompt, response, media, criteria)
    else:
        value = await asyncio.to_thread(fn, prompt, response, media, criteria)
    value = float(value)
    if not math.isfinite(value):
        raise RMFailureError(f"scalar RM returned {value} for prompt {prompt[:60]!r}")
    return value
