"""The one judge pipeline: neutralise → render → send → parse → soft verdict → combine, with one budget.

Every caller that asks a GenRM for a verdict or a score (policy reward, group judging, best-of-N, the
Python API, eval, hard-sample mining, preference synthesis) goes through `JudgePipeline`, so a fix to
tie handling, placeholder neutralising or parsing lands once and the same GenRM gives the same
P(better) everywhere.

- `judge_pair(ctx, a, b)` judges one ordered pair (`a` shown as A) → `Judgement`;
  `judge_ordered(op)` does the same for a dataset `OrderedPair`; `judge_messages(messages)` sends an
  already rendered prompt (verl GenRM parquet rows) through the same send → parse → budget steps.
- `score(ctx, response)` scores one response pointwise → `PointJudgement`.
- `compare(ctx, x, y, swap=True)` judges both orders and combines them with the one swap-combiner
  (`judge.debias.combine_orders`) → `CombinedJudgement` (P(x better)).
- Soft verdicts: with a tie template the choice set is A/B/tie and ``P(A better) = P(A) + ½·P(tie)``;
  below `min_choice_mass` on the choice tokens the parsed verdict is used instead; the mass is reported.
- Every response text from a policy or candidate is neutralised here (`neutralise`) before rendering:
  stray `<image>`/`<video>`/`<audio>` text cannot become a placeholder, and the template's delimiters
  (`[Response A]`, `[End of Response A]`, …) and `<think>`/`<answer>` tags are escaped so a response
  cannot close its own block or inject a verdict.
- Every outcome (ok / transport / parse / truncated) is recorded in one `FailureBudget`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from omni_rl.data.schema import Media, OrderedPair, PreferencePair, Response, placeholder_counts
from omni_rl.judge.budget import FailureBudget
from omni_rl.judge.client import ChatResult, JudgeClient, JudgeError
from omni_rl.judge.debias import OrderedJudgement, combine_orders
from omni_rl.judge.logprobs import choice_probs
from omni_rl.judge.media import MediaLimits, to_openai_messages
from omni_rl.judge.parse import parse_score, parse_verdict

if TYPE_CHECKING:
    from omni_rl.prompts import JudgePrompt

FailureKind = Literal["ok", "transport", "parse", "truncated"]
HARD_P: dict[str, float] = {"A": 1.0, "B": 0.0, "tie": 0.5}
_PLACEHOLDER_RE = re.compile(r"<(image|video|audio)>")
_DELIMITER_RE = re.compile(
    r"\[(\s*(?:end\s+of\s+)?(?:response\s*[AB12]|user\s+request|reasoning)\s*)\]", re.IGNORECASE
)
_TAG_RE = re.compile(r"<(/?)\s*(think|answer)\s*>", re.IGNORECASE)


# -- inputs ----------------------------------------------------------------------------------------
@dataclass
class JudgeContext:
    """What the judge needs to know about the prompt: text (with placeholders), media, criteria, task."""

    prompt: str
    prompt_media: Media = field(default_factory=Media)
    criteria: str | None = None
    task: str | None = None

    def resolved_task(self, default: str = "t2t", responses: Sequence[Response] = ()) -> str:
        """The row's task, else inferred from where the media are."""
        return self.task or infer_task(self.prompt_media, responses, default)


def infer_task(prompt_media: Media, responses: Sequence[Response] = (), default: str = "t2t") -> str:
    """The schema task implied by where the media are (prompt side, response side, or none)."""
    if any(r.media.videos for r in responses):
        return "t2v"
    if any(r.media.audios for r in responses):
        return "t2a"
    if any(r.media.images for r in responses):
        return "ti2i" if prompt_media.images else "t2i"
    if prompt_media.videos:
        return "tv2t"
    if prompt_media.audios:
        return "ta2t"
    return "ti2t" if prompt_media.images else default


def guard_delimiters(text: str) -> str:
    """`[Response A]` → `(Response A)`: a text cannot open or close a block of the judge template."""
    return _DELIMITER_RE.sub(lambda m: f"({m.group(1)})", text or "")


def guard_text(text: str) -> str:
    """Escape the template's block delimiters and think/answer tags inside an untrusted text."""
    return _TAG_RE.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}&gt;", guard_delimiters(text))


