"""`omni-rl data hard-samples` (omni_rl.curate.hard_samples): keep the pairs the current GenRM still gets wrong or judges inconsistently.

    omni-rl data hard-samples path=data/genrm/train.parquet out_dir=data/genrm_hard
        base_url=http://127.0.0.1:8000/v1 model=genrm k=4 temperature=1.0   (one command line)

As in UnifiedReward-Think and R1-Reward: sample the judge K times per row of a verl GenRM parquet
(`omni-rl data prepare` output, served e.g. by `omni-rl serve` after `omni-rl merge`) and classify:
- easy: all K verdicts match the label;
- inconsistent: the K verdicts disagree with each other;
- wrong: the K verdicts agree, and are wrong (or unparsable).
Writes `hard.parquet` (rows of the kept classes, the input schema unchanged: train on it with
`data.train_files=`), `samples.jsonl` (every row's K verdicts and class), `sft.parquet` (one correct,
strictly formatted trace per row, the cold-start data for recipes/sft_genrm.sh), `rejects.jsonl`
(rows whose judge calls failed, with the error) and `report.json`.

Judging goes through `omni_rl.judge.pipeline` (send → strict parse → failure budget), like every other
caller; it lives in `curate` because `data` sits below the judge and must not import it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from omni_rl.judge.budget import FailureBudget, FailureBudgetExceeded
from omni_rl.judge.client import JudgeClient, JudgeError
from omni_rl.judge.media import to_openai_messages
from omni_rl.judge.pipeline import JudgePipeline, JudgeSpec
from omni_rl.utils.config import config_help, load_config

CLASSES = ("easy", "inconsistent", "wrong")
KEEP = {"hard": ("inconsistent", "wrong"), "wrong": ("wrong",), "inconsistent": ("inconsistent",)}
_MEDIA_COLUMNS = ("images", "videos", "audios")
_SFT_MEDIA = ("images", "videos")  # verl's SFT dataset reads these two; an audio prompt cannot be a trace


@dataclass
class HardSamplesConfig:
    """Inputs, the judge endpoint and the sampling that decides what is hard."""

    path: str = ""  # verl GenRM parquet (omni-rl data prepare)
    out_dir: str = ""
    base_url: str = ""  # OpenAI-compatible endpoint serving the current GenRM
    model: str = ""
    k: int = 4
    temperature: float = 1.0
    max_tokens: int = 1024
    keep: str = "hard"  # hard (inconsistent or wrong) | wrong | inconsistent
    sft: bool = True  # also write sft.parquet from correct, strictly formatted traces
    limit: int = 0  # first N rows only (0 = all)
    chunk_rows: int = 64  # rows judged concurrently (bounded further by max_concurrency)
    max_concurrency: int = 32
    timeout: float = 120.0
    max_retries: int = 2
    max_failure_fraction: float = 0.1  # fail loudly when more rows (or recent judge calls) than this failed
    template: str = "pairwise_tie"  # the template the parquet was rendered with (its choice set: tie or not)
    extra_body: dict[str, Any] | None = None  # passed to the endpoint (e.g. vLLM structured_outputs)
    progress: bool = True


@dataclass
class RowResult:
    """One row's K judgments and its class (or the error that prevented judging it)."""

    index: int
    id: str
    task: str
    label: str
    verdicts: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    klass: str | None = None
    error: str | None = None


def classify(verdicts: list[str | None], label: str) -> str:
    """easy: all right; inconsistent: samples disagree; wrong: they agree on a wrong/unparsable answer."""
    if verdicts and all(v == label for v in verdicts):
        return "easy"
    return "inconsistent" if len(set(verdicts)) > 1 else "wrong"


def iter_rows(path: str, limit: int, batch_size: int = 256) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, row) from a parquet file, streamed in batches."""
    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            if limit and n >= limit:
                return
            yield n, row
            n += 1


def _label(row: dict[str, Any], index: int, path: str) -> str:
    """The row's label from reward_model.ground_truth, with a clear error for foreign parquet."""
    truth = (row.get("reward_model") or {}).get("ground_truth")
    if truth not in ("A", "B", "tie"):
        raise SystemExit(
            f"hard-samples: {path} row {index}: reward_model.ground_truth must be A, B or tie, got {truth!r} "
            "(is this a GenRM parquet from `omni-rl data prepare`?)"
        )
    return truth


