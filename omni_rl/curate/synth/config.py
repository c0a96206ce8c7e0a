"""What `omni-rl synth` runs on: its typed config (endpoints, agreement rules, outputs, with checks
that name the key) and its prompts (our plain prompts file or any preference loader's prompts, with media
and criteria).

Reading prompts is shared with best-of-N (`omni_rl.bon.rows.load_rows`): the same formats, the same
rejects (a bad row is written to the rejects file with its field, never dropped silently).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omni_rl.bon.rows import load_rows
from omni_rl.data.loaders.base import Reject
from omni_rl.data.schema import PLACEHOLDERS, TASKS, Media, placeholder_counts

PAIRINGS = ("all", "adjacent", "first_vs_rest")
AGREEMENTS = ("both", "one")
ON_DISAGREE = ("flip", "drop")


@dataclass
class CandidateConfig:
    """One candidate model's OpenAI-compatible endpoint and sampling; `rank` 0 is presumed best."""

    base_url: str = ""
    model: str = ""
    api_key_env: str = "OMNI_RL_SYNTH_API_KEY"  # name of the env var holding the key; never stored
    rank: int = 0  # lower = presumed stronger; equal ranks fall back to the order in the config
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0  # per-request seed = seed + stable hash of (prompt id, candidate name)
    system_prompt: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    max_concurrency: int = 8
    timeout: float = 300.0
    max_retries: int = 4


@dataclass
class TeacherConfig:
    """The teacher judge: endpoint, rationale template and (deterministic by default) sampling."""

    base_url: str = ""
    model: str = ""
    api_key_env: str = "OMNI_RL_SYNTH_API_KEY"
    template: str = "synth_rationale"  # omni_rl.prompts template name or a path to your own yaml
    parse_mode: str = "strict"  # strict: only <think>…</think><answer>X</answer> counts as a rationale
    temperature: float = 0.0
    seed: int = 0  # per-request seed = seed + stable hash of (pair, order)
    max_tokens: int = 1024
    logprobs: bool = False  # ask for answer-token logprobs: the margin becomes P(chosen) - P(rejected)
    extra_body: dict[str, Any] = field(default_factory=dict)
    max_concurrency: int = 8
    timeout: float = 300.0
    max_retries: int = 4
    budget_window: int = 64  # the failure budget's window of recent teacher calls
    max_transport_rate: float | None = (
        0.25  # stop when more than this share of the window failed; null: count only
    )
    max_parse_rate: float | None = 0.25
    max_truncated_rate: float | None = 0.25


@dataclass
class RulesConfig:
    """How two ordered teacher verdicts become keep / flip / drop."""

    agreement: str = "both"  # both: both orders name the same winner | one: a tie in one order is allowed
    on_disagree: str = "flip"  # the teacher prefers the presumed-weaker candidate: flip | drop
    min_margin: float = 0.0  # drop below this margin (|P(chosen) - P(rejected)|, or vote share)
    length_guard: bool = False  # drop pairs where the winner differs mainly by being longer
    length_ratio: float = 1.5  # ... i.e. winner/loser length >= this
    length_overlap: float = 0.8  # ... and this share of the shorter one's words appears in the longer


@dataclass
class SynthConfig:
    """Everything `omni-rl synth` needs; every key can be overridden as key=value."""

    input: str = ""
    format: str = "prompts"  # prompts (jsonl/json/parquet {id, prompt, images|videos|audios, criteria?})
    # ... or any omni_rl.data loader name (hh_rlhf, mm_rlhf, ...): its prompts are used, responses ignored
    media_root: str | None = None  # default: the input file's folder
    limit: int | None = None
    out_dir: str = "outputs/synth"
    base_url: str = ""  # default endpoint for every candidate and the teacher that sets none
    candidates: dict[str, CandidateConfig] = field(default_factory=dict)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    pairing: str = "all"  # all: every two candidates | adjacent: by rank | first_vs_rest
    rules: RulesConfig = field(default_factory=RulesConfig)
    sft_template: str | None = None  # prompt of the SFT traces; default: teacher.template (what it saw)
    concurrency: int = 8  # model calls in flight over all endpoints (and prompts in flight); 1 = serial
    max_failure_fraction: float = 0.5  # exit 1 when more teacher or candidate calls than this failed
    retry_failed: bool = True  # a rerun retries calls that failed before (successes are never redone)
    progress: bool = True


def api_key(env_name: str) -> str | None:
    """The key from the named environment variable (the config holds the name, never the key)."""
    return os.environ.get(env_name) if env_name else None


def ranked(cfg: SynthConfig) -> list[str]:
    """Candidate names, presumed strongest first (rank, then config order)."""
    names = list(cfg.candidates)
    return sorted(names, key=lambda n: (cfg.candidates[n].rank, names.index(n)))


