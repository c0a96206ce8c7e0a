"""`omni-rl eval`: load a benchmark, run a judge over it (resumably), write the report.

    omni-rl eval data.loader=mm_rlhf data.path=bench.jsonl judge.type=genrm
        judge.base_url=http://127.0.0.1:8000/v1 judge.model=omni-rm out_dir=runs/eval1

Python API: `evaluate(EvalConfig(...))` returns the report dict.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omni_rl.data.export import RejectRateError, check_reject_rate
from omni_rl.data.loaders.base import FileError, LoaderOptionError
from omni_rl.data.schema import DataError
from omni_rl.eval import metrics
from omni_rl.eval.cache import ResultCache
from omni_rl.eval.fingerprint import judge_identity
from omni_rl.eval.judges import (
    AlwaysFirstJudge,
    GenRMJudge,
    HFSequenceClassifierScorer,
    Judge,
    RandomJudge,
    ScalarJudge,
)
from omni_rl.eval.report import software_versions, write_report
from omni_rl.eval.runner import ORDERS, EvalAborted, JudgeChanged, RunResult, SourceOrderUnknown, run_judge

log = logging.getLogger(__name__)
JUDGE_TYPES = ("genrm", "scalar_hf", "scalar_vllm", "scalar_bt", "scalar_plugin", "always_first", "random")


@dataclass
class DataConfig:
    """Which benchmark file, read by which registered loader."""

    loader: str = "???"
    path: str = "???"
    media_root: str | None = None  # default: the data file's folder
    limit: int | None = None  # first N pairs (smoke runs): reading stops there, whole-file checks do not run
    check_files: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # loader options (`omni-rl data loaders`)
    max_reject_fraction: float = 0.5  # same guard as `data prepare`: more rejected rows than this fails


@dataclass
class JudgeConfig:
    """The judge under test; the API key is read from the env var named here and never stored."""

    type: str = "genrm"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "omni-rm"
    api_key_env: str = "OMNI_RL_JUDGE_API_KEY"
    template: str = "pairwise_tie"
    parse_mode: str = "lenient"
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int = 0
    text_only: bool = False  # skip (and report) pairs with media instead of sending them
    max_concurrency: int = 16
    timeout: float = 120.0
    max_retries: int = 4
    path: str = ""  # scalar_hf / scalar_bt / scalar_plugin: model folder
    scorer: str = ""  # scalar_plugin: "package.module:Class", a PointwiseScorer taking (path, device=)
    device: str = "cpu"
    max_length: int = 4096
    allow_tie: bool = False  # random baseline


@dataclass
class EvalConfig:
    """Everything an eval run depends on (written into the report)."""

    data: DataConfig = field(default_factory=DataConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    benchmark: str = ""  # name in cache and report; default: the loader name
    order: str = "random"  # random | both | source | chosen_first
    seed: int = 0  # order randomisation
    samples: int = 1  # K sampled judgments per layout (vote@K); use temperature > 0
    concurrency: int = 8
    max_errors: int = 20
    out_dir: str = "eval_out"
    cache: str = ""  # default: <out_dir>/cache.jsonl
    resume: str = "auto"  # auto: refuse a cache made by a changed judge | force: reuse its judgments anyway
    progress: bool = True


def build_judge(cfg: JudgeConfig) -> Judge:
    """Instantiate the configured judge."""
    if cfg.type == "always_first":
        return AlwaysFirstJudge()
    if cfg.type == "random":
        return RandomJudge(seed=cfg.seed, allow_tie=cfg.allow_tie)
    if cfg.type == "scalar_hf":
        if not cfg.path:
            raise SystemExit(
                "judge.type=scalar_hf needs judge.path=<HF sequence-classification model folder>"
            )
        return ScalarJudge(HFSequenceClassifierScorer(cfg.path, cfg.device, cfg.max_length))
    if cfg.type in ("scalar_bt", "scalar_plugin"):
        if not cfg.path:
            raise SystemExit(f"judge.type={cfg.type} needs judge.path=<model folder>")
        spec = cfg.scorer if cfg.type == "scalar_plugin" else "omni_rl.bt.judge:BTPointwiseScorer"
        return ScalarJudge(_import(spec)(cfg.path, device=cfg.device))
    if cfg.type == "scalar_vllm":
        from omni_rl.eval.pooling import PoolingClient, VLLMClassifyScorer

        return ScalarJudge(VLLMClassifyScorer(_client(cfg, PoolingClient)))
    if cfg.type == "genrm":
        from omni_rl.judge.client import JudgeClient

        client = _client(cfg, JudgeClient)
        sampling = {
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_tokens": cfg.max_tokens,
            "seed": cfg.seed,
        }
        return GenRMJudge(client, cfg.template, sampling, cfg.parse_mode, cfg.text_only)
    raise SystemExit(f"judge.type must be one of {JUDGE_TYPES}, got {cfg.type!r}")


def _client(cfg: JudgeConfig, cls: Any) -> Any:
    """The endpoint client; the key comes from the named env var and is never stored or logged."""
    return cls(
        cfg.base_url,
        cfg.model,
        api_key=os.environ.get(cfg.api_key_env) or None,
        max_concurrency=cfg.max_concurrency,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries,
    )


def _import(spec: str) -> Any:
    """`package.module:Name` → the object (plug-in scorers)."""
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise SystemExit(f"judge.scorer must look like 'package.module:Class', got {spec!r}")
    return getattr(importlib.import_module(module), name)


@dataclass
class Loaded:
    """What loading produced: usable pairs, counts of what was not usable, and the file's own facts."""

    pairs: list[Any]
    rejects: int = 0
    renamed: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    top_reject: str = ""


