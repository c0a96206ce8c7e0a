"""`make gpu-smoke`: both jobs in minutes, so a borrowed GPU's time is not spent debugging the launch.

    python scripts/gpu_smoke.py                         # CUDA GPU, vLLM rollout + vLLM-served GenRM (< 9 min)
    python scripts/gpu_smoke.py --rollout hf            # CUDA GPU without vLLM: verl + the project's HF rollout
    python scripts/gpu_smoke.py --device cpu            # the dress rehearsal: same stages and checks on CPU
    python scripts/gpu_smoke.py --plan [--rollout hf]   # any machine: build the inputs, compose the launches

Stages, each the project's own command, all local (tiny models built here, no hub):
 1. `prepare`: tiny Qwen2 (omni_rl.learn.tiny_models), the synthetic judge task (omni_rl.learn.synthetic),
    `omni-rl data prepare` (GenRM train/val parquet) and `omni-rl data policy-prompts` (policy parquet);
 2. `genrm_grpo`: `recipes/train_genrm.sh` for 2 GRPO steps (reward_fns/genrm.py), then `omni-rl merge`;
 3. `policy_grpo`: `omni-rl serve` of that GenRM and `recipes/align_policy.sh RM=external` for 2 GRPO steps
    rewarded by it (reward_fns/omni.py). A GenRM trained 2 steps from random weights writes no verdict, so the
    judge's output is format-forced (vLLM structured outputs): the reward is then the model's real answer-token
    probabilities, and the parse budget is not tripped by a model that cannot write yet. Needs vLLM: the
    `--rollout hf` variant (no vLLM on the machine) stops after stage 2 and says so in the report.
Targets differ only in the profile: cuda/vllm = gpu_tiny, cuda/hf = gpu_tiny,gpu_hf, cpu = cpu_tiny / cpu_policy.

The whole run has one time budget (`--budget-s`): each stage gets what is left (minus a reserve for the
report), and SIGTERM/SIGINT (e.g. an outer `timeout`) end the running stage and still write the report.
Writes <out>/report.md and report.json (stages, checks, step times, rewards, GPU memory); logs in <out>/logs.
Exit 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from omni_rl.learn import curves  # noqa: E402
from omni_rl.learn.synthetic import TEMPLATE, TaskSpec, write_task  # noqa: E402
from omni_rl.utils.procs import ServerProcess, free_port, stop_group  # noqa: E402

PY = sys.executable
STEPS = 2
REPORT_RESERVE_S = 20  # kept back from the budget so the report is always written
# what a judge trained 2 steps from random weights is forced to write: the learn template's verdict format.
# A random model may spell it one character per token (~47 tokens at most), so the judge gets room for that.
VERDICT_REGEX = "<think>[a-z ]{1,12}</think><answer>(A|B|tie)</answer>"
VERDICT_MAX_TOKENS = 64


@dataclass(frozen=True)
class Target:
    """One machine kind: the profiles of both jobs and how the GenRM is served (None: no policy stage)."""

    device: str
    rollout: str
    genrm_profile: str
    policy_profile: str | None
    budget_s: int

    @property
    def name(self) -> str:
        return f"{self.device}/{self.rollout}"


TARGETS = {
    ("cuda", "vllm"): Target("cuda", "vllm", "gpu_tiny", "gpu_tiny", budget_s=540),
    ("cuda", "hf"): Target("cuda", "hf", "gpu_tiny,gpu_hf", None, budget_s=540),
    ("cpu", "hf"): Target("cpu", "hf", "cpu_tiny", "cpu_policy", budget_s=1500),
}


class Terminated(Exception):
    """SIGTERM/SIGINT reached the smoke: stop the running stage, write the report."""


class Budget:
    """One deadline for the whole run; each stage's timeout is what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds

    def left(self) -> float:
        """Seconds a stage may still use (the report's reserve excluded); raises when none is left."""
        left = self.deadline - time.monotonic() - REPORT_RESERVE_S
        if left <= 1:
            raise TimeoutError("the smoke's time budget is spent (--budget-s)")
        return left

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 1)


