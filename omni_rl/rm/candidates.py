"""One prompt's candidates seen by index: the cached pair/point judges best-of-N strategies call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from omni_rl.data.schema import Media, Response
from omni_rl.rm.strategies import CachedPairJudge, CachedPointJudge, Judgment, PointScore, Selection

MediaLike = Media | dict[str, Any] | Sequence[str] | None
ResponseLike = str | Response


def as_media(media: MediaLike) -> Media:
    """Accept a Media, a {"images": [...]} dict, a list of image paths, or None."""
    if media is None:
        return Media()
    if isinstance(media, Media):
        return media
    if isinstance(media, dict):
        return Media.from_dict(media)
    if isinstance(media, str):
        return Media(images=[media])
    return Media(images=[str(p) for p in media])


def as_response(response: ResponseLike) -> Response:
    """A plain string is a text response."""
    return response if isinstance(response, Response) else Response(text=str(response))


@dataclass
class Ranking:
    """Candidates ordered best first, with the per-candidate values the order came from."""

    order: list[int]
    values: list[float | None]
    selection: Selection


class SingleCallJudge(Protocol):
    """What CandidateJudge needs of a reward model (RewardModel is one), so this module never imports it."""

    async def judge_once(
        self, prompt: str, first: Response, second: Response, media: Media, criteria: str | None,
        ids: tuple[int, int] = (0, 1),
    ) -> Judgment: ...  # fmt: skip

    async def score_once(
        self, prompt: str, response: Response, media: Media, criteria: str | None, index: int = 0
    ) -> PointScore: ...


class CandidateJudge:
    """A cached PairJudge and PointJudge over one prompt's candidates (an N sweep reuses calls)."""

    def __init__(
        self, rm: SingleCallJudge, prompt: str, responses: list[Response], media: Media, criteria: str | None
    ) -> None:
        self.rm, self.prompt, self.responses, self.media, self.criteria = (
            rm,
            prompt,
            responses,
            media,
            criteria,
        )
        self._pairs = CachedPairJudge(_RawPairs(self))
        self._points = CachedPointJudge(_RawPoints(self))

    async def judge(self, first: int, second: int) -> Judgment:
        """Cached ordered judgment of candidate `first` (A) vs `second` (B)."""
        return await self._pairs.judge(first, second)

    async def score(self, index: int) -> PointScore:
        """Cached pointwise score of candidate `index`."""
        return await self._points.score(index)

    @property
    def calls(self) -> int:
        """Distinct judge calls made for this prompt."""
        return self._pairs.calls + self._points.calls

    def cancel(self) -> None:
        """Cancel this prompt's judge calls still in flight (after a failure or a cancellation)."""
        self._pairs.cancel()
        self._points.cancel()

    async def history(self) -> tuple[list[Judgment], list[PointScore]]:
        """Every pairwise judgment and pointwise score made for this prompt (for the output record)."""
        return await self._pairs.results(), await self._points.results()


class _RawPairs:
    def __init__(self, cj: CandidateJudge) -> None:
        self.cj = cj

    async def judge(self, first: int, second: int) -> Judgment:
        cj = self.cj
        return await cj.rm.judge_once(
            cj.prompt, cj.responses[first], cj.responses[second], cj.media, cj.criteria, (first, second)
        )


class _RawPoints:
    def __init__(self, cj: CandidateJudge) -> None:
        self.cj = cj

    async def score(self, index: int) -> PointScore:
        cj = self.cj
        return await cj.rm.score_once(cj.prompt, cj.responses[index], cj.media, cj.criteria, index)