def load_benchmark(cfg: DataConfig, rejects_path: Path, cache_dir: Path | None = None) -> Loaded:
    """Load pairs through the registered loader; every reject goes to the rejects file.

    With `limit`, reading stops at the N-th usable pair (the loader's whole-file checks then do not
    run, and the facts say so). Item ids key the cache, so they must be unique: a repeated source id
    (the public Multimodal RewardBench file reuses some ids) gets a stable `#dupK` suffix and is counted.
    """
    from collections import Counter

    from omni_rl.data.loaders import Reject, iter_records

    out = Loaded(pairs=[])
    reasons: Counter[str] = Counter()
    seen: dict[str, int] = {}
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    records = iter_records(cfg.loader, cfg.path, media_root=cfg.media_root, cache_dir=cache_dir,
                           check_files=cfg.check_files, facts=out.facts, **cfg.options)  # fmt: skip
    with rejects_path.open("w") as rej:
        for rec in records:
            if isinstance(rec, Reject):
                out.rejects += 1
                reasons[f"{rec.field}: {rec.reason}"[:160]] += 1
                rej.write(rec.to_json() + "\n")
                continue
            k = seen.get(rec.id, 0)
            seen[rec.id] = k + 1
            if k:
                out.renamed += 1
                rec.meta["source_id"] = rec.id
                rec.id = f"{rec.id}#dup{k}"
            out.pairs.append(rec)
            if cfg.limit is not None and len(out.pairs) >= cfg.limit:
                records.close()  # stop reading: the rest of the file is not part of this run
                out.facts["limited"] = f"stopped after data.limit={cfg.limit} pairs"
                break
    if out.renamed:
        log.warning("%s: %d pairs reuse an earlier id; renamed with #dupK suffixes", cfg.path, out.renamed)
    out.top_reject = reasons.most_common(1)[0][0] if reasons else ""
    return out


def check_source_order(pairs: list[Any], loader: str) -> dict[str, int]:
    """order=source needs the source's own order for every pair; refuse (naming pairs) when it is unknown."""
    unknown = [p.id for p in pairs if "source_first_is_chosen" not in p.meta]
    if unknown:
        raise SourceOrderUnknown(
            f"order=source: loader {loader!r} does not know which response the file showed first for "
            f"{len(unknown)} of {len(pairs)} pairs (e.g. {', '.join(unknown[:3])}); use order=random "
            "(default), both or chosen_first"
        )
    first = sum(bool(p.meta["source_first_is_chosen"]) for p in pairs)
    return {"preferred_first": first, "pairs": len(pairs)}


def build_report(cfg: EvalConfig, judge: Judge, result: RunResult, n_rejects: int) -> dict[str, Any]:
    """Metrics plus everything needed to reproduce them."""
    report = _report(cfg, judge, result, n_rejects)
    report["run"]["changed_items_rejudged"] = result.changed_items
    report["run"]["reused_other_judge_fingerprint"] = result.reused_other_judge
    return report


def _report(cfg: EvalConfig, judge: Judge, result: RunResult, n_rejects: int) -> dict[str, Any]:
    """Metrics plus everything needed to reproduce them."""
    benchmark = cfg.benchmark or cfg.data.loader
    kind = metrics.benchmark_kind(benchmark if cfg.benchmark else cfg.data.loader)
    summary = metrics.summarize(result.records, kind, judge.pointwise, result.skipped)
    config = asdict(cfg)
    config["judge"]["api_key_set"] = bool(os.environ.get(cfg.judge.api_key_env))
    return {
        "benchmark": benchmark,
        "kind": kind,
        "pointwise": judge.pointwise,
        "judge": {"name": judge.name, **judge.describe()},
        "run": {
            "order": cfg.order,
            "seed": cfg.seed,
            "samples": cfg.samples,
            "pairs": result.pairs,
            "rejects": n_rejects,
            "skipped": len(result.skipped),
            "errors": len(result.errors),
            "planned": result.planned,
            "resumed": result.resumed,
            "judged": result.judged,
            "elapsed_s": round(result.elapsed_s, 3),
            "items_per_s": result.items_per_s,
            "conventions": metrics.__doc__.split("Conventions (stated in every report):", 1)[1].strip(),
        },
        "metrics": summary,
        "skipped": result.skipped[:1000],
        "errors": result.errors[:100],
        "config": config,
        "versions": software_versions(),
    }