class GpuMemory:
    """Peak `nvidia-smi` memory.used (MiB, all GPUs summed) while a stage runs; stays 0 without nvidia-smi."""

    def __init__(self, enabled: bool) -> None:
        self.peak = 0
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=30).stdout  # fmt: skip
            self.peak = max(self.peak, sum(int(x) for x in out.split() if x.strip().isdigit()))
            self._stop.wait(0.5)

    def __enter__(self) -> GpuMemory:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join(timeout=5)


def run(out: Path, name: str, cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a stage (cwd = repo, own process group) with its log under <out>/logs; raise with the log tail."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    log_path = out / "logs" / f"{name}.log"
    print(f"[gpu-smoke] {name}: {' '.join(cmd)[:240]}", flush=True)
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            rc: int | str = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = f"timeout after {timeout:.0f} s"
        finally:
            stop_group(proc)  # nothing of a stage outlives it (Ray workers, a hung trainer)
    log = log_path.read_text(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{name} exited with {rc}; log {log_path}:\n{log[-3000:]}")
    return log


def prepare(out: Path, budget: Budget) -> dict[str, Path]:
    """Tiny model, synthetic task, GenRM train/val parquet and policy parquet, all built on this machine."""
    from transformers import AutoTokenizer

    from omni_rl.learn.tiny_models import ensure_tiny_models

    base = ensure_tiny_models(REPO / ".cache" / "tiny-models", ("text",))["text"]
    task = out / "task"
    write_task(task, AutoTokenizer.from_pretrained(base), TaskSpec(n_train=64, n_heldout=8, n_policy=32))
    cli = [PY, "-m", "omni_rl.cli", "data"]
    # verl 0.9.1 always builds the validation dataset: the GenRM launch needs a val.parquet
    run(out, "prepare_genrm", [*cli, "prepare", "loader=omni_rewardbench", f"path={task / 'pairs_train.jsonl'}",
                               f"out_dir={out / 'genrm_data'}", f"template={TEMPLATE}", "val_fraction=0.25",
                               "data_source=synthetic_words", "progress=false"], budget.left())  # fmt: skip
    run(out, "prepare_policy", [*cli, "policy-prompts", "loader=omni_rewardbench",
                                f"path={task / 'pairs_policy.jsonl'}", f"out_dir={out / 'policy_data'}",
                                "data_source=synthetic_words"], budget.left())  # fmt: skip
    d = {"base": base, "genrm_data": out / "genrm_data", "policy_data": out / "policy_data"}
    for f in (
        d["genrm_data"] / "train.parquet",
        d["genrm_data"] / "val.parquet",
        d["policy_data"] / "train.parquet",
    ):
        if not f.is_file():
            raise FileNotFoundError(f"{f} was not written by the data step; see {out / 'logs'}")
    return d


def genrm_launch(out: Path, d: dict[str, Path], target: Target) -> tuple[list[str], dict[str, str]]:
    """The GenRM GRPO command and env (reward_fns/genrm.py) for this target's profile."""
    args = [f"data.train_files={d['genrm_data'] / 'train.parquet'}", f"data.val_files={d['genrm_data'] / 'val.parquet'}",
            f"actor_rollout_ref.model.path={d['base']}", "trainer.experiment_name=gpu_smoke_genrm",
            f"trainer.default_local_dir={out / 'ckpt' / 'genrm'}", "trainer.resume_mode=disable",
            f"trainer.rollout_data_dir={out / 'rollouts' / 'genrm'}",
            f"trainer.total_training_steps={STEPS}", f"trainer.save_freq={STEPS}"]  # fmt: skip
    return ["bash", "recipes/train_genrm.sh", *args], {"PROFILE": target.genrm_profile}


def policy_launch(
    out: Path, d: dict[str, Path], judge_url: str, target: Target
) -> tuple[list[str], dict[str, str]]:
    """The policy GRPO command and env (RM=external on the served GenRM, format-forced verdicts)."""
    extra_body = "{structured_outputs:{regex:'" + VERDICT_REGEX + "'}}"
    args = [f"data.train_files={d['policy_data'] / 'train.parquet'}", f"data.val_files={d['policy_data'] / 'train.parquet'}",
            f"actor_rollout_ref.model.path={d['base']}", "trainer.experiment_name=gpu_smoke_policy",
            f"trainer.default_local_dir={out / 'ckpt' / 'policy'}", "trainer.resume_mode=disable",
            f"trainer.rollout_data_dir={out / 'rollouts' / 'policy'}",
            f"trainer.total_training_steps={STEPS}", "trainer.save_freq=-1",
            f"++reward.custom_reward_function.reward_kwargs.template={TEMPLATE}",
            f"++reward.custom_reward_function.reward_kwargs.extra_body={extra_body}",
            f"++reward.custom_reward_function.reward_kwargs.max_tokens={VERDICT_MAX_TOKENS}"]  # fmt: skip
    env = {
        "PROFILE": target.policy_profile or "",
        "RM": "external",
        "JUDGE_URL": judge_url,
        "JUDGE_MODEL": "genrm",
    }
    return ["bash", "recipes/align_policy.sh", *args], env


def summarise(name: str, log: str, peak_mib: int, wall_s: float) -> dict[str, Any]:
    """Steps, step times, rewards and memory of one training stage, from verl's console metrics."""
    steps = curves.step_metrics(log)
    return {
        "stage": name,
        "steps": len(steps),
        "step_time_s": [round(m.get("timing_s/step", float("nan")), 2) for m in steps.values()],
        "reward_mean": [round(m.get("critic/score/mean", float("nan")), 4) for m in steps.values()],
        "max_memory_allocated_gb": max(
            (m.get("perf/max_memory_allocated_gb", 0.0) for m in steps.values()), default=0.0
        ),
        "peak_gpu_memory_mib": peak_mib,
        "wall_s": round(wall_s, 1),
        "metrics": {str(s): m for s, m in steps.items()},
    }


def check_stage(stage: dict[str, Any], required: tuple[str, ...], zero: tuple[str, ...] = ()) -> list[str]:
    """Problems with one stage: steps trained, metric keys present every step, counters that must stay 0."""
    problems = (
        [] if stage["steps"] == STEPS else [f"{stage['stage']}: trained {stage['steps']} of {STEPS} steps"]
    )
    for step, m in stage["metrics"].items():
        problems += [
            f"{stage['stage']} step {step}: no {k} in verl's metrics" for k in required if k not in m
        ]
        problems += [
            f"{stage['stage']} step {step}: {k}={m[k]} (must be 0)" for k in zero if m.get(k, 0) != 0
        ]
    return problems


GENRM_REQUIRED = ("critic/score/mean", "reward_extra/format/mean", "timing_s/step")
POLICY_REQUIRED = ("critic/score/mean", "reward_extra/parse_failed/mean", "timing_s/step")
POLICY_ZERO = ("reward_extra/judge_failed/mean", "reward_extra/parse_failed/mean")


def serve_genrm(out: Path, model: Path, port: int, target: Target, timeout: float) -> ServerProcess:
    """`omni-rl serve` of the merged GenRM on loopback (on a GPU, beside the policy job), once healthy."""
    sizing = (
        ["gpu_memory_utilization=0.15", "extra_args=[--enforce-eager]"] if target.device == "cuda" else []
    )
    cmd = [PY, "-m", "omni_rl.cli", "serve", f"model={model}", "served_model_name=genrm", f"port={port}",
           "max_model_len=2048", "dtype=float32", *sizing]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    server = ServerProcess(cmd, f"http://127.0.0.1:{port}/health", out / "logs" / "serve_genrm.log", env=env,
                           cwd=REPO, startup_timeout=timeout, name="GenRM server")  # fmt: skip
    return server.start().wait_ready()


def write_report(out: Path, report: dict[str, Any]) -> None:
    """report.json and a short report.md table."""
    (out / "report.json").write_text(json.dumps(report, indent=2))
    lines = [f"# GPU smoke ({report.get('target', '?')})", "",
             f"device: {report.get('gpu', '?')} · total {report.get('total_s', '?')} s of a "
             f"{report.get('budget_s', '?')} s budget · status: **{report['status']}**", "",
             "| stage | steps | step time (s) | reward mean | peak GPU mem (MiB) | max allocated (GB) | wall (s) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in report["stages"]:
        lines.append(f"| {s['stage']} | {s['steps']} | {s['step_time_s']} | {s['reward_mean']} | "
                     f"{s['peak_gpu_memory_mib']} | {s['max_memory_allocated_gb']:.2f} | {s['wall_s']} |")  # fmt: skip
    lines += ["", "Checks:", *[f"- {c}" for c in report.get("checks", [])]]
    lines += [f"- PROBLEM: {p}" for p in report.get("problems", [])]
    for note in report.get("notes", []):
        lines += ["", note]
    if report.get("error"):
        lines += ["", "```", report["error"][-2000:], "```"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _genrm_stage(out: Path, d: dict[str, Path], target: Target, budget: Budget, report: dict) -> None:
    """GenRM GRPO for 2 steps, checked, then merged to an HF folder for serving."""
    start = time.monotonic()
    with GpuMemory(target.device == "cuda") as mem:
        cmd, env = genrm_launch(out, d, target)
        log = run(out, "genrm_grpo", cmd, budget.left(), env)
    stage = summarise("genrm_grpo", log, mem.peak, time.monotonic() - start)
    report["stages"].append(stage)
    report["problems"] += check_stage(stage, GENRM_REQUIRED)
    run(out, "merge_genrm", [PY, "-m", "omni_rl.cli", "merge", f"local_dir={out / 'ckpt' / 'genrm'}",
                             f"target_dir={out / 'models' / 'genrm'}"], budget.left())  # fmt: skip
    if not (out / "models" / "genrm" / "config.json").is_file():
        report["problems"].append("merge_genrm wrote no HF config.json")
    report["checks"].append("genrm_grpo: 2 steps, reward keys in verl's metrics, checkpoint merged")


def _policy_stage(
    out: Path, d: dict[str, Path], target: Target, budget: Budget, port: int, report: dict
) -> None:
    """Serve the merged GenRM, then policy GRPO for 2 steps rewarded by it, checked."""
    start = time.monotonic()
    server = None
    with GpuMemory(target.device == "cuda") as mem:
        try:
            server = serve_genrm(out, out / "models" / "genrm", port, target, min(240.0, budget.left()))
            cmd, env = policy_launch(out, d, f"http://127.0.0.1:{port}/v1", target)
            log = run(out, "policy_grpo", cmd, budget.left(), env)
        finally:
            if server is not None:
                server.stop()
    stage = summarise("policy_grpo", log, mem.peak, time.monotonic() - start)
    report["stages"].append(stage)
    report["problems"] += check_stage(stage, POLICY_REQUIRED, POLICY_ZERO)
    report["checks"].append("policy_grpo: 2 steps rewarded by the served GenRM, no judge or parse failure")


def smoke(out: Path, target: Target, budget_s: float, port: int) -> dict[str, Any]:
    """Run every stage in order, recording each; the report is written even when a stage fails or is killed."""
    gpu = _device_name(target)
    report: dict[str, Any] = {"target": target.name, "gpu": gpu, "budget_s": budget_s, "stages": [],
                              "checks": [], "problems": [], "notes": [], "status": "failed"}  # fmt: skip
    budget = Budget(budget_s)
    previous = _trap_signals()
    try:
        d = prepare(out, budget)
        report["inputs"] = {k: str(v) for k, v in d.items()}
        _genrm_stage(out, d, target, budget, report)
        if target.policy_profile is None:
            report["notes"].append(f"{target.name}: no vLLM here to serve the GenRM, so the policy job "
                                   "(RM=external) is not run; `--rollout vllm` runs it.")  # fmt: skip
        else:
            _policy_stage(out, d, target, budget, port, report)
        report["status"] = "ok" if not report["problems"] else "checks failed"
    except (Exception, Terminated) as exc:  # recorded in the report; the exit code says failed
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _restore_signals(previous)
        report["total_s"] = budget.elapsed()
        write_report(out, report)
    return report


def _device_name(target: Target) -> str:
    """The GPU's name (nvidia-smi -L) or the CPU's, for the report's header."""
    if target.device == "cpu":
        return f"CPU ({os.cpu_count()} cores)"
    gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip().splitlines()
    return gpu[0] if gpu else "?"


def _trap_signals() -> dict[int, Any]:
    """SIGTERM/SIGINT raise Terminated, so an outer `timeout` still gets the report written."""

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(f"signal {signal.Signals(signum).name} received")

    return {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


def plan(out: Path, target: Target) -> int:
    """Without a GPU: build the inputs and compose this target's exact launches with verl's config."""
    from omni_rl.rl.recipe import capture_launch, check_launch

    d = prepare(out, Budget(600))
    launches = [genrm_launch(out, d, target)]
    if target.policy_profile is not None:
        launches.append(policy_launch(out, d, "http://127.0.0.1:8011/v1", target))
    problems: list[str] = []
    rollout = "vllm" if target.rollout == "vllm" else "hf_cpu"
    for cmd, env in launches:
        launch = capture_launch(REPO / cmd[1], cmd[2:], env=env)
        cfg, found = check_launch(launch, [f"actor_rollout_ref.rollout.name={rollout}"])
        problems += found
        name = cfg.actor_rollout_ref.rollout.name
        print(f"[gpu-smoke] plan: {cmd[1]} {env} -> rollout={name}, device={cfg.trainer.device}, "
              f"steps={cfg.trainer.total_training_steps}, gpus={cfg.trainer.n_gpus_per_node}")  # fmt: skip
        if name != rollout or cfg.trainer.total_training_steps != STEPS:
            problems.append(f"{cmd[1]}: expected the {rollout} rollout and {STEPS} steps")
    for p in problems:
        print(f"[gpu-smoke] plan problem: {p}")
    return 1 if problems else 0


def _cuda_missing() -> str | None:
    """Why the CUDA smoke cannot run here, or None."""
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU (torch sees none); `--device cpu` rehearses it, `--plan` composes it"
    return None


def main(argv: list[str] | None = None) -> int:
    """CLI: the smoke on a GPU, its CPU dress rehearsal, or `--plan` anywhere."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "outputs" / "gpu_smoke")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--rollout", choices=["vllm", "hf"], help="cuda: vllm (default) | hf (no vLLM); cpu: hf")
    ap.add_argument("--plan", action="store_true", help="no GPU needed: build inputs, compose the launches")
    ap.add_argument("--budget-s", type=float, help="the whole run's time budget (default: per target)")
    ap.add_argument("--port", type=int, default=0, help="loopback port of the GenRM server (0: a free one)")
    args = ap.parse_args(argv)
    rollout = args.rollout or ("vllm" if args.device == "cuda" else "hf")
    target = TARGETS.get((args.device, rollout))
    if target is None:
        ap.error(f"--device {args.device} has no {rollout} rollout (choices: {sorted(TARGETS)})")
    out = args.out.resolve()
    if args.plan:
        return plan(out, target)
    why = _cuda_missing() if target.device == "cuda" else None
    if why:
        print(f"[gpu-smoke] {why}")
        return 2
    report = smoke(out, target, args.budget_s or target.budget_s, args.port or free_port())
    print((out / "report.md").read_text())
    return 0 if report["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
