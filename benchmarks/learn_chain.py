"""`make learn`: does the whole chain learn on CPU? SFT -> GenRM GRPO -> eval -> policy GRPO -> best-of-N.

    python benchmarks/learn_chain.py                 # full chain (sized for < 45 min on 2 free cores)
    python benchmarks/learn_chain.py --preset quick  # data, SFT and 2 GenRM GRPO steps (the slow test runs this)

Every stage is the project's own command on the synthetic task of `omni_rl.learn.synthetic` (gold rule
known, so every learning claim is checked against it):
 1. `recipes/sft_genrm.sh` (PROFILE=cpu_sft, verl's SFT trainer under torchrun) on rationale+verdict traces;
 2. `omni-rl merge`, then `recipes/train_genrm.sh` (PROFILE=cpu_tiny,cpu_learn: verl's main_ppo GRPO,
    reward_fns/genrm.py) from the SFT model; valid-verdict rate and reward branches per step;
 3. `omni-rl serve` (vLLM CPU) + `omni-rl eval order=both` on held-out pairs: random init vs SFT vs SFT+GRPO;
 4. `recipes/align_policy.sh` (PROFILE=cpu_policy, RM=external on the trained GenRM server): once with
    reward_fns/omni.py vs the reference, once with GroupWinRateRewardManager; GenRM reward AND the gold
    rule's satisfaction rate per step (a rising reward with a flat gold rate is reported as hacking);
 5. `omni-rl bon` with the trained GenRM over the trained policy's samples: gold accuracy vs N.
Writes <out>/report.md, report.json and PNG curves; a failed stage is recorded and the report still written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from omni_rl.learn import curves  # noqa: E402
from omni_rl.learn.probe import verdict_accuracy, verdict_loss  # noqa: E402
from omni_rl.learn.synthetic import TEMPLATE, TaskSpec, satisfies, write_task  # noqa: E402
from omni_rl.utils.procs import ServerProcess, free_port  # noqa: E402

PY = sys.executable


@dataclass
class Preset:
    """Sizes of one chain run."""

    # with a right teacher verl's SFT learns the format by ~60 steps; the content came at ~275-325 in one
    # session's runs (the committed full run: 275 steps, held-out accuracy 0.55, 0.74 without ties, no tie
    # verdicts) but not by 400-500 steps in five later runs (benchmarks/results/test_suite/sft_content_runs.md):
    # a sudden jump that does not come reliably. A 0.8 teacher stayed content-blind for 500.
    sft_steps: int = 275
    grpo_steps: int = 40
    policy_steps: int = 16
    n_train: int = 1024
    n_heldout: int = 100
    n_policy: int = 32
    teacher_accuracy: float = 1.0
    bon_prompts: int = 16
    bon_n: int = 8
    stage_timeout_s: int = 2400  # GenRM GRPO's 40 steps of 512 samples take ~18 min on 2 cores
    last_stage: str = "bon"  # sft | genrm_grpo (quick: eval/policy/BoN have their own tests) | bon
    grpo_overrides: tuple[str, ...] = ()  # extra Hydra overrides for the GenRM GRPO run (after the profile's)
    # the judge fails to parse more of the policy's off-distribution samples than of held-out pairs (~27 % of
    # the calls in a group win-rate window vs 0.5 %): past the default 25 % the reward stops the job, so the
    # chain raises it, counted per step in the report ("parse failed"), rather than stopping or hiding it
    policy_max_parse_failure_rate: float = 0.5


PRESETS = {
    "full": Preset(),
    # enough SFT for the format (valid verdicts ~0.85 after 32 steps), then two GRPO steps: valid verdicts,
    # label matches, rewards that vary. Same train split as `full` (`--sft-steps N --until sft` runs SFT alone
    # on the full preset's data)
    "quick": Preset(sft_steps=30, grpo_steps=2, policy_steps=1, n_heldout=12, n_policy=8,
                    bon_prompts=2, bon_n=2, stage_timeout_s=900, last_stage="genrm_grpo",
                    grpo_overrides=("data.train_batch_size=8", "actor_rollout_ref.actor.ppo_mini_batch_size=8")),
}  # fmt: skip


class StageError(RuntimeError):
    """A stage's command failed; the message carries the tail of its log."""