async def evaluate_async(cfg: EvalConfig) -> dict[str, Any]:
    """Load, judge (resuming from the cache when item and judge still match), report."""
    if cfg.order not in ORDERS:
        raise SystemExit(f"order must be one of {ORDERS}, got {cfg.order!r}")
    out = Path(cfg.out_dir)
    loaded = load_benchmark(cfg.data, out / "rejects.jsonl", out / "media")
    pairs, n_rej = loaded.pairs, loaded.rejects
    check_reject_rate(
        n_rej, n_rej + len(pairs), cfg.data.max_reject_fraction, loaded.top_reject, out / "rejects.jsonl"
    )
    if not pairs:
        raise SystemExit(
            f"no usable pairs in {cfg.data.path} ({n_rej} rejected, see {out / 'rejects.jsonl'})"
        )
    source_order = check_source_order(pairs, cfg.data.loader) if cfg.order == "source" else None
    judge = build_judge(cfg.judge)
    if cfg.samples > 1 and cfg.judge.type == "genrm" and cfg.judge.temperature == 0.0:
        log.warning(
            "samples=%d with temperature 0: the K samples will agree; vote@K needs sampling", cfg.samples
        )
    cache = ResultCache(cfg.cache or out / "cache.jsonl")
    st = cache.load()
    if st.torn_tail_bytes or st.duplicates:
        log.warning(
            "cache %s: cut a torn last line (%d bytes), %d duplicate keys ignored",
            cache.path,
            st.torn_tail_bytes,
            st.duplicates,
        )
    try:
        identity = await judge_identity(judge)
        result = await run_judge(
            pairs, judge, cfg.benchmark or cfg.data.loader, cache,
            order=cfg.order, seed=cfg.seed, samples=cfg.samples, concurrency=cfg.concurrency,
            max_errors=cfg.max_errors, progress=cfg.progress, judge_fp=identity["fingerprint"], resume=cfg.resume,
        )  # fmt: skip
    finally:
        cache.close()
        await judge.aclose()
    with (out / "rejects.jsonl").open("a") as rej:
        for s in result.skipped:
            rej.write(json.dumps({"source": cfg.data.loader, "field": "<judge>", **s}) + "\n")
    report = build_report(cfg, judge, result, n_rej)
    report["run"]["renamed_duplicate_ids"] = loaded.renamed
    report["run"]["source_order"] = source_order
    report["judge"]["identity"] = identity
    report["data"] = {"path": cfg.data.path, "loader": cfg.data.loader, "facts": loaded.facts}
    write_report(report, out)
    return report


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Blocking Python API."""
    return asyncio.run(evaluate_async(cfg))


def main(argv: list[str]) -> int:
    """CLI entry: Hydra-style overrides over EvalConfig (and omni_rl/conf/eval.yaml)."""
    from omni_rl.utils.config import config_help, load_config

    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print(config_help(EvalConfig))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "openai", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = load_config(EvalConfig, argv, yaml_name="eval")
    except OmegaConfBaseException as exc:
        print(f"omni-rl eval: bad config: {exc}\n(see `omni-rl eval --help` for every key)", file=sys.stderr)
        return 2
    from omni_rl.data.loaders import get_loader

    try:
        get_loader(cfg.data.loader)
    except KeyError as exc:  # the message lists the known loaders
        print(f"omni-rl eval: {exc.args[0]}", file=sys.stderr)
        return 2
    try:
        report = evaluate(cfg)
    except EvalAborted as exc:
        print(f"omni-rl eval: aborted: {exc}", file=sys.stderr)
        return 3
    except (FileError, LoaderOptionError, SourceOrderUnknown, JudgeChanged) as exc:
        print(f"omni-rl eval: {exc}", file=sys.stderr)
        return 2
    except (DataError, RejectRateError) as exc:
        print(f"omni-rl eval: {cfg.data.path}: {exc}", file=sys.stderr)
        return 1
    m, run = report["metrics"], report["run"]
    acc = "n/a" if m["accuracy"] is None else f"{100 * m['accuracy']:.2f}%"
    print(
        f"{report['benchmark']}: accuracy {acc} over {m['judgments']} judgments; rejected {run['rejects']} rows; "
        f"parse failures {m['failures']['count']}; skipped {run['skipped']}; errors {run['errors']}; "
        f"report in {cfg.out_dir}/report.md"
    )
    if not m["judgments"]:
        print("omni-rl eval: nothing was judged (see rejects.jsonl for why)", file=sys.stderr)
    return 1 if run["errors"] or not m["judgments"] else 0
