"""`make bench`: every script in benchmarks/ with short settings, one vLLM CPU server shared by the three that
need one, and one table of their headline ratios at the end (also written to outputs/bench/summary.{md,json}).

    python scripts/bench_all.py                      # all of them (short settings; the learn chain is `quick`)
    python scripts/bench_all.py export group_schemes # only these (names: see BENCHES)
    python scripts/bench_all.py --base-url http://127.0.0.1:8011/v1 --model tiny   # reuse a running judge server

A benchmark that fails is a row with its exit code and log path, never a silent gap; exit 1 if any failed.
Each script keeps its own full-size defaults for real measurements (`python benchmarks/<script> --help`).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "outputs" / "bench"


@dataclass(frozen=True)
class Bench:
    """One benchmark: its script, short-setting arguments, whether it needs the judge server, headline regex."""

    name: str
    script: str
    args: tuple[str, ...]
    server: bool
    headline: str  # a regex over stdout; group 0 is shown
    timeout_s: int = 900


BENCHES = (
    Bench("export", "bench_export.py", ("--sizes", "2000", "20000"), False,
          r"export/raw throughput = [\d.]+|export peak RSS .*"),
    Bench("group_schemes", "bench_group_schemes.py", ("trials=30", "groups=[4,8]"), False,
          r"\| 8 \| (?!round_robin)\S+ \| .*"),
    Bench("bt_microbatch", "bt_microbatch.py", ("", "16"), False, r"speed-up .*"),
    Bench("reward_throughput", "bench_reward_throughput.py", ("samples=16", "repeats=1", "{kv_server}"), True,
          r"throughput ratio .*"),
    Bench("eval_throughput", "bench_eval_throughput.py", ("--n", "16", "--rounds", "1", "{flag_server}"), True,
          r"median raw .*"),
    Bench("bon_sweep_reuse", "bench_bon_sweep_reuse.py", ("--prompts", "2", "--rounds", "1", "{flag_server}"),
          True, r"ratio fresh/shared: .*"),
    Bench("preflight", "bench_preflight.py", ("--rounds", "2"), False, r"pre-flight speed-up .*"),
    Bench("omp_threads", "bench_omp_threads.py", ("--steps", "30"), False, r"SFT step speed-up .*",
          timeout_s=1200),
    Bench("learn_chain", "learn_chain.py", ("--preset", "quick", "--out", str(OUT / "learn")), False,
          r"\[learn\] report: .*", timeout_s=2400),
)  # fmt: skip


def _args(bench: Bench, base_url: str, model: str) -> list[str]:
    """The bench's arguments with the shared server filled in ('' entries dropped, e.g. bt's model dir)."""
    out: list[str] = []
    for a in bench.args:
        if a == "{kv_server}":
            out += [f"base_url={base_url}", f"model={model}"]
        elif a == "{flag_server}":
            out += ["--base-url", base_url, "--model", model]
        elif a == "" and bench.name == "bt_microbatch":
            out.append(str(_bt_model_dir()))
        else:
            out.append(a)
    return out


def _bt_model_dir() -> Path:
    """The BT model on the tiny text backbone that bt_microbatch builds for itself (once, under /tmp)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bt_microbatch

    return Path(bt_microbatch._model_dir())


def run_one(bench: Bench, base_url: str, model: str) -> dict:
    """Run one benchmark to its log; return its table row."""
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{bench.name}.log"
    cmd = [sys.executable, str(REPO / "benchmarks" / bench.script), *_args(bench, base_url, model)]
    print(f"[bench] {bench.name}: {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=bench.timeout_s)
        rc, stdout = proc.returncode, proc.stdout
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    except subprocess.TimeoutExpired as exc:
        rc, stdout = f"timeout {bench.timeout_s}s", (exc.stdout or b"").decode(errors="replace")
        log.write_text(stdout)
    seconds = time.monotonic() - t0
    found = re.findall(bench.headline, stdout, flags=re.MULTILINE)
    headline = "; ".join(f if isinstance(f, str) else f[0] for f in found[-3:]) if found else ""
    if not headline and rc == 0:
        rc = "no headline in output"
    status = "ok" if rc == 0 else f"FAILED ({rc}; {log.relative_to(REPO)})"
    return {"benchmark": bench.name, "seconds": round(seconds, 1), "status": status, "headline": headline}


def table(rows: list[dict]) -> str:
    """One Markdown table of every benchmark's headline."""
    lines = ["| benchmark | time (s) | status | headline |", "|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['benchmark']} | {r['seconds']} | {r['status']} | {r['headline'].replace('|', '/')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default) and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"subset of {[b.name for b in BENCHES]}")
    ap.add_argument(
        "--base-url", default="", help="a running OpenAI-compatible judge server (else one is started)"
    )
    ap.add_argument("--model", default="tiny")
    args = ap.parse_args(argv)
    unknown = set(args.names) - {b.name for b in BENCHES}
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {[b.name for b in BENCHES]}")
    chosen = [b for b in BENCHES if not args.names or b.name in args.names]
    server = None
    if any(b.server for b in chosen) and not args.base_url:
        from omni_rl.learn.tiny_models import ensure_tiny_models
        from omni_rl.testing.servers import VLLMServer

        model_dir = ensure_tiny_models(REPO / ".cache" / "tiny-models", ("text",))["text"]
        server = VLLMServer(
            model=str(model_dir), served_model_name=args.model, log_path=OUT / "vllm_server.log"
        )
        OUT.mkdir(parents=True, exist_ok=True)
        args.base_url = server.start().base_url
        print(f"[bench] judge server: {args.base_url} (tiny text model, vLLM CPU)", flush=True)
    try:
        rows = [run_one(b, args.base_url, args.model) for b in chosen]
    finally:
        if server is not None:
            server.stop()
    text = table(rows)
    (OUT / "summary.md").write_text(text + "\n")
    (OUT / "summary.json").write_text(json.dumps(rows, indent=2))
    print("\n" + text)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