class Chain:
    """Runs the stages in order, keeping report.json current after each one."""

    def __init__(self, out: Path, preset: Preset, name: str, reuse: bool = False) -> None:
        self.out, self.p = out, preset
        self.out.mkdir(parents=True, exist_ok=True)
        self.report: dict[str, Any] = {"preset": name, "sizes": asdict(preset), "stages": {}, "results": {}}
        prev = self.out / "report.json"
        self.previous: dict[str, Any] = json.loads(prev.read_text()) if reuse and prev.exists() else {}
        self.servers: list[ServerProcess] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_")}
        self.env.update(PYTHON=PY, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
        self.env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        # a shared machine runs near its memory limit: Ray's monitor would kill a worker at 95 % node memory
        self.env.setdefault("RAY_memory_usage_threshold", "0.995")
        self.env["PATH"] = f"{Path(PY).parent}:{self.env.get('PATH', '')}"

    # -- plumbing ------------------------------------------------------------------------------------
    def save(self) -> None:
        (self.out / "report.json").write_text(json.dumps(self.report, indent=2, default=str))

    def run(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> str:
        """Run one command (cwd = repo), log to <out>/logs/<name>.log, raise StageError on failure."""
        logs = self.out / "logs"
        logs.mkdir(exist_ok=True)
        print(f"[learn] {name}: {' '.join(cmd)[:300]}", flush=True)
        with open(logs / f"{name}.log", "w") as fh:
            try:
                res = subprocess.run(cmd, cwd=REPO, env={**self.env, **(env or {})}, stdout=fh,
                                     stderr=subprocess.STDOUT, timeout=self.p.stage_timeout_s)  # fmt: skip
                rc = res.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        log = (logs / f"{name}.log").read_text(errors="replace")
        if rc != 0:
            raise StageError(f"{name} exited with {rc}; log {logs / (name + '.log')}:\n{log[-3000:]}")
        return log

    def reuse(self, name: str, value: Any) -> Any:
        """--reuse: a stage that finished in an earlier run of this out dir is kept (report entry and files)."""
        done = self.previous.get("stages", {}).get(name, {}).get("status") == "ok"
        if not done:
            return None
        self.report["stages"][name] = {**self.previous["stages"][name], "reused": True}
        key = {"genrm_grpo": "genrm_grpo", "sft": "sft", "data": "task"}.get(name)
        if key and key in self.previous.get("results", {}):
            self.report["results"][key] = self.previous["results"][key]
        print(f"[learn] {name}: reused from the previous run in {self.out}", flush=True)
        return value

    def stage(self, name: str, fn: Any, *args: Any) -> Any:
        """Time a stage, record ok/failed in the report, and never let one failure lose the report."""
        t0 = time.monotonic()
        try:
            value = fn(*args)
            self.report["stages"][name] = {"status": "ok", "seconds": round(time.monotonic() - t0, 1)}
            return value
        except Exception as exc:  # recorded in the report and re-raised at the end by main()
            self.report["stages"][name] = {"status": "failed", "seconds": round(time.monotonic() - t0, 1),
                                           "error": f"{type(exc).__name__}: {exc}"[-2500:]}  # fmt: skip
            print(f"[learn] {name} FAILED: {exc}", file=sys.stderr, flush=True)
            return None
        finally:
            self.save()

    def serve(self, model: Path, name: str) -> str:
        """`omni-rl serve` a model on a free loopback port; returns its /v1 URL once healthy."""
        port = free_port()
        cmd = [PY, "-m", "omni_rl.cli", "serve", f"model={model}", f"served_model_name={name}",
               f"port={port}", "max_model_len=1024", "dtype=float32"]  # fmt: skip
        server = ServerProcess(cmd, f"http://127.0.0.1:{port}/health", self.out / "logs" / f"serve_{name}.log",
                               env=self.env, cwd=REPO, startup_timeout=600, name=f"server {name}")  # fmt: skip
        self.servers.append(server)
        server.start().wait_ready()
        return f"http://127.0.0.1:{port}/v1"

    def stop_servers(self) -> None:
        """Stop every server's whole process group (vLLM forks an engine): SIGTERM, then SIGKILL."""
        for server in self.servers:
            server.stop(grace=20)
        self.servers.clear()

    # -- stages --------------------------------------------------------------------------------------
    def data(self) -> dict[str, Path]:
        """Tiny model, synthetic task, GRPO judge parquet (`data prepare`), policy parquet (`policy-prompts`)."""
        from transformers import AutoTokenizer

        from omni_rl.learn.tiny_models import ensure_tiny_models

        base = ensure_tiny_models(REPO / ".cache" / "tiny-models", ("text",))["text"]
        task = self.out / "task"
        spec = TaskSpec(n_train=self.p.n_train, n_heldout=self.p.n_heldout, n_policy=self.p.n_policy,
                        teacher_accuracy=self.p.teacher_accuracy)  # fmt: skip
        self.report["results"]["task"] = write_task(task, AutoTokenizer.from_pretrained(base), spec)
        cli = [PY, "-m", "omni_rl.cli", "data"]
        self.run("prepare_genrm", [*cli, "prepare", "loader=omni_rewardbench", f"path={task / 'pairs_train.jsonl'}",
                                   f"out_dir={self.out / 'genrm_data'}", f"template={TEMPLATE}",
                                   "data_source=synthetic_words", "progress=false"])  # fmt: skip
        self.run("prepare_policy", [*cli, "policy-prompts", "loader=omni_rewardbench",
                                    f"path={task / 'pairs_policy.jsonl'}", f"out_dir={self.out / 'policy_data'}",
                                    "data_source=synthetic_words"])  # fmt: skip
        return {"base": base, "task": task}

    def sft(self, d: dict[str, Path]) -> Path:
        """Cold-start SFT with verl's SFT trainer on CPU, then `omni-rl merge`."""
        ckpt = self.out / "ckpt" / "sft"
        log = self.run("sft", ["bash", "recipes/sft_genrm.sh", f"data.train_files={d['task'] / 'sft' / 'train.parquet'}",
                               f"model.path={d['base']}", f"trainer.default_local_dir={ckpt}",
                               f"trainer.total_training_steps={self.p.sft_steps}"],
                       env={"PROFILE": "cpu_sft", "NPROC": "1"})  # fmt: skip
        loss = curves.curve(curves.step_metrics(log), "train/loss")
        self.report["results"]["sft"] = {"loss": loss, "loss_trend": curves.trend(loss)}
        merged = self.merge("sft", ckpt)
        # the merged folder (what eval serves) scored on the verdict token: content-blind or not, before serving
        self.report["results"]["sft"]["probe"] = verdict_loss(merged, d["task"] / "sft" / "train.parquet")
        self.report["results"]["sft"]["probe_heldout"] = verdict_accuracy(
            merged, d["task"] / "pairs_heldout.jsonl"
        )
        return merged

    def merge(self, name: str, ckpt: Path) -> Path:
        target = self.out / "models" / name
        self.run(
            f"merge_{name}", [PY, "-m", "omni_rl.cli", "merge", f"local_dir={ckpt}", f"target_dir={target}"]
        )
        return target

    def grpo(self, sft_model: Path) -> Path:
        """GenRM GRPO with verl's main_ppo on CPU from the SFT model."""
        ckpt, dumps = self.out / "ckpt" / "genrm_grpo", self.out / "rollouts" / "genrm_grpo"
        n = self.p.grpo_steps
        log = self.run("genrm_grpo", ["bash", "recipes/train_genrm.sh",
                                      f"data.train_files={self.out / 'genrm_data' / 'train.parquet'}",
                                      f"actor_rollout_ref.model.path={sft_model}",
                                      f"trainer.default_local_dir={ckpt}", f"trainer.rollout_data_dir={dumps}",
                                      f"trainer.total_training_steps={n}", f"trainer.save_freq={n}",
                                      *self.p.grpo_overrides],
                       env={"PROFILE": "cpu_tiny,cpu_learn"})  # fmt: skip
        per_step = {s: curves.genrm_step(rows) for s, rows in curves.read_rollouts(dumps).items()}
        verl = curves.step_metrics(log)
        for s, m in per_step.items():
            m["verl_score_mean"] = verl.get(s, {}).get("critic/score/mean", float("nan"))
            m["verl_format_mean"] = verl.get(s, {}).get("reward_extra/format/mean", float("nan"))
        self.report["results"]["genrm_grpo"] = {
            "per_step": per_step,
            "valid_verdict_trend": curves.trend(curves.curve(per_step, "valid_verdict_rate")),
            "label_match_trend": curves.trend(curves.curve(per_step, "label_match_rate")),
            "branches_fired": {k: sum(m[k] > 0 for m in per_step.values())
                               for k in ("label_match_rate", "tie_match_rate", "format0_rate", "wrong_side_rate")},
        }  # fmt: skip
        merged = self.merge("genrm_grpo", ckpt)
        heldout = self.out / "task" / "pairs_heldout.jsonl"
        self.report["results"]["genrm_grpo"]["probe_heldout"] = verdict_accuracy(merged, heldout)
        return merged

    def evaluate(self, name: str, model: Path) -> tuple[str, dict[str, Any]]:
        """Serve a GenRM and run `omni-rl eval order=both` on the held-out pairs; returns (url, metrics)."""
        url = self.serve(model, "genrm")
        out = self.out / "eval" / name
        self.run(f"eval_{name}", [PY, "-m", "omni_rl.cli", "eval", "data.loader=omni_rewardbench",
                                  f"data.path={self.out / 'task' / 'pairs_heldout.jsonl'}", "judge.type=genrm",
                                  f"judge.base_url={url}", "judge.model=genrm", f"judge.template={TEMPLATE}",
                                  "judge.max_tokens=24", "order=both", f"out_dir={out}", "progress=false"])  # fmt: skip
        rep = json.loads((out / "report.json").read_text())["metrics"]
        res = {
            "acc_no_ties": rep["by_task"]["overall"]["acc_no_ties"],
            "acc_with_ties": rep["by_task"]["overall"]["acc_with_ties"],
            "parse_failure_rate": rep["failures"]["rate"],
            "swap_consistency": (rep.get("swap_consistency") or {}).get("rate"),
            "judgments": rep["judgments"],
        }
        self.report["results"].setdefault("eval", {})[name] = res
        return url, res

    def policy(self, name: str, judge_url: str, base: Path, extra: list[str], relative: bool = False) -> Path:
        """Policy GRPO rewarded by the GenRM server; GenRM reward and gold-rule rate per step."""
        ckpt, dumps = self.out / "ckpt" / name, self.out / "rollouts" / name
        n = self.p.policy_steps
        log = self.run(name, ["bash", "recipes/align_policy.sh",
                              f"data.train_files={self.out / 'policy_data' / 'train.parquet'}",
                              f"actor_rollout_ref.model.path={base}", f"trainer.experiment_name={name}",
                              f"trainer.default_local_dir={ckpt}", f"trainer.rollout_data_dir={dumps}",
                              f"trainer.total_training_steps={n}", f"trainer.save_freq={n}",
                              f"reward.custom_reward_function.reward_kwargs.template={TEMPLATE}",
                              "+reward.custom_reward_function.reward_kwargs.max_parse_failure_rate="
                              f"{self.p.policy_max_parse_failure_rate}", *extra],
                       env={"PROFILE": "cpu_policy", "RM": "external", "JUDGE_URL": judge_url,
                            "JUDGE_MODEL": "genrm"})  # fmt: skip
        per_step = {s: curves.policy_step(rows, satisfies) for s, rows in curves.read_rollouts(dumps).items()}
        verl = curves.step_metrics(log)
        for s, m in per_step.items():
            for key in ("judge_failed", "parse_failed", "judge_calls", "soft_verdict", "swap_disagree"):
                m[key] = verl.get(s, {}).get(f"reward_extra/{key}/mean", float("nan"))
        reward = curves.trend(curves.curve(per_step, "mean_reward"))
        gold = curves.trend(curves.curve(per_step, "gold_rate"))
        self.report["results"].setdefault("policy", {})[name] = {
            "per_step": per_step, "reward_trend": reward, "gold_trend": gold,
            "verdict": hacking_verdict(reward, gold, relative=relative),
        }  # fmt: skip
        return self.merge(name, ckpt)

    def bon(self, policy_model: Path, judge_url: str) -> dict[str, Any]:
        """`omni-rl bon` (knockout, both orders) over the policy's samples; gold accuracy of the pick vs N."""
        policy_url = self.serve(policy_model, "policy")
        rows = [json.loads(x) for x in (self.out / "task" / "pairs_policy.jsonl").read_text().splitlines()]
        inp = self.out / "bon" / "prompts.jsonl"
        inp.parent.mkdir(parents=True, exist_ok=True)
        inp.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"], "criteria": r["criteria"]}) + "\n"
                               for r in rows[: self.p.bon_prompts]))  # fmt: skip
        out = self.out / "bon" / "bon.jsonl"
        sweep = [n for n in (1, 2, 4, 8, 16) if n <= self.p.bon_n]
        self.run("bon", [PY, "-m", "omni_rl.cli", "bon", f"input={inp}", f"output={out}",
                         f"policy.base_url={policy_url}", "policy.model=policy", f"policy.n={self.p.bon_n}",
                         "policy.max_tokens=12", f"judge.base_url={judge_url}", "judge.model=genrm",
                         f"judge.template={TEMPLATE}", "judge.max_tokens=24", "strategies=[knockout]",
                         f"sweep=[{','.join(map(str, sweep))}]", "progress=false"])  # fmt: skip
        res = bon_accuracy([json.loads(x) for x in out.read_text().splitlines() if x.strip()], sweep)
        self.report["results"]["bon"] = res
        return res