def pair_names(cfg: SynthConfig) -> list[tuple[str, str]]:
    """(presumed chosen, presumed rejected) candidate names per pair, by `pairing`."""
    names = ranked(cfg)
    if cfg.pairing == "adjacent":
        return list(itertools.pairwise(names))
    if cfg.pairing == "first_vs_rest":
        return [(names[0], n) for n in names[1:]]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def fingerprint(obj: Any) -> str:
    """A short stable hash of settings (dataclass or json value): part of every store key."""
    data = asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stable_seed(base: int, *parts: str) -> int:
    """A per-request sampling seed from a base seed and the request's identity."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return (base + int.from_bytes(digest[:4], "little")) % (2**31 - 1)


def _check_endpoint(where: str, base_url: str, model: str) -> None:
    """An endpoint needs a URL and a model name."""
    if not base_url or not model:
        raise SystemExit(f"synth: set {where}.base_url=... and {where}.model=... (see --help)")


def check_config(cfg: SynthConfig) -> None:
    """Refuse a config that cannot run, before any call, naming the key to fix.

    Candidates without a `model` are unused (the packaged yaml names `strong` and `weak`); endpoints
    without a `base_url` take the top-level `base_url`.
    """
    if not cfg.input:
        raise SystemExit("synth: set input=<prompts file> (jsonl/json/parquet, or a loader's file)")
    cfg.candidates = {n: c for n, c in cfg.candidates.items() if c.model}
    for endpoint in [*cfg.candidates.values(), cfg.teacher]:
        endpoint.base_url = endpoint.base_url or cfg.base_url
    if len(cfg.candidates) < 2:
        raise SystemExit(
            "synth: need at least two candidates with a model, e.g. candidates.strong.model=... "
            "candidates.weak.model=... (and base_url=... or candidates.<name>.base_url=...)"
        )
    for name, c in cfg.candidates.items():
        _check_endpoint(f"candidates.{name}", c.base_url, c.model)
    _check_endpoint("teacher", cfg.teacher.base_url, cfg.teacher.model)
    choices = {"pairing": (cfg.pairing, PAIRINGS), "rules.agreement": (cfg.rules.agreement, AGREEMENTS)}
    choices["rules.on_disagree"] = (cfg.rules.on_disagree, ON_DISAGREE)
    choices["teacher.parse_mode"] = (cfg.teacher.parse_mode, ("strict", "lenient"))
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise SystemExit(f"synth: {key} must be one of {', '.join(allowed)}, got {value!r}")
    if not 0.0 <= cfg.rules.min_margin <= 1.0:
        raise SystemExit(f"synth: rules.min_margin must be in [0, 1], got {cfg.rules.min_margin}")
    if cfg.rules.length_ratio < 1.0:
        raise SystemExit(f"synth: rules.length_ratio must be >= 1, got {cfg.rules.length_ratio}")


@dataclass
class SynthPrompt:
    """One prompt every candidate answers: text (with optional inline placeholders), media, criteria."""

    id: str
    task: str
    prompt: str
    media: Media = field(default_factory=Media)
    criteria: str | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def infer_task(media: Media, declared: Any = None) -> str:
    """The row's task if it names a known understanding task, else from the media it carries."""
    if isinstance(declared, str) and declared in TASKS:
        return declared
    return "ti2t" if media.images else "tv2t" if media.videos else "ta2t" if media.audios else "t2t"


def load_prompts(
    path: str, fmt: str, media_root: str | None, limit: int | None
) -> tuple[list[SynthPrompt], list[Reject]]:
    """Every usable prompt (ids unique) and the rejected rows."""
    if not Path(path).exists():
        raise SystemExit(f"synth: input file not found: {path}")
    rows, rejects = load_rows(path, fmt, media_root, limit)
    prompts = [
        SynthPrompt(
            id=r.id,
            task=infer_task(r.media, r.meta.get("task")),
            prompt=r.prompt,
            media=r.media,
            criteria=r.criteria,
            source=str(r.meta.get("source") or ("prompts" if fmt == "prompts" else fmt)),
            meta={k: v for k, v in r.meta.items() if k not in ("task", "source")},
        )
        for r in rows
    ]
    return prompts, rejects


def user_content(p: SynthPrompt) -> str:
    """The candidate's user turn: inline placeholders kept, one leading placeholder per other media item."""
    inline = placeholder_counts(p.prompt)
    lead = [PLACEHOLDERS[k] for k in PLACEHOLDERS if not inline[k] for _ in range(len(getattr(p.media, k)))]
    return "\n".join([*lead, p.prompt]) if lead else p.prompt