def neutralise_text(text: str, media: Media | None = None) -> str:
    """Placeholders that do not match `media` one to one become `[image]` text; delimiters are escaped."""
    have = (media or Media()).count()
    found = placeholder_counts(text or "")
    keep = {k[:-1] for k, n in found.items() if n and n == have[k]}
    text = _PLACEHOLDER_RE.sub(lambda m: m.group(0) if m.group(1) in keep else f"[{m.group(1)}]", text or "")
    return guard_text(text)


def neutralise(response: Response) -> Response:
    """A policy/candidate response made safe to render (its media untouched)."""
    return Response(text=neutralise_text(response.text, response.media), media=response.media)


def render_neutralised(op: OrderedPair, template: str) -> JudgePrompt:
    """The judge prompt of a laid-out pair as every judge call sees it: prompt delimiters guarded, both
    responses neutralised (also what synthesis stores as the teacher's SFT prompt)."""
    from omni_rl.prompts import render_judge_messages

    pair = replace(op.pair, prompt=guard_delimiters(op.pair.prompt))
    safe = OrderedPair(pair=pair, a=neutralise(op.a), b=neutralise(op.b), label=op.label, swapped=op.swapped)
    return render_judge_messages(safe, template=template)


# -- outputs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Judgement:
    """One judge call on one ordered pair: verdict, P(A better), choice-token mass and failure kind."""

    verdict: str | None  # "A" | "B" | "tie" | None
    p_a: float | None  # P(A better): soft (P(A) + ½P(tie)) when measurable, else from the verdict
    probs: dict[str, float] | None = None  # P over the template's choices at the answer token
    mass: float | None = None  # unnormalised probability on the choice tokens (None: not measured)
    soft: bool = False  # p_a came from logprobs
    failure: FailureKind = "ok"
    format_ok: bool = False
    reason: str = ""
    text: str = ""
    finish_reason: str | None = None
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the call produced a usable verdict."""
        return self.failure == "ok"

    def ordered(self) -> OrderedJudgement:
        """The combiner's view of this judgement."""
        return OrderedJudgement(p_first=self.p_a, verdict=self.verdict)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PointJudgement:
    """One pointwise judge call: the raw score (template scale), its [0, 1] value and the failure kind."""

    score: float | None
    value: float | None
    failure: FailureKind = "ok"
    format_ok: bool = False
    reason: str = ""
    text: str = ""
    latency_s: float = 0.0


@dataclass(frozen=True)
class CombinedJudgement:
    """P(x better than y) from one or both orders, with the judgements behind it."""

    p_x: float | None
    disagree: bool
    judgements: tuple[Judgement, ...]
    x_is_a: tuple[bool, ...]

    @property
    def calls(self) -> int:
        """Judge calls made."""
        return len(self.judgements)

    @property
    def parse_failures(self) -> int:
        """Orders without a usable verdict (parse or truncated)."""
        return sum(not j.ok for j in self.judgements)

    @property
    def soft(self) -> bool:
        """True when any order used a soft (logprob) verdict."""
        return any(j.soft for j in self.judgements)

    @property
    def mass(self) -> float:
        """Mean choice-token mass over the orders where it was measured (0 when none)."""
        ms = [j.mass for j in self.judgements if j.mass is not None]
        return sum(ms) / len(ms) if ms else 0.0


def combine_judgements(judgements: Sequence[Judgement], x_is_a: Sequence[bool]) -> CombinedJudgement:
    """The one swap-combiner applied to pipeline judgements."""
    deb = combine_orders([(j.ordered(), xa) for j, xa in zip(judgements, x_is_a, strict=True)])
    return CombinedJudgement(
        p_x=deb.p_x, disagree=deb.disagree, judgements=tuple(judgements), x_is_a=tuple(x_is_a)
    )


# -- configuration ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class JudgeSpec:
    """How to prompt and read a GenRM (templates, parsing, soft verdicts, sampling, media limits)."""

    template: str = "pairwise_tie"
    pointwise_template: str = "pointwise"
    parse_mode: str = "lenient"
    soft: bool = True  # read P(better) from answer-token logprobs when the server returns them
    top_logprobs: int = 20
    min_choice_mass: float = 0.5  # below this mass on the choice tokens, use the parsed verdict
    max_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    extra_body: dict[str, Any] | None = None
    pointwise_extra_body: dict[str, Any] | None = None
    limits: MediaLimits = field(default_factory=MediaLimits)
    default_task: str = "t2t"