def hacking_verdict(
    reward: dict[str, Any], gold: dict[str, Any], eps: float = 0.02, relative: bool = False
) -> str:
    """Name what the two trends show: learning, reward hacking, flat, or too few steps to tell.

    A group-relative reward (win rate inside the group) averages 0.5 whatever the policy writes, so its
    trend says nothing: then only the gold rate can show learning, and hacking cannot be read from it.
    """
    if reward["delta"] is None or gold["delta"] is None:
        return "too few steps to tell"
    if relative:
        rose = "gold rate rose" if gold["delta"] > eps else "flat: gold rate did not rise"
        return f"{rose} (a group win rate averages 0.5 by construction: its trend cannot show learning)"
    if reward["delta"] > eps and gold["delta"] > eps:
        return "learning: GenRM reward and gold rate both rose"
    if reward["delta"] > eps:
        return "REWARD HACKING: GenRM reward rose, gold rate did not"
    if gold["delta"] > eps:
        return "gold rate rose without the GenRM reward rising"
    return "flat: neither rose"


def bon_accuracy(records: list[dict[str, Any]], sweep: list[int]) -> dict[str, Any]:
    """Gold accuracy per N of the knockout pick, the first sample, a random pick (expected) and the oracle."""
    acc: dict[str, dict[int, list[float]]] = {
        k: {n: [] for n in sweep} for k in ("pick", "first", "random", "oracle")
    }
    for rec in records:
        gold = [satisfies(c["text"]) for c in rec["candidates"]]
        for n in sweep:
            pick = (rec.get("picks", {}).get("knockout") or {}).get(
                str(n), rec.get("picks", {}).get("knockout", {}).get(n)
            )
            if pick is None:
                continue
            acc["pick"][n].append(float(gold[int(pick)]))
            acc["first"][n].append(float(gold[0]))
            acc["random"][n].append(sum(gold[:n]) / n)
            acc["oracle"][n].append(float(any(gold[:n])))
    return {k: {n: (sum(v) / len(v) if v else None) for n, v in by_n.items()} for k, by_n in acc.items()} | {
        "prompts": len(records)}  # fmt: skip


