"""The two kinds of model call in synthesis: a candidate answers a prompt; the teacher judges one order.

Both go through `JudgeClient` (the one door to a model server) with the prompt's media turned into
content parts by `omni_rl.judge.media` — the judge's own media code. Teacher verdicts come only from
`JudgePipeline.judge_ordered` (render → send → parse → failure budget); nothing here parses a verdict.
Each call returns a store record: what a resumed run needs to skip the call and rebuild every output.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Sequence
from typing import Any

from omni_rl.curate.synth_config import CandidateConfig, TeacherConfig, api_key, fingerprint, stable_seed
from omni_rl.curate.synth_inputs import SynthPrompt, user_content
from omni_rl.data.schema import DataError, Media, PreferencePair, Response
from omni_rl.judge.budget import FailureBudget, FailureBudgetExceeded
from omni_rl.judge.client import ChatResult, JudgeClient, JudgeError
from omni_rl.judge.media import MediaError, to_openai_messages
from omni_rl.judge.pipeline import JudgePipeline, JudgeSpec, neutralise

ORDERS = ("AB", "BA")  # AB: the presumed-chosen candidate is shown as Response A
_METER: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("synth_meter", default=None)
_SAMPLING_KEYS = ("model", "temperature", "top_p", "max_tokens", "seed", "system_prompt", "extra_body")
_TEACHER_KEYS = (
    "model",
    "template",
    "parse_mode",
    "temperature",
    "seed",
    "max_tokens",
    "logprobs",
    "extra_body",
)


class MeteredClient(JudgeClient):
    """A JudgeClient that also adds each call's token usage to the calling task's meter (if any)."""

    async def chat(self, messages: Sequence[dict[str, Any]], **sampling: Any) -> ChatResult:
        """`JudgeClient.chat`, then count usage into the meter set by the caller's task."""
        res = await super().chat(messages, **sampling)
        meter = _METER.get()
        if meter is not None:
            _add_usage(meter, res)
        return res


def _add_usage(meter: dict[str, int], res: ChatResult) -> None:
    """Accumulate prompt/completion tokens and HTTP attempts of one reply."""
    usage = res.raw.get("usage") or {}
    meter["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
    meter["completion_tokens"] += int(usage.get("completion_tokens") or 0)
    meter["attempts"] += res.attempts


def _new_meter() -> dict[str, int]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "attempts": 0}


def text_hash(*texts: str) -> str:
    """Short content hash: a store key changes when what was sent changes."""
    return hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:12]


def prompt_identity(p: SynthPrompt) -> str:
    """Hash of everything about a prompt that a model sees."""
    media = p.media.to_dict()
    return text_hash(p.task, p.prompt, p.criteria or "", *(f"{k}:{v}" for k, vs in media.items() for v in vs))


def make_client(c: CandidateConfig | TeacherConfig) -> MeteredClient:
    """A client for one endpoint; the API key is read from the env var the config names."""
    return MeteredClient(
        c.base_url, c.model, api_key=api_key(c.api_key_env), max_concurrency=c.max_concurrency,
        timeout=c.timeout, max_retries=c.max_retries,
    )  # fmt: skip


# -- candidates ------------------------------------------------------------------------------------
def gen_key(p: SynthPrompt, name: str, c: CandidateConfig) -> str:
    """Store key of one candidate answer: prompt, candidate name and every setting that shapes it."""
    settings = fingerprint({k: getattr(c, k) for k in _SAMPLING_KEYS})
    return f"gen|{p.id}|{name}|{prompt_identity(p)}|{settings}"


async def generate(client: JudgeClient, p: SynthPrompt, name: str, c: CandidateConfig) -> dict[str, Any]:
    """One candidate answer (seeded), as a store record; a failure is a record too, never an answer."""
    seed = stable_seed(c.seed, p.id, name)
    rec: dict[str, Any] = {"key": gen_key(p, name, c), "prompt_id": p.id, "candidate": name, "seed": seed}
    msgs = [{"role": "system", "content": c.system_prompt}] if c.system_prompt else []
    try:
        messages = to_openai_messages([*msgs, {"role": "user", "content": user_content(p)}], p.media)
    except (MediaError, OSError) as exc:
        return {**rec, "ok": False, "failure": "media", "error": f"{type(exc).__name__}: {exc}"}
    kwargs: dict[str, Any] = {"temperature": c.temperature, "top_p": c.top_p, "max_tokens": c.max_tokens}
    if c.extra_body:
        kwargs["extra_body"] = dict(c.extra_body)
    meter = _new_meter()
    try:
        res = await client.chat(messages, seed=seed, **kwargs)
    except JudgeError as exc:
        return {**rec, "ok": False, "failure": "transport", "error": str(exc), "usage": meter}
    _add_usage(meter, res)
    return {**rec, "ok": True, "text": res.text, "finish_reason": res.finish_reason, "usage": meter}