@dataclass(frozen=True)
class _TemplateInfo:
    choices: tuple[str, ...]
    allow_tie: bool
    boxed: bool
    lo: int = 1
    hi: int = 10


def template_info(name: str) -> _TemplateInfo:
    """Choice set, boxed-verdict flag and score range of a template (by name or path)."""
    from omni_rl.prompts import load_template

    tpl = load_template(name)
    boxed = "\\boxed" in tpl.system + tpl.user
    choices = ("A", "B", "tie") if tpl.allow_tie else ("A", "B")
    return _TemplateInfo(choices, tpl.allow_tie, boxed, tpl.lo, tpl.hi)


def failure_kind(ok: bool, finish_reason: str | None) -> FailureKind:
    """ok, or why not: truncated when the judge stopped at max_tokens, else a parse failure."""
    if ok:
        return "ok"
    return "truncated" if finish_reason == "length" else "parse"


# -- the pipeline ----------------------------------------------------------------------------------
class JudgePipeline:
    """Judge ordered pairs, score single responses and combine orders through one client and one budget."""

    def __init__(
        self, client: JudgeClient, spec: JudgeSpec | None = None, budget: FailureBudget | None = None
    ):
        self.client = client
        self.spec = spec or JudgeSpec()
        self.budget = budget if budget is not None else FailureBudget(f"judge {client.base_url}")
        self._templates: dict[str, _TemplateInfo] = {}

    def _info(self, name: str) -> _TemplateInfo:
        """Template facts, read once per pipeline."""
        if name not in self._templates:
            self._templates[name] = template_info(name)
        return self._templates[name]

    # -- rendering (neutralising is not optional) ---------------------------------------------------
    def pair_messages(self, ctx: JudgeContext, a: Response, b: Response) -> list[dict[str, Any]]:
        """OpenAI messages for `a` shown as A and `b` as B (responses neutralised)."""
        pair = PreferencePair(
            id="judge", task=ctx.resolved_task(self.spec.default_task, (a, b)), prompt=ctx.prompt,
            prompt_media=ctx.prompt_media, chosen=a, rejected=b, criteria=ctx.criteria,
        )  # fmt: skip
        return self.ordered_messages(pair.ordered(swap=False))

    def ordered_messages(self, op: OrderedPair) -> list[dict[str, Any]]:
        """OpenAI messages for a laid-out pair; raises DataError/MediaError/OSError when it cannot be sent."""
        jp = render_neutralised(op, self.spec.template)
        return to_openai_messages(jp.messages, jp.media, self.spec.limits)

    def point_messages(self, ctx: JudgeContext, response: Response) -> list[dict[str, Any]]:
        """OpenAI messages scoring one (neutralised) response."""
        from omni_rl.prompts import render_pointwise_messages

        jp = render_pointwise_messages(
            guard_delimiters(ctx.prompt), neutralise(response), ctx.criteria,
            task=ctx.resolved_task(self.spec.default_task, (response,)), prompt_media=ctx.prompt_media,
            template=self.spec.pointwise_template,
        )  # fmt: skip
        return to_openai_messages(jp.messages, jp.media, self.spec.limits)

    # -- sending ------------------------------------------------------------------------------------
    def sampling(self, *, pointwise: bool = False, sample: int = 0, **over: Any) -> dict[str, Any]:
        """Sampling kwargs for one call; sample k > 0 uses seed + k (reproducible repeated samples)."""
        s = self.spec
        kw: dict[str, Any] = {
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "seed": s.seed + sample,
        }
        if s.soft and not pointwise:
            kw.update(logprobs=True, top_logprobs=s.top_logprobs)
        extra = s.pointwise_extra_body if pointwise else s.extra_body
        if extra:
            kw["extra_body"] = dict(extra)
        kw.update(over)
        return kw

    async def _send(self, messages: list[dict[str, Any]], sampling: dict[str, Any]) -> ChatResult:
        """One counted client call; a transport failure is recorded in the budget, then re-raised."""
        try:
            return await self.client.chat(messages, **sampling)
        except JudgeError as exc:
            self.budget.record("transport", str(exc))
            raise

    async def judge_messages(
        self, messages: list[dict[str, Any]], *, template: str | None = None, parse_mode: str | None = None,
        sample: int = 0, **sampling: Any,
    ) -> Judgement:  # fmt: skip
        """Send a rendered pairwise prompt and read the verdict (soft when measurable); budget recorded."""
        info = self._info(template or self.spec.template)
        t0 = time.monotonic()
        res = await self._send(messages, self.sampling(sample=sample, **sampling))
        v = parse_verdict(
            res.text,
            parse_mode or self.spec.parse_mode,
            allow_tie=info.allow_tie,
            boxed=info.boxed,  # type: ignore[arg-type]
        )
        probs = choice_probs(res.text, res.logprobs, info.choices) if v.verdict is not None else None
        soft = probs is not None and probs.mass >= self.spec.min_choice_mass
        if soft:
            p_a = probs.probs["A"] + 0.5 * probs.probs.get("tie", 0.0)  # type: ignore[union-attr]
        else:
            p_a = HARD_P[v.verdict] if v.verdict is not None else None
        kind = failure_kind(v.verdict is not None, res.finish_reason)
        self.budget.record(kind, v.reason if kind != "ok" else "")
        return Judgement(
            verdict=v.verdict, p_a=p_a, probs=probs.probs if probs else None,
            mass=probs.mass if probs else None, soft=soft, failure=kind, format_ok=v.format_ok,
            reason=v.reason, text=res.text, finish_reason=res.finish_reason, latency_s=time.monotonic() - t0,
        )  # fmt: skip

    async def judge_pair(self, ctx: JudgeContext, a: Response, b: Response, sample: int = 0) -> Judgement:
        """Judge one ordered pair: `a` shown as A, `b` as B."""
        return await self.judge_messages(self.pair_messages(ctx, a, b), sample=sample)

    async def judge_ordered(self, op: OrderedPair, sample: int = 0) -> Judgement:
        """Judge a dataset pair in its A/B layout."""
        return await self.judge_messages(self.ordered_messages(op), sample=sample)

    async def compare(
        self, ctx: JudgeContext, x: Response, y: Response, *, swap: bool = True, x_first: bool = True
    ) -> CombinedJudgement:
        """P(x better than y): both orders when `swap`, else one order (x as A when `x_first`).

        Both orders always finish (no orphaned call retries in the background); a transport failure
        in either order is raised afterwards as the JudgeError.
        """
        orders = [True, False] if swap else [x_first]
        gathered = await asyncio.gather(
            *(self.judge_pair(ctx, x, y) if xa else self.judge_pair(ctx, y, x) for xa in orders),
            return_exceptions=True,
        )
        for g in gathered:
            if isinstance(g, BaseException):
                raise g
        return combine_judgements(gathered, orders)  # type: ignore[arg-type]

    async def score(self, ctx: JudgeContext, response: Response, sample: int = 0) -> PointJudgement:
        """Score one response pointwise (template scale) and map it to [0, 1]; budget recorded."""
        info = self._info(self.spec.pointwise_template)
        t0 = time.monotonic()
        messages = self.point_messages(ctx, response)
        res = await self._send(messages, self.sampling(pointwise=True, sample=sample))
        s = parse_score(res.text, mode=self.spec.parse_mode, lo=info.lo, hi=info.hi)  # type: ignore[arg-type]
        kind = failure_kind(s.score is not None, res.finish_reason)
        self.budget.record(kind, s.reason if kind != "ok" else "")
        value = None if s.score is None else (s.score - info.lo) / (info.hi - info.lo)
        return PointJudgement(
            score=None if s.score is None else float(s.score), value=value, failure=kind,
            format_ok=s.format_ok, reason=s.reason, text=res.text, latency_s=time.monotonic() - t0,
        )  # fmt: skip

    def metrics(self, prefix: str = "judge/") -> dict[str, float]:
        """Client counters and budget counters as flat floats."""
        return {**self.client.stats.as_dict(prefix), **self.budget.metrics(f"{prefix}budget/")}