def run_chain(out: Path, preset_name: str, reuse: bool = False) -> dict[str, Any]:
    """All stages in order; a stage whose input is missing is recorded as skipped."""
    chain = Chain(out, PRESETS[preset_name], preset_name, reuse)
    t0 = time.monotonic()
    base = REPO / ".cache" / "tiny-models" / "tiny-qwen2"
    try:
        d = chain.reuse("data", {"base": base, "task": out / "task"}) or chain.stage("data", chain.data)
        sft = chain.reuse("sft", out / "models" / "sft") if d else None
        sft = sft or (chain.stage("sft", chain.sft, d) if d else None)
        if chain.p.last_stage == "sft":
            return chain.report
        grpo = chain.reuse("genrm_grpo", out / "models" / "genrm_grpo") if sft else None
        grpo = grpo or (chain.stage("genrm_grpo", chain.grpo, sft) if sft else None)
        if chain.p.last_stage == "genrm_grpo":
            return chain.report
        judge_url = None
        for name, model in (("random_init", d and d["base"]), ("sft", sft), ("sft_grpo", grpo)):
            if model:
                r = chain.stage(f"eval_{name}", chain.evaluate, name, model)
                if name == "sft_grpo" and r:
                    judge_url = r[0]  # keep the trained GenRM up for the policy stages
                else:
                    chain.stop_servers()
        policy = None
        if judge_url:
            policy = chain.stage(
                "policy_vs_reference", chain.policy, "policy_vs_reference", judge_url, d["base"], []
            )
            chain.stage(
                "policy_group_winrate",
                chain.policy,
                "policy_group_winrate",
                judge_url,
                d["base"],
                [
                    "reward.reward_manager.name=GroupWinRateRewardManager",
                    "+reward.custom_reward_function.reward_kwargs.group.scheme=round_robin",
                ],
                True,  # relative: a group win rate averages 0.5, so only the gold rate can show learning
            )
            chain.stage("bon", chain.bon, policy or d["base"], judge_url)
    finally:
        chain.stop_servers()
        chain.report["total_seconds"] = round(time.monotonic() - t0, 1)
        chain.save()
        from omni_rl.learn.report import write_markdown

        write_markdown(chain.report, out)
    return chain.report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--out", default=str(REPO / "outputs" / "learn"))
    ap.add_argument(
        "--reuse", action="store_true", help="keep stages that finished in an earlier run of --out"
    )
    ap.add_argument("--sft-steps", type=int, help="override the preset's SFT steps")
    ap.add_argument("--grpo-steps", type=int, help="override the preset's GenRM GRPO steps")
    ap.add_argument("--policy-steps", type=int, help="override the preset's policy GRPO steps")
    ap.add_argument("--teacher-accuracy", type=float, help="override the SFT teacher's accuracy")
    ap.add_argument("--grpo-override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Hydra override for the GenRM GRPO run (repeatable)")  # fmt: skip
    ap.add_argument(
        "--until",
        choices=["sft", "genrm_grpo", "bon"],
        help="last stage group (sft: data + SFT only; genrm_grpo: no eval/policy)",
    )
    args = ap.parse_args(argv)
    if args.until:
        PRESETS[args.preset] = replace(PRESETS[args.preset], last_stage=args.until)
    for key in ("sft_steps", "grpo_steps", "policy_steps", "teacher_accuracy"):
        if getattr(args, key) is not None:
            PRESETS[args.preset] = replace(PRESETS[args.preset], **{key: getattr(args, key)})
    if args.grpo_override:
        PRESETS[args.preset] = replace(PRESETS[args.preset], grpo_overrides=tuple(args.grpo_override))
    report = run_chain(Path(args.out).resolve(), args.preset, args.reuse)
    failed = [k for k, v in report["stages"].items() if v["status"] != "ok"]
    print(f"[learn] report: {Path(args.out) / 'report.md'}; failed stages: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