# -- teacher ---------------------------------------------------------------------------------------
def teacher_pipeline(t: TeacherConfig, budget: FailureBudget) -> JudgePipeline:
    """The judge pipeline the teacher's verdicts go through (the project's only judge)."""
    spec = JudgeSpec(
        template=t.template, parse_mode=t.parse_mode, soft=t.logprobs, max_tokens=t.max_tokens,
        temperature=t.temperature, seed=t.seed, extra_body=dict(t.extra_body) or None,
    )  # fmt: skip
    return JudgePipeline(make_client(t), spec, budget)


def teacher_identity(t: TeacherConfig) -> str:
    """Hash of the teacher settings and the template text: a change re-judges, never mixes."""
    from omni_rl.prompts import load_template

    tpl = load_template(t.template)
    return fingerprint({**{k: getattr(t, k) for k in _TEACHER_KEYS}, "tpl": text_hash(tpl.system, tpl.user)})


def judge_key(pair: PreferencePair, order: str, teacher_id: str) -> str:
    """Store key of one ordered judgement: the pair's content, the order and the teacher."""
    content = text_hash(pair.meta["prompt_identity"], pair.chosen.text, pair.rejected.text)
    return f"judge|{pair.id}|{order}|{content}|{teacher_id}"


async def judge_order(pipe: JudgePipeline, pair: PreferencePair, order: str, key: str) -> dict[str, Any]:
    """The teacher's judgement of one order as a store record (parse failures are recorded, not guessed).

    A transport or media failure is an unfinished call (`ok: false`, retried by a rerun); a parse or
    truncation failure is a finished call with no verdict. `FailureBudgetExceeded` stops the run.
    """
    rec: dict[str, Any] = {"key": key, "pair_id": pair.id, "order": order}
    meter = _new_meter()
    token = _METER.set(meter)
    try:
        j = await pipe.judge_ordered(
            pair.ordered(swap=order == "BA"), sample=stable_seed(0, pair.id, order) % 2**30
        )
    except FailureBudgetExceeded:
        raise
    except JudgeError as exc:
        return {**rec, "ok": False, "failure": "transport", "error": str(exc), "usage": meter}
    except (DataError, MediaError, OSError) as exc:
        return {
            **rec,
            "ok": False,
            "failure": "media",
            "error": f"{type(exc).__name__}: {exc}",
            "usage": meter,
        }
    finally:
        _METER.reset(token)
    return {
        **rec, "ok": True, "failure": j.failure, "verdict": j.verdict, "p_a": j.p_a, "soft": j.soft,
        "format_ok": j.format_ok, "reason": j.reason, "text": j.text, "finish_reason": j.finish_reason,
        "usage": meter,
    }  # fmt: skip


def presumed_pair(p: SynthPrompt, chosen: tuple[str, str], rejected: tuple[str, str]) -> PreferencePair:
    """The pair as presumed before judging: (name, text) of the presumed-stronger and -weaker answers.

    Answers are neutralised exactly as the pipeline does before rendering (a stray `<image>` becomes
    `[image]`, template delimiters and tags are escaped), so the pair is what the teacher saw and passes
    `schema.validate` in `data prepare`.
    """
    return PreferencePair(
        id=f"{p.id}:{chosen[0]}>{rejected[0]}", task=p.task, prompt=p.prompt, prompt_media=p.media,
        chosen=neutralise(Response(chosen[1], Media())), rejected=neutralise(Response(rejected[1], Media())), criteria=p.criteria,
        source="synth", subset=p.source, group=p.id,
        meta={"prompt_identity": prompt_identity(p), "presumed": {"chosen": chosen[0], "rejected": rejected[0]}},
    )  # fmt: skip