def make_pipeline(client: JudgeClient, cfg: HardSamplesConfig) -> JudgePipeline:
    """Strict parsing, sampled at `temperature`; transport failures bounded by max_failure_fraction."""
    spec = JudgeSpec(template=cfg.template, parse_mode="strict", soft=False, max_tokens=cfg.max_tokens,
                     temperature=cfg.temperature, extra_body=cfg.extra_body)  # fmt: skip
    budget = FailureBudget(
        "hard-samples judge", window=256,
        max_rates={"transport": cfg.max_failure_fraction, "parse": None, "truncated": None},
        rate_keys={"transport": "max_failure_fraction"}, hint=f"Check the GenRM server at {cfg.base_url}.",
    )  # fmt: skip
    return JudgePipeline(client, spec, budget)


async def judge_row(
    pipeline: JudgePipeline, row: dict[str, Any], index: int, cfg: HardSamplesConfig
) -> RowResult:
    """Sample the judge K times (seeds 0..K-1) on one row and classify the verdicts."""
    info = row.get("extra_info") or {}
    result = RowResult(
        index, str(info.get("id", index)), str(info.get("task", "")), _label(row, index, cfg.path)
    )
    try:
        messages = to_openai_messages(row["prompt"], {c: row.get(c) or [] for c in _MEDIA_COLUMNS})
        judged = await asyncio.gather(*(pipeline.judge_messages(messages, seed=i) for i in range(cfg.k)))
    except (JudgeError, ValueError, OSError) as exc:
        if isinstance(exc, FailureBudgetExceeded):  # the budget stops the run, not just this row
            raise
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.texts = [j.text for j in judged]
    result.verdicts = [j.verdict for j in judged]
    result.klass = classify(result.verdicts, result.label)
    return result


def _sft_item(column: str, item: Any) -> dict[str, Any]:
    """verl's SFT dataset hands each item to process_image/process_video: `{"image": path}` / `{"video": x}`."""
    key = column[:-1]
    if isinstance(item, dict):
        return {key: item.get(key, item.get("path"))}
    return {key: item}


def _sft_row(row: dict[str, Any], res: RowResult) -> dict[str, Any] | None:
    """Prompt + the first correct, strictly formatted trace, as a verl SFT `messages` row (None: no trace,
    or an audio prompt, which verl's SFT dataset cannot carry)."""
    if row.get("audios"):
        return None
    for text, verdict in zip(res.texts, res.verdicts, strict=True):
        if verdict == res.label:
            messages = [*row["prompt"], {"role": "assistant", "content": text.strip()}]
            media = {c: [_sft_item(c, x) for x in row.get(c) or []] for c in _SFT_MEDIA}
            return {"messages": messages, **media, "id": res.id}
    return None


class _Outputs:
    """Kept rows, SFT rows, samples and rejects, written as the run goes."""

    def __init__(self, cfg: HardSamplesConfig, schema: pa.Schema) -> None:
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.keep = KEEP[cfg.keep]
        self.kept: list[dict[str, Any]] = []
        self.sft: list[dict[str, Any]] = []
        self.samples = (self.out / "samples.jsonl").open("w", encoding="utf-8")
        self.rejects = (self.out / "rejects.jsonl").open("w", encoding="utf-8")
        self.counts: Counter[str] = Counter()
        self.by_task: dict[str, Counter[str]] = {}

    def add(self, row: dict[str, Any], res: RowResult) -> None:
        """Route one judged row."""
        klass = res.klass or "failed"
        self.counts[klass] += 1
        self.by_task.setdefault(res.task, Counter())[klass] += 1
        if res.error is not None:
            self.rejects.write(json.dumps({"index": res.index, "id": res.id, "reason": res.error}) + "\n")
            return
        record = {k: getattr(res, k) for k in ("index", "id", "task", "label", "verdicts")}
        self.samples.write(json.dumps({**record, "class": klass}) + "\n")
        if klass in self.keep:
            self.kept.append(row)
        sft = _sft_row(row, res)
        if sft is not None:
            self.sft.append(sft)

    def close(self, want_sft: bool) -> dict[str, str]:
        """Write the parquet files; return name -> path."""
        self.samples.close()
        self.rejects.close()
        files = {"hard": str(self.out / "hard.parquet")}
        pq.write_table(pa.Table.from_pylist(self.kept, schema=self.schema), files["hard"])
        if want_sft:
            files["sft"] = str(self.out / "sft.parquet")
            schema = self._sft_schema()
            rows = [{k: r[k] for k in schema.names} for r in self.sft]
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), files["sft"])
        return files

    def _sft_schema(self) -> pa.Schema:
        """messages + the media columns some row uses (verl's SFT dataset wants a processor whenever
        an image/video column exists, so text-only data must not carry empty ones), each item a
        `{"image": path}` / `{"video": ...}` struct whose value is typed as the input column's items."""
        used = [c for c in _SFT_MEDIA if c in self.schema.names and any(r[c] for r in self.sft)]
        media = [
            (c, pa.list_(pa.struct([(c[:-1], _item_type(self.schema.field(c).type, c[:-1]))]))) for c in used
        ]
        message = pa.struct([("role", pa.string()), ("content", pa.string())])
        return pa.schema([("messages", pa.list_(message)), *media, ("id", pa.string())])


