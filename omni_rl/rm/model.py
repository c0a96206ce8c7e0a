"""`RewardModel`: score / compare / rank over a GenRM (through the one judge pipeline) or a scalar RM.

The core is async and batched; the sync facade runs it on a private loop (see rm.loop). GenRM verdicts
and scores come from `omni_rl.judge.pipeline` (neutralised responses, tie-aware soft verdicts, the one
swap-combiner, a windowed failure budget), so best-of-N and the policy reward agree on P(better).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

from omni_rl.data.schema import Media, Response
from omni_rl.judge.client import JudgeClient
from omni_rl.judge.media import MediaLimits
from omni_rl.judge.pipeline import JudgeContext, JudgePipeline
from omni_rl.rm.candidates import CandidateJudge, MediaLike, Ranking, ResponseLike, as_media, as_response
from omni_rl.rm.config import RMConfig, RMStats
from omni_rl.rm.loop import LoopThread
from omni_rl.rm.scalar import BTAdapter, import_callable, scalar_score
from omni_rl.rm.strategies import Judgment, PointScore, Selection, select
from omni_rl.rm.strategies import compare as compare_pair


class RewardModel:
    """score / compare / rank over a GenRM endpoint or a scalar RM, async core with a sync facade."""

    def __init__(
        self,
        config: RMConfig | None = None,
        client: JudgeClient | None = None,
        scalar_fn: Callable[..., Any] | None = None,
        media_limits: MediaLimits | None = None,
    ) -> None:
        self.config = cfg = config or RMConfig()
        if cfg.kind not in ("genrm", "scalar", "bt"):
            raise ValueError(f"RMConfig.kind must be 'genrm', 'scalar' or 'bt', got {cfg.kind!r}")
        self.stats = RMStats()
        self.media_limits = media_limits or MediaLimits()
        self._scalar = scalar_fn
        self.client: JudgeClient | None = None
        self.pipeline: JudgePipeline | None = None
        self._sync = LoopThread()
        if cfg.kind == "bt":
            if not cfg.bt_path:
                raise ValueError("kind=bt needs bt_path=<folder saved by `omni-rl train-bt`>")
            self._scalar = BTAdapter(cfg.bt_path, cfg.bt_device)
        elif cfg.kind == "scalar" and self._scalar is None:
            if not cfg.scalar_fn:
                raise ValueError("kind=scalar needs scalar_fn ('module:function') or a callable")
            self._scalar = import_callable(cfg.scalar_fn)
        elif cfg.kind == "genrm":
            self.client = client or JudgeClient(
                cfg.base_url, cfg.model, api_key=cfg.api_key, max_concurrency=cfg.max_concurrency,
                timeout=cfg.timeout, max_retries=cfg.max_retries,
            )  # fmt: skip
            self.pipeline = JudgePipeline(self.client, cfg.spec(self.media_limits), cfg.budget())

    def _context(self, prompt: str, media: Media, criteria: str | None) -> JudgeContext:
        return JudgeContext(prompt=prompt, prompt_media=media, criteria=criteria, task=self.config.task)

    # -- one call ---------------------------------------------------------------------------------
    async def judge_once(
        self, prompt: str, first: Response, second: Response, media: Media, criteria: str | None,
        ids: tuple[int, int] = (0, 1),
    ) -> Judgment:  # fmt: skip
        """One ordered judgment: `first` shown as A, `second` as B."""
        if self._scalar is not None:
            sa, sb = await asyncio.gather(
                scalar_score(self._scalar, prompt, first, media, criteria),
                scalar_score(self._scalar, prompt, second, media, criteria),
            )
            p = 1.0 / (1.0 + math.exp(-(sa - sb)))
            verdict = "A" if p > 0.5 else "B" if p < 0.5 else "tie"
            return Judgment(ids[0], ids[1], verdict, text=f"{sa:.6g} vs {sb:.6g}", reason="scalar", p=p)
        assert self.pipeline is not None
        j = await self.pipeline.judge_pair(self._context(prompt, media, criteria), first, second)
        self.stats.add(j.ok, j.reason)
        return Judgment(ids[0], ids[1], j.verdict, text=j.text, reason=j.reason, p=j.p_a)  # type: ignore[arg-type]

    async def score_once(
        self, prompt: str, response: Response, media: Media, criteria: str | None, index: int = 0
    ) -> PointScore:
        """One pointwise score of `response` (None when the judge output has no valid score)."""
        if self._scalar is not None:
            s = await scalar_score(self._scalar, prompt, response, media, criteria)
            return PointScore(index, s, text=f"{s:.6g}", reason="scalar")
        assert self.pipeline is not None
        pj = await self.pipeline.score(self._context(prompt, media, criteria), response)
        self.stats.add(pj.failure == "ok", pj.reason)
        return PointScore(index, pj.score, text=pj.text, reason=pj.reason)

    def candidates(
        self,
        prompt: str,
        responses: Sequence[ResponseLike],
        media: MediaLike = None,
        criteria: str | None = None,
    ) -> CandidateJudge:
        """A per-prompt judge over candidate indices (cached, so an N sweep reuses calls)."""
        return CandidateJudge(self, prompt, [as_response(r) for r in responses], as_media(media), criteria)

    # -- async API --------------------------------------------------------------------------------
    async def ascore(
        self, prompt: str, response: ResponseLike, media: MediaLike = None, criteria: str | None = None
    ) -> float | None:
        """Pointwise score (template scale, default 1-10; scalar RMs: raw value); None if unparsable."""
        return (await self.score_once(prompt, as_response(response), as_media(media), criteria)).score

    async def acompare(
        self, prompt: str, a: ResponseLike, b: ResponseLike, media: MediaLike = None,
        criteria: str | None = None, debias: bool | None = None,
    ) -> float | None:  # fmt: skip
        """P(a better than b) (soft when the server gives logprobs), averaged over both orders when debiased."""
        cj = self.candidates(prompt, [a, b], media, criteria)
        try:
            return (await compare_pair(cj, 0, 1, self.config.debias if debias is None else debias)).p_a
        finally:
            cj.cancel()

    async def arank(
        self, prompt: str, responses: Sequence[ResponseLike], media: MediaLike = None,
        criteria: str | None = None, method: str = "round_robin", debias: bool | None = None,
    ) -> Ranking:  # fmt: skip
        """Order candidates best first by round-robin wins or pointwise scores (ties: lower index first)."""
        if method not in ("round_robin", "pointwise"):
            raise ValueError(f"rank method must be 'round_robin' or 'pointwise', got {method!r}")
        sel = await self.abest(prompt, responses, media, criteria, strategy=method, debias=debias)
        values: list[float | None] = list(sel.wins if method == "round_robin" else sel.scores)  # type: ignore[arg-type]
        order = sorted(range(len(values)), key=lambda i: (values[i] is None, -(values[i] or 0.0), i))
        return Ranking(order=order, values=values, selection=sel)

    async def abest(
        self, prompt: str, responses: Sequence[ResponseLike], media: MediaLike = None,
        criteria: str | None = None, strategy: str = "knockout", debias: bool | None = None,
    ) -> Selection:  # fmt: skip
        """Best-of-N selection with one strategy (pointwise | knockout | round_robin)."""
        cj = self.candidates(prompt, responses, media, criteria)
        try:
            return await select(
                strategy, len(cj.responses), cj, cj, self.config.debias if debias is None else debias
            )
        finally:
            cj.cancel()  # no-op for finished calls; stops stragglers after a failure

    async def ascore_many(self, items: Sequence[dict[str, Any]]) -> list[float | None]:
        """Batched ascore over dicts with prompt/response[/media/criteria], run concurrently."""
        return list(await asyncio.gather(*(self.ascore(**it) for it in items)))

    async def acompare_many(self, items: Sequence[dict[str, Any]]) -> list[float | None]:
        """Batched acompare over dicts with prompt/a/b[/media/criteria/debias], run concurrently."""
        return list(await asyncio.gather(*(self.acompare(**it) for it in items)))

    # -- sync facade ------------------------------------------------------------------------------
    def score(self, prompt: str, response: ResponseLike, media: MediaLike = None, criteria: str | None = None) -> float | None:  # fmt: skip
        """Blocking ascore."""
        return self._sync.run(self.ascore(prompt, response, media, criteria))

    def compare(
        self, prompt: str, a: ResponseLike, b: ResponseLike, media: MediaLike = None,
        criteria: str | None = None, debias: bool | None = None,
    ) -> float | None:  # fmt: skip
        """Blocking acompare: P(a better than b)."""
        return self._sync.run(self.acompare(prompt, a, b, media, criteria, debias))

    def rank(
        self, prompt: str, responses: Sequence[ResponseLike], media: MediaLike = None,
        criteria: str | None = None, method: str = "round_robin", debias: bool | None = None,
    ) -> Ranking:  # fmt: skip
        """Blocking arank."""
        return self._sync.run(self.arank(prompt, responses, media, criteria, method, debias))

    def best(
        self, prompt: str, responses: Sequence[ResponseLike], media: MediaLike = None,
        criteria: str | None = None, strategy: str = "knockout", debias: bool | None = None,
    ) -> Selection:  # fmt: skip
        """Blocking abest: the best-of-N pick with its comparisons or scores."""
        return self._sync.run(self.abest(prompt, responses, media, criteria, strategy, debias))

    def score_many(self, items: Sequence[dict[str, Any]]) -> list[float | None]:
        """Blocking ascore_many."""
        return self._sync.run(self.ascore_many(items))

    def compare_many(self, items: Sequence[dict[str, Any]]) -> list[float | None]:
        """Blocking acompare_many."""
        return self._sync.run(self.acompare_many(items))

    def close(self) -> None:
        """Close the sync facade's loop and its HTTP pool; `await aclose()` closes one opened by async code."""
        client = self.client
        on_private_loop = client is not None and client._loop is not None and client._loop is self._sync.loop
        self._sync.close(client.aclose() if on_private_loop else None)  # type: ignore[union-attr]

    async def aclose(self) -> None:
        """Close the HTTP pool from async code."""
        if self.client is not None:
            await self.client.aclose()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_sync", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sync = LoopThread()

    def __enter__(self) -> RewardModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cfg = self.config
        where = cfg.scalar_fn or self._scalar if cfg.kind == "scalar" else f"{cfg.base_url} ({cfg.model})"
        return f"RewardModel(kind={cfg.kind!r}, {where})"
