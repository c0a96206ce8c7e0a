"""`make gpu-smoke`: both jobs on one CUDA GPU in minutes, so a borrowed GPU hour is not spent debugging.

    python scripts/gpu_smoke.py [--out outputs/gpu_smoke]   # needs a CUDA GPU; < 10 minutes
    python scripts/gpu_smoke.py --plan                      # any machine: build inputs, compose both launches

Stages, each the project's own command, all local (tiny models built here, no hub):
 1. tiny Qwen2 (omni_rl.testing.tiny_models) and the synthetic judge task (omni_rl.learn.synthetic),
    `omni-rl data prepare` (GenRM parquet) and `omni-rl data policy-prompts` (policy parquet);
 2. `recipes/train_genrm.sh` PROFILE=gpu_tiny: 2 GRPO steps, vLLM rollout, reward_fns/genrm.py; `omni-rl merge`;
 3. `omni-rl serve` of that GenRM (vLLM, same GPU) and `recipes/align_policy.sh` PROFILE=gpu_tiny RM=external:
    2 GRPO steps of the policy rewarded by the GenRM (reward_fns/omni.py).
Writes <out>/report.md and report.json: steps, step time, rewards, peak GPU memory (nvidia-smi, whole
stage) and verl's max allocated memory; logs under <out>/logs/. Exit 0 only if every stage trained 2 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from omni_rl.learn import curves  # noqa: E402
from omni_rl.learn.synthetic import TEMPLATE, TaskSpec, write_task  # noqa: E402

PY = sys.executable
STEPS = 2
STAGE_TIMEOUT_S = 270


class GpuMemory:
    """Peak `nvidia-smi` memory.used (MiB, all GPUs summed) while a stage runs, sampled twice a second."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=30).stdout  # fmt: skip
            used = sum(int(x) for x in out.split() if x.strip().isdigit())
            self.peak = max(self.peak, used)
            self._stop.wait(0.5)

    def __enter__(self) -> GpuMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run(out: Path, name: str, cmd: list[str], env: dict[str, str] | None = None) -> str:
    """Run a stage (cwd = repo) with its log under <out>/logs; raise with the log tail on failure."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    log_path = out / "logs" / f"{name}.log"
    print(f"[gpu-smoke] {name}: {' '.join(cmd)[:240]}", flush=True)
    with open(log_path, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=STAGE_TIMEOUT_S)  # fmt: skip
    log = log_path.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited with {proc.returncode}; log {log_path}:\n{log[-3000:]}")
    return log


def prepare(out: Path) -> dict[str, Path]:
    """Tiny model, synthetic task, GenRM parquet and policy parquet, all built on this machine."""
    from transformers import AutoTokenizer

    from omni_rl.learn.tiny_models import ensure_tiny_models

    base = ensure_tiny_models(REPO / ".cache" / "tiny-models", ("text",))["text"]
    task = out / "task"
    write_task(task, AutoTokenizer.from_pretrained(base), TaskSpec(n_train=64, n_heldout=8, n_policy=32))
    cli = [PY, "-m", "omni_rl.cli", "data"]
    run(out, "prepare_genrm", [*cli, "prepare", "loader=omni_rewardbench", f"path={task / 'pairs_train.jsonl'}",
                               f"out_dir={out / 'genrm_data'}", f"template={TEMPLATE}",
                               "data_source=synthetic_words", "progress=false"])  # fmt: skip
    run(out, "prepare_policy", [*cli, "policy-prompts", "loader=omni_rewardbench",
                                f"path={task / 'pairs_policy.jsonl'}", f"out_dir={out / 'policy_data'}",
                                "data_source=synthetic_words"])  # fmt: skip
    return {"base": base, "genrm_data": out / "genrm_data", "policy_data": out / "policy_data"}


def genrm_launch(out: Path, d: dict[str, Path]) -> tuple[list[str], dict[str, str]]:
    """The GenRM GRPO command and env (PROFILE=gpu_tiny, vLLM rollout, reward_fns/genrm.py)."""
    args = [f"data.train_files={d['genrm_data'] / 'train.parquet'}", f"data.val_files={d['genrm_data'] / 'val.parquet'}",
            f"actor_rollout_ref.model.path={d['base']}", "trainer.experiment_name=gpu_smoke_genrm",
            f"trainer.default_local_dir={out / 'ckpt' / 'genrm'}", "trainer.resume_mode=disable",
            f"trainer.total_training_steps={STEPS}", f"trainer.save_freq={STEPS}"]  # fmt: skip
    return ["bash", "recipes/train_genrm.sh", *args], {"PROFILE": "gpu_tiny"}


def policy_launch(out: Path, d: dict[str, Path], judge_url: str) -> tuple[list[str], dict[str, str]]:
    """The policy GRPO command and env (PROFILE=gpu_tiny, RM=external on the served GenRM)."""
    args = [f"data.train_files={d['policy_data'] / 'train.parquet'}", f"data.val_files={d['policy_data'] / 'train.parquet'}",
            f"actor_rollout_ref.model.path={d['base']}", "trainer.experiment_name=gpu_smoke_policy",
            f"trainer.default_local_dir={out / 'ckpt' / 'policy'}", "trainer.resume_mode=disable",
            f"trainer.total_training_steps={STEPS}", "trainer.save_freq=-1",
            f"reward.custom_reward_function.reward_kwargs.template={TEMPLATE}"]  # fmt: skip
    env = {"PROFILE": "gpu_tiny", "RM": "external", "JUDGE_URL": judge_url, "JUDGE_MODEL": "genrm"}
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
    }


def serve_genrm(out: Path, model: Path, port: int) -> subprocess.Popen:
    """`omni-rl serve` of the merged GenRM on loopback, sharing the GPU with the policy job."""
    log = open(out / "logs" / "serve_genrm.log", "w")  # noqa: SIM115 (closed with the process)
    cmd = [PY, "-m", "omni_rl.cli", "serve", f"model={model}", "served_model_name=genrm", f"port={port}",
           "gpu_memory_utilization=0.15", "max_model_len=2048", "extra_args=[--enforce-eager]"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"GenRM server exited {proc.returncode}: {out / 'logs' / 'serve_genrm.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(2)
    raise TimeoutError("GenRM server not healthy after 240 s")


def write_report(out: Path, report: dict[str, Any]) -> None:
    """report.json and a short report.md table."""
    (out / "report.json").write_text(json.dumps(report, indent=2))
    lines = ["# GPU smoke", "", f"GPU: {report.get('gpu', '?')} · total {report.get('total_s', '?')} s · "
             f"status: **{report['status']}**", "",
             "| stage | steps | step time (s) | reward mean | peak GPU mem (MiB) | max allocated (GB) | wall (s) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in report["stages"]:
        lines.append(f"| {s['stage']} | {s['steps']} | {s['step_time_s']} | {s['reward_mean']} | "
                     f"{s['peak_gpu_memory_mib']} | {s['max_memory_allocated_gb']:.2f} | {s['wall_s']} |")  # fmt: skip
    if report.get("error"):
        lines += ["", "```", report["error"][-2000:], "```"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def smoke(out: Path, port: int) -> dict[str, Any]:
    """Run every stage in order, recording each; the report is written even when a stage fails."""
    gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip().splitlines()
    report: dict[str, Any] = {"gpu": gpu[0] if gpu else "?", "stages": [], "status": "failed"}
    t0 = time.monotonic()
    server = None
    try:
        d = prepare(out)
        for name in ("genrm_grpo", "policy_grpo"):
            if name == "policy_grpo":
                run(out, "merge_genrm", [PY, "-m", "omni_rl.cli", "merge", f"local_dir={out / 'ckpt' / 'genrm'}",
                                         f"target_dir={out / 'models' / 'genrm'}"])  # fmt: skip
            start = time.monotonic()
            with GpuMemory() as mem:
                if name == "policy_grpo":
                    server = serve_genrm(out, out / "models" / "genrm", port)
                    cmd, env = policy_launch(out, d, f"http://127.0.0.1:{port}/v1")
                else:
                    cmd, env = genrm_launch(out, d)
                log = run(out, name, cmd, env)
            report["stages"].append(summarise(name, log, mem.peak, time.monotonic() - start))
        ok = all(s["steps"] == STEPS for s in report["stages"]) and len(report["stages"]) == 2
        report["status"] = "ok" if ok else f"trained fewer than {STEPS} steps"
    except Exception as exc:  # recorded in the report; the exit code says failed
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
    report["total_s"] = round(time.monotonic() - t0, 1)
    write_report(out, report)
    return report


def plan(out: Path) -> int:
    """Without a GPU: build the inputs and compose both exact launches with verl's config (no bad keys)."""
    from omni_rl.rl.recipe import capture_launch, check_launch

    d = prepare(out)
    problems: list[str] = []
    for cmd, env in (genrm_launch(out, d), policy_launch(out, d, "http://127.0.0.1:8011/v1")):
        launch = capture_launch(REPO / cmd[1], cmd[2:], env=env)
        cfg, found = check_launch(launch, ["actor_rollout_ref.rollout.name=vllm"])
        problems += found
        rollout = cfg.actor_rollout_ref.rollout
        print(f"[gpu-smoke] plan: {cmd[1]} {env} -> rollout={rollout.name}, "
              f"steps={cfg.trainer.total_training_steps}, gpus={cfg.trainer.n_gpus_per_node}")  # fmt: skip
        if rollout.name != "vllm" or cfg.trainer.total_training_steps != STEPS:
            problems.append(f"{cmd[1]}: expected the vLLM rollout and {STEPS} steps")
    for p in problems:
        print(f"[gpu-smoke] plan problem: {p}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """CLI: the smoke on a GPU, or `--plan` anywhere."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "outputs" / "gpu_smoke")
    ap.add_argument("--plan", action="store_true", help="no GPU needed: build inputs, compose both launches")
    ap.add_argument("--port", type=int, default=8011, help="loopback port of the GenRM server")
    args = ap.parse_args(argv)
    args.out = args.out.resolve()
    if args.plan:
        return plan(args.out)
    import torch

    if not torch.cuda.is_available():
        print("[gpu-smoke] needs a CUDA GPU (torch sees none); `--plan` checks the launches without one")
        return 2
    report = smoke(args.out, args.port)
    print((args.out / "report.md").read_text())
    return 0 if report["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
