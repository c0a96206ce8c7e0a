"""A small Python API over any reward model: `score`, `compare` (P(a better)) and `rank`.

Three kinds of RM (the logic lives in `omni_rl.rm`; GenRM judging in `omni_rl.judge.pipeline`):

- ``genrm``: an OpenAI-compatible GenRM endpoint judged with the packaged templates; responses are
  neutralised, verdicts parsed once (`omni_rl.judge.parse`), soft P(better) from the answer-token
  logprobs (ties included), both orders combined by the one swap-combiner.
- ``scalar``: any python callable ``fn(prompt, response, media, criteria) -> float`` (sync or async);
  ``compare`` is then ``sigmoid(s_a - s_b)`` (Bradley-Terry).
- ``bt``: a Bradley-Terry model saved by ``omni-rl train-bt`` (``bt_path``), scored in-process.

    rm = connect("http://127.0.0.1:8000/v1", "genrm")
    rm.score("Describe it.", "A cat.", media=["cat.jpg"])          # 1-10, or None if unparsable
    rm.compare("Describe it.", "A cat.", "A dog.", media=["cat.jpg"])  # P(first better), swap-debiased
    rm.rank("Describe it.", ["A cat.", "A dog.", "A car."], media=["cat.jpg"]).order
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omni_rl.judge.pipeline import infer_task
from omni_rl.rm.candidates import CandidateJudge, MediaLike, Ranking, ResponseLike, as_media, as_response
from omni_rl.rm.config import RMConfig, RMFailureError, RMStats
from omni_rl.rm.model import RewardModel

__all__ = [
    "CandidateJudge",
    "RMConfig",
    "RMFailureError",
    "RMStats",
    "Ranking",
    "RewardModel",
    "as_media",
    "as_response",
    "compare",
    "connect",
    "infer_task",
    "rank",
    "score",
]

_default: RewardModel | None = None


def connect(base_url: str | None = None, model: str | None = None, **options: Any) -> RewardModel:
    """Build a RewardModel from an endpoint (GenRM) or `kind="scalar", scalar_fn=...`; also the default."""
    global _default
    scalar_fn = options.pop("scalar_fn", None)
    cfg = RMConfig(**options)
    if base_url:
        cfg.base_url = base_url
    if model:
        cfg.model = model
    if callable(scalar_fn):
        cfg.kind = "scalar"
        _default = RewardModel(cfg, scalar_fn=scalar_fn)
    else:
        cfg.scalar_fn = scalar_fn or cfg.scalar_fn
        _default = RewardModel(cfg)
    return _default


def _rm(rm: RewardModel | None) -> RewardModel:
    """The given RM, else the one from the last connect()."""
    if rm is not None:
        return rm
    if _default is None:
        raise RuntimeError(
            "no reward model configured: call omni_rl.api.connect(base_url, model) or pass rm="
        )
    return _default


def score(prompt: str, response: ResponseLike, media: MediaLike = None, criteria: str | None = None,
          rm: RewardModel | None = None) -> float | None:  # fmt: skip
    """Pointwise score of one response with the default (or given) RM."""
    return _rm(rm).score(prompt, response, media, criteria)


def compare(prompt: str, a: ResponseLike, b: ResponseLike, media: MediaLike = None, criteria: str | None = None,
            debias: bool | None = None, rm: RewardModel | None = None) -> float | None:  # fmt: skip
    """P(a better than b) with the default (or given) RM."""
    return _rm(rm).compare(prompt, a, b, media, criteria, debias)


def rank(prompt: str, responses: Sequence[ResponseLike], media: MediaLike = None, criteria: str | None = None,
         method: str = "round_robin", rm: RewardModel | None = None) -> Ranking:  # fmt: skip
    """Responses ordered best first with the default (or given) RM."""
    return _rm(rm).rank(prompt, responses, media, criteria, method)