def _item_type(column_type: pa.DataType, key: str) -> pa.DataType:
    """The path type inside a media column (list<string>, or list<struct<image: ...>>)."""
    value = column_type.value_type if pa.types.is_list(column_type) else column_type
    if pa.types.is_struct(value) and value.get_field_index(key) >= 0:
        return value.field(key).type
    return value


async def run(cfg: HardSamplesConfig) -> dict[str, Any]:
    """Judge every row K times and write the outputs; returns the report."""
    client = JudgeClient(
        cfg.base_url,
        cfg.model,
        max_concurrency=cfg.max_concurrency,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries,
    )
    pipeline = make_pipeline(client, cfg)
    outputs = _Outputs(cfg, pq.read_schema(cfg.path))
    progress = _progress(cfg.progress)
    chunk: list[tuple[int, dict[str, Any]]] = []
    rows = iter_rows(cfg.path, cfg.limit)
    with progress:
        task = progress.add_task("judging", total=None)
        while True:
            chunk = [item for _, item in zip(range(cfg.chunk_rows), rows, strict=False)]
            if not chunk:
                break
            results = await asyncio.gather(*(judge_row(pipeline, row, i, cfg) for i, row in chunk))
            for (_, row), res in zip(chunk, results, strict=True):
                outputs.add(row, res)
            progress.advance(task, len(chunk))
    await client.aclose()
    files = outputs.close(cfg.sft)
    total = sum(outputs.counts.values())
    report = {
        "rows": total,
        "classes": {c: outputs.counts.get(c, 0) for c in (*CLASSES, "failed")},
        "kept": len(outputs.kept),
        "sft_rows": len(outputs.sft),
        "by_task": {t: dict(c) for t, c in sorted(outputs.by_task.items())},
        "files": files,
        "judge": pipeline.metrics(),
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
    }
    (Path(cfg.out_dir) / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _progress(enabled: bool) -> Any:
    """A rich progress bar (rows judged), or a no-op."""
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("judging rows"), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, transient=True, disable=not enabled)


def _check(cfg: HardSamplesConfig) -> None:
    """Refuse missing inputs before any work, naming the key."""
    for key in ("path", "out_dir", "base_url", "model"):
        if not getattr(cfg, key):
            raise SystemExit(f"hard-samples: set {key}=... (see --help)")
    if not Path(cfg.path).is_file():
        raise SystemExit(f"hard-samples: input parquet not found: {cfg.path}")
    if cfg.keep not in KEEP:
        raise SystemExit(f"hard-samples: keep must be one of {sorted(KEEP)}, got {cfg.keep!r}")
    if cfg.k < 1:
        raise SystemExit(f"hard-samples: k must be >= 1, got {cfg.k}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry (dispatched from `omni-rl data hard-samples`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__ + "\nkeys:\n" + config_help(HardSamplesConfig))
        return 0
    cfg = load_config(HardSamplesConfig, argv)
    _check(cfg)
    report = asyncio.run(run(cfg))
    classes = ", ".join(f"{k} {v}" for k, v in report["classes"].items())
    print(
        f"hard-samples: {report['rows']} rows ({classes}); kept {report['kept']} -> {report['files']['hard']}"
    )
    failed = report["classes"]["failed"]
    if report["rows"] and failed / report["rows"] > cfg.max_failure_fraction:
        raise SystemExit(
            f"hard-samples: {failed}/{report['rows']} rows could not be judged (> max_failure_fraction="
            f"{cfg.max_failure_fraction}); see {Path(cfg.out_dir) / 'rejects.jsonl'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
