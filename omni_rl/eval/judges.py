"""Judges the harness can benchmark: a GenRM endpoint, a scalar (BT) RM, and two sanity baselines.

A judge looks at one A/B layout of a pair and returns a `Judgment`. Pointwise models plug in as a
`PointwiseScorer` (score each response, compare); the Bradley-Terry room implements that protocol.
A judge raises `Unsupported` for a pair it cannot see (e.g. images for a text-only model): the
runner counts it, writes it to the rejects file and marks the task as skipped — never a guess.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from omni_rl.data.schema import DataError, OrderedPair, PreferencePair, Response
from omni_rl.eval.records import verdict_from_scores


class Unsupported(Exception):
    """This judge cannot evaluate this pair (modality, size limit); the pair is skipped and counted."""


@dataclass
class Judgment:
    """One judge output for one layout: a verdict (or None), and scores for pointwise judges."""

    verdict: str | None
    format_ok: bool
    text: str = ""
    score_a: float | None = None
    score_b: float | None = None
    latency_s: float = 0.0


@runtime_checkable
class Judge(Protocol):
    """What the runner needs from any judge."""

    name: str  # identity in the cache: changes whenever anything that changes the verdicts changes
    pointwise: bool  # True → with-ties accuracy uses the tie-threshold sweep

    def describe(self) -> dict[str, Any]:
        """Type, model and sampling parameters for the report (never secrets)."""
        ...

    def check(self, pair: PreferencePair) -> str | None:
        """A reason this judge cannot see `pair`, or None."""
        ...

    async def judge(self, op: OrderedPair, sample: int) -> Judgment:
        """Judge one layout; `sample` indexes repeated sampled judgments (vote@K)."""
        ...

    async def aclose(self) -> None:
        """Release clients/models."""
        ...


def _digest(obj: Any) -> str:
    """Short stable hash of a json-able object, used in judge names."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def has_media(pair: PreferencePair) -> bool:
    """True when any part of the pair carries images, videos or audio."""
    return not (
        pair.prompt_media.is_empty() and pair.chosen.media.is_empty() and pair.rejected.media.is_empty()
    )


class AlwaysFirstJudge:
    """Always answers A: scores ~100% on a benchmark whose chosen answer is shown first — a bias probe."""

    pointwise = False

    def __init__(self) -> None:
        self.name = "always_first"

    def describe(self) -> dict[str, Any]:
        """Baseline: no model, no sampling."""
        return {"type": "always_first"}

    def check(self, pair: PreferencePair) -> str | None:
        """Sees everything (it looks at nothing)."""
        return None

    async def judge(self, op: OrderedPair, sample: int) -> Judgment:
        """Answer A."""
        return Judgment(verdict="A", format_ok=True, text="A")

    async def aclose(self) -> None:
        """Nothing to release."""


class RandomJudge:
    """Answers uniformly at random, reproducibly: a function of (seed, item, layout, sample)."""

    pointwise = False

    def __init__(self, seed: int = 0, allow_tie: bool = False) -> None:
        self.seed = seed
        self.allow_tie = allow_tie
        self.name = f"random:seed={seed}:tie={int(allow_tie)}"

    def describe(self) -> dict[str, Any]:
        """Baseline: its seed and choice set."""
        return {
            "type": "random",
            "seed": self.seed,
            "choices": ["A", "B", "tie"] if self.allow_tie else ["A", "B"],
        }

    def check(self, pair: PreferencePair) -> str | None:
        """Sees everything."""
        return None

    async def judge(self, op: OrderedPair, sample: int) -> Judgment:
        """Seeded per unit, so a resumed run draws the same answers."""
        rng = random.Random(f"{self.seed}:{op.pair.id}:{int(op.swapped)}:{sample}")
        choices = ["A", "B", "tie"] if self.allow_tie else ["A", "B"]
        v = rng.choice(choices)
        return Judgment(verdict=v, format_ok=True, text=v)

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass
class GenRMJudge:
    """A generative RM behind an OpenAI-compatible endpoint, judged through `omni_rl.judge.pipeline`."""

    client: Any  # omni_rl.judge.client.JudgeClient
    template: str = "pairwise_tie"
    sampling: dict[str, Any] = field(
        default_factory=lambda: {"temperature": 0.0, "max_tokens": 1024, "seed": 0}
    )
    parse_mode: str = "lenient"
    text_only: bool = False
    limits: Any = None  # omni_rl.judge.media.MediaLimits
    max_text_chars: int = 4000
    pointwise: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.name = f"genrm:{self.client.model}:{self.template}:{self.parse_mode}:{_digest(self.sampling)}"

    def describe(self) -> dict[str, Any]:
        """Endpoint, model, template and sampling (the API key is never included)."""
        return {
            "type": "genrm",
            "base_url": self.client.base_url,
            "model": self.client.model,
            "template": self.template,
            "parse_mode": self.parse_mode,
            "sampling": dict(self.sampling),
            "deterministic": float(self.sampling.get("temperature", 1.0)) == 0.0 or "seed" in self.sampling,
            "text_only": self.text_only,
        }

    def check(self, pair: PreferencePair) -> str | None:
        """A text-only endpoint cannot see media: skip rather than judge blind."""
        if self.text_only and has_media(pair):
            return f"text-only judge; pair has media (task {pair.task})"
        return None

    @property
    def pipeline(self) -> Any:
        """The one judge pipeline (render with neutralised responses → send → parse), built once.

        Its failure budget only records (no limits): measuring a judge that fails is the point of eval.
        """
        if getattr(self, "_pipeline", None) is None:
            from omni_rl.judge.budget import FailureBudget
            from omni_rl.judge.media import MediaLimits
            from omni_rl.judge.pipeline import JudgePipeline, JudgeSpec

            spec = JudgeSpec(template=self.template, parse_mode=self.parse_mode, soft=False,
                             limits=self.limits or MediaLimits())  # fmt: skip
            unlimited = dict.fromkeys(("transport", "parse", "truncated"))
            self._pipeline = JudgePipeline(self.client, spec, FailureBudget(self.name, max_rates=unlimited))
        return self._pipeline

    async def judge(self, op: OrderedPair, sample: int) -> Judgment:
        """One chat call; sample k > 0 uses seed + k so K samples differ yet stay reproducible."""
        from omni_rl.judge.media import MediaError

        try:
            messages = self.pipeline.ordered_messages(op)
        except DataError as exc:
            raise Unsupported(f"cannot render the judge prompt: {exc}") from exc
        except (MediaError, OSError) as exc:
            raise Unsupported(f"media cannot be sent: {exc}") from exc
        sampling = dict(self.sampling)
        if sample and "seed" in sampling:
            sampling["seed"] = int(sampling["seed"]) + sample
        j = await self.pipeline.judge_messages(messages, **sampling)
        return Judgment(
            verdict=j.verdict,
            format_ok=j.format_ok,
            text=j.text[: self.max_text_chars],
            latency_s=j.latency_s,
        )

    async def aclose(self) -> None:
        """Close the HTTP pool."""
        await self.client.aclose()


