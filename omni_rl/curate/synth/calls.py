"""The two kinds of model call in synthesis: a candidate answers a prompt; the teacher judges one order.

Both go through `JudgeClient` (the one door to a model server) with the prompt's media turned into
content parts by `omni_rl.judge.media` — the judge's own media code. Teacher verdicts come only from
`JudgePipeline.judge_ordered` (render → send → parse → failure budget); nothing here parses a verdict.
Each call returns a store record: what a resumed run needs to skip the call and rebuild every output.

The store (`StepStore`): append-only keyed jsonl stores for the synth steps, so a killed run resumes with no duplicates.

Each finished call is one line written by a single `os.write` on an O_APPEND descriptor and fsync'ed,
as soon as its result is known. A kill leaves at worst one torn last line, which `load` cuts off
(and counts) before anything is appended. A key's first successful record is final and never redone;
a failed record is kept as history and, when `retry_failed` is set, the call is made again.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni_rl.curate.synth.config import (
    CandidateConfig,
    SynthPrompt,
    TeacherConfig,
    api_key,
    fingerprint,
    stable_seed,
    user_content,
)
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


class StoreError(RuntimeError):
    """A store line other than the last is not a record: the file was edited, not killed."""


@dataclass
class StoreLoad:
    """What `load` found, reported so a resume is auditable."""

    lines: int = 0
    ok: int = 0
    failed: int = 0  # keys whose latest record is a failure
    duplicates: int = 0  # extra successful lines for a key that already had one (kept: the first)
    torn_tail_bytes: int = 0


class StepStore:
    """One step's records, keyed by `record["key"]`; `record["ok"]` says whether the call succeeded."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self.stats = StoreLoad()
        self._fd: int | None = None

    def load(self) -> StoreLoad:
        """Read every complete line; cut a torn last line left by a kill."""
        self.records.clear()
        self.stats = StoreLoad()
        if not self.path.exists():
            return self.stats
        data = self.path.read_bytes()
        good_end = 0
        for i, line in enumerate(data.splitlines(keepends=True), 1):
            try:
                rec = json.loads(line) if line.endswith(b"\n") else None
            except json.JSONDecodeError as exc:
                if good_end + len(line) < len(data):
                    raise StoreError(
                        f"{self.path}: line {i} is not json ({exc}); move the file away"
                    ) from exc
                rec = None
            if rec is None:
                break
            if not isinstance(rec, dict) or "key" not in rec:
                raise StoreError(f"{self.path}: line {i} has no 'key'; this is not a synth step store")
            self._index(rec)
            good_end += len(line)
        if good_end != len(data):
            self.stats.torn_tail_bytes = len(data) - good_end
            os.truncate(self.path, good_end)
        self.stats.ok = sum(1 for r in self.records.values() if r.get("ok"))
        self.stats.failed = len(self.records) - self.stats.ok
        return self.stats

    def _index(self, rec: dict[str, Any]) -> None:
        """First success wins; a later failure never replaces a success."""
        self.stats.lines += 1
        old = self.records.get(rec["key"])
        if old is not None and old.get("ok"):
            self.stats.duplicates += int(bool(rec.get("ok")))
            return
        self.records[rec["key"]] = rec

    def done(self, key: str, retry_failed: bool) -> dict[str, Any] | None:
        """The record that makes a call unnecessary: a success, or a failure when not retrying."""
        rec = self.records.get(key)
        if rec is None or (not rec.get("ok") and retry_failed):
            return None
        return rec

    def append(self, rec: dict[str, Any]) -> None:
        """Persist one record now (one write, then fsync) and index it."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview((json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode())
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self._index(rec)

    def close(self) -> None:
        """Close the append descriptor (safe to call twice)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