class PointwiseScorer(Protocol):
    """A scalar reward model: one float per (pair context, response). The BT room implements this."""

    name: str

    def describe(self) -> dict[str, Any]:
        """Model identity for the report."""
        ...

    def check(self, pair: PreferencePair) -> str | None:
        """A reason the scorer cannot see `pair`, or None."""
        ...

    async def score(self, pair: PreferencePair, responses: list[Response]) -> list[float]:
        """Scores for responses to pair's prompt (higher = better)."""
        ...

    async def aclose(self) -> None:
        """Release the model."""
        ...


class ScalarJudge:
    """Compare two pointwise scores; ties at equal scores (the report also sweeps a tie threshold)."""

    pointwise = True

    def __init__(self, scorer: PointwiseScorer) -> None:
        self.scorer = scorer
        self.name = f"scalar:{scorer.name}"

    def describe(self) -> dict[str, Any]:
        """Scorer identity; no sampling (scores are deterministic)."""
        return {"type": "scalar", **self.scorer.describe()}

    def check(self, pair: PreferencePair) -> str | None:
        """Delegates to the scorer."""
        return self.scorer.check(pair)

    async def judge(self, op: OrderedPair, sample: int) -> Judgment:
        """Score A and B in one batch; a non-finite score gives no verdict (counted as a failure)."""
        sa, sb = await self.scorer.score(op.pair, [op.a, op.b])
        v = verdict_from_scores(sa, sb)
        return Judgment(
            verdict=v, format_ok=v is not None, text=f"{sa:.6g} vs {sb:.6g}", score_a=sa, score_b=sb
        )

    async def aclose(self) -> None:
        """Release the scorer."""
        await self.scorer.aclose()


def pointwise_messages(pair: PreferencePair, response: Response) -> list[dict[str, str]]:
    """What a scalar RM reads: criteria as system, prompt as user, response as assistant."""
    messages = [{"role": "system", "content": pair.criteria}] if pair.criteria else []
    return [
        *messages,
        {"role": "user", "content": pair.prompt},
        {"role": "assistant", "content": response.text},
    ]


def pointwise_text(pair: PreferencePair, response: Response, tokenizer: Any) -> str:
    """pointwise_messages through the model's chat template (plain role-prefixed text without one)."""
    messages = pointwise_messages(pair, response)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


class HFSequenceClassifierScorer:
    """A local `AutoModelForSequenceClassification` RM (text), run in a worker thread."""

    def __init__(self, path: str, device: str = "cpu", max_length: int = 4096, score_index: int = 0) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path, self.device, self.max_length, self.score_index = path, device, max_length, score_index
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self._torch = torch
        self._lock = threading.Lock()
        self.name = f"hf:{os.path.basename(os.path.normpath(path))}:{score_index}"

    def describe(self) -> dict[str, Any]:
        """Model folder, head size and device."""
        return {
            "backend": "hf",
            "path": self.path,
            "num_labels": self.model.config.num_labels,
            "score_index": self.score_index,
            "device": self.device,
            "max_length": self.max_length,
        }

    def check(self, pair: PreferencePair) -> str | None:
        """A sequence-classification head over text only."""
        return f"text-only scalar RM; pair has media (task {pair.task})" if has_media(pair) else None

    def score_sync(self, pair: PreferencePair, responses: list[Response]) -> list[float]:
        """Batch-score the responses (right padding; HF picks the last non-pad token)."""
        texts = [pointwise_text(pair, r, self.tokenizer) for r in responses]
        batch = self.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        ).to(self.device)
        with self._lock, self._torch.inference_mode():
            logits = self.model(**batch).logits
        return [float(x) for x in logits[:, self.score_index].float().cpu()]

    async def score(self, pair: PreferencePair, responses: list[Response]) -> list[float]:
        """Off the event loop, so the progress bar and other judges keep moving."""
        return await asyncio.to_thread(self.score_sync, pair, responses)

    async def aclose(self) -> None:
        """Nothing to close (the model is freed with the object)."""
