"""`omni-rl synth` against the real vLLM CPU server (tiny model as strong, weak and teacher).

The tiny random model is the point, not a shortcut: the test is about the pipeline. Its teacher
writes valid rationales only under vLLM's structured outputs (a regex), and without them it writes
text no parser accepts — which is exactly the unparsable case. The "always A" teacher and the HTTP 500s
are fault injection through a real loopback server (`RecordingProxy`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from omni_rl.curate import synth
from omni_rl.testing.proxy import RecordedRequest, RecordingProxy

REPO = Path(__file__).resolve().parents[2]
REGEX = r"<think>[a-z ]{1,16}</think><answer>(A|B)</answer>"
WORDS = r"[a-z]{2,7}( [a-z]{2,7}){1,3}"  # candidates write a few words (a random model otherwise emits bytes)
QUESTIONS = [
    f"Question {i}: name {i} things that are {c}."
    for i, c in enumerate(["red", "blue", "green", "soft", "loud", "cold"])
]


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth_in") / "prompts.jsonl"
    rows = [
        {"id": f"q{i}", "prompt": q, "criteria": "Correctness; brevity."} for i, q in enumerate(QUESTIONS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def overrides(
    prompts: Path, out: Path, cand_url: str, teacher_url: str, model: str, **extra: object
) -> list[str]:
    """A CPU-sized run: strong and weak sample with different temperatures and seeds, words only."""
    words = f'{{structured_outputs: {{regex: "{WORDS}"}}}}'
    base = {
        "input": prompts, "out_dir": out, "progress": "false", "concurrency": 1,
        "candidates.strong.base_url": cand_url, "candidates.strong.model": model,
        "candidates.strong.temperature": 0.5, "candidates.strong.max_tokens": 24,
        "candidates.strong.extra_body": words,
        "candidates.weak.base_url": cand_url, "candidates.weak.model": model,
        "candidates.weak.temperature": 1.0, "candidates.weak.seed": 1, "candidates.weak.max_tokens": 24,
        "candidates.weak.extra_body": words,
        "teacher.base_url": teacher_url, "teacher.model": model, "teacher.temperature": 1.0,
        "teacher.max_tokens": 40, "teacher.max_retries": 0,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def regex_teacher() -> str:
    return f'teacher.extra_body={{structured_outputs: {{regex: "{REGEX}"}}}}'


def outputs(out: Path) -> dict[str, object]:
    """Everything a run writes, minus what describes the process itself (this_run, paths)."""
    stats = json.loads((out / "stats.json").read_text())
    for k in ("this_run", "files", "config"):
        stats.pop(k)
    return {
        "pairs": (out / "pairs.jsonl").read_text(),
        "rejects": (out / "rejects.jsonl").read_text(),
        "sft": pq.read_table(out / "sft.parquet").to_pylist(),
        "stats": stats,
    }


def store_keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def regex_run(vllm_server, prompts_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run with a teacher that writes valid rationales (structured outputs)."""
    url, model = vllm_server.base_url, vllm_server.served_model_name
    whole = tmp_path_factory.mktemp("synth") / "whole"
    assert synth.main([*overrides(prompts_file, whole, url, url, model), regex_teacher()]) == 0
    return whole


@pytest.mark.server
@pytest.mark.slow
def test_kill_mid_run_then_resume_equals_uninterrupted(
    vllm_server, prompts_file: Path, regex_run: Path, tmp_path: Path
) -> None:
    url, model = vllm_server.base_url, vllm_server.served_model_name
    ref = outputs(regex_run)
    steps = ref["stats"]["steps"]  # type: ignore[index]
    assert steps["pair"]["formed"] >= 4 and steps["judge"]["verdicts"] == 2 * steps["pair"]["formed"]
    assert ref["stats"]["outputs"]["pairs"] > 0, "the regex teacher should agree with itself on some pair"  # type: ignore[index]

    killed = tmp_path / "killed"
    args = [*overrides(prompts_file, killed, url, url, model), regex_teacher()]
    proc = subprocess.Popen([sys.executable, "-m", "omni_rl.cli", "synth", *args], cwd=REPO)
    judgements = killed / "judgements.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if judgements.exists() and len(judgements.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert not (killed / "stats.json").exists()
    n_before = len(store_keys(judgements))
    assert 3 <= n_before < 2 * steps["pair"]["formed"]

    assert synth.main(args) == 0
    assert outputs(killed) == ref
    this_run = json.loads((killed / "stats.json").read_text())["this_run"]
    assert this_run["reused"]["judge"] >= n_before
    assert this_run["stores"]["judge"]["duplicates"] == 0
    for name in ("generations.jsonl", "judgements.jsonl"):
        keys = store_keys(killed / name)
        assert len(keys) == len(set(keys)), f"{name} has duplicate calls after the resume"
    # a third run makes no call at all and still writes the same outputs
    assert synth.main(args) == 0
    assert outputs(killed) == ref
    again = json.loads((killed / "stats.json").read_text())["this_run"]["clients"]
    assert all(c["calls"] == 0 for c in again.values())


@pytest.mark.server
@pytest.mark.slow
def test_teacher_failures_and_unparsable_are_counted_never_labels(
    vllm_server, prompts_file: Path, tmp_path: Path
) -> None:
    url, model = vllm_server.base_url, vllm_server.served_model_name
    out = tmp_path / "fail"
    with RecordingProxy(upstream=url.removesuffix("/v1")) as teacher:
        teacher.fail_status = [500, 500, 500]  # three teacher calls fail on the wire (no retries)
        args = overrides(prompts_file, out, url, teacher.base_url, model, **{
            "teacher.max_tokens": 8, "teacher.max_parse_rate": "null", "teacher.max_truncated_rate": "null",
            "teacher.max_transport_rate": "null", "max_failure_fraction": 1.0,
        })  # fmt: skip
        assert synth.main(args) == 0
        stats = json.loads((out / "stats.json").read_text())
        steps = stats["steps"]
        formed = steps["pair"]["formed"]
        assert steps["judge"]["calls"] == 2 * formed and steps["judge"]["verdicts"] == 0
        failed = steps["judge"]["failed"]
        assert failed["transport"] == 3
        assert (
            failed.get("truncated", 0) + failed.get("parse", 0) == 2 * formed - 3
        )  # the random model's text
        assert steps["rules"]["keep"] == steps["rules"]["flip"] == 0
        assert sum(steps["rules"]["drop_reasons"].values()) == formed
        assert steps["rules"]["drop_reasons"]["teacher_failure"] >= 2  # 3 failed calls hit >= 2 pairs
        assert (out / "pairs.jsonl").read_text() == "" and stats["outputs"]["sft_traces"] == 0
        rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
        reasons = {r["reason"] for r in rejects if r["step"] == "rules"}
        assert reasons <= {"teacher_failure", "unparsable", "truncated"} and "teacher_failure" in reasons
        assert stats["endpoints"]["teacher"]["failed"] == 3

        # a rerun retries only the three failed calls (the proxy no longer fails)
        before = len(teacher.chat_requests())
        assert synth.main(args) == 0
        assert len(teacher.chat_requests()) - before == 3
        steps = json.loads((out / "stats.json").read_text())["steps"]
        assert "transport" not in steps["judge"]["failed"]

        # with the default budget the run stops loudly instead of producing nothing
        small = overrides(prompts_file, tmp_path / "budget", url, teacher.base_url, model,
                          **{"teacher.max_tokens": 8, "teacher.budget_window": 4})  # fmt: skip
        assert synth.main(small) == 1


@pytest.mark.server
def test_always_A_teacher_is_caught_by_both_orders(vllm_server, prompts_file: Path, tmp_path: Path) -> None:
    url, model = vllm_server.base_url, vllm_server.served_model_name
    out = tmp_path / "always_a"
    with RecordingProxy(fixed_reply="<think>first one is better</think><answer>A</answer>") as teacher:
        assert synth.main(overrides(prompts_file, out, url, teacher.base_url, model)) == 0
        sent = teacher.chat_requests()
    stats = json.loads((out / "stats.json").read_text())
    formed = stats["steps"]["pair"]["formed"]
    assert formed >= 4 and len(sent) == 2 * formed
    assert stats["steps"]["rules"]["drop_reasons"] == {"position_bias": formed}
    assert (
        stats["agreement"]["position_bias_rate"] == 1.0 and stats["agreement"]["first_position_rate"] == 1.0
    )
    assert stats["outputs"]["pairs"] == 0 and (out / "pairs.jsonl").read_text() == ""
    assert "position bias rate: 1.0" in (out / "stats.md").read_text()
    costs = stats["endpoints"]  # calls and tokens per endpoint, from the stored usage of each call
    assert costs["strong"]["calls"] == costs["weak"]["calls"] == len(QUESTIONS) and costs["teacher"][
        "calls"
    ] == len(sent)
    assert all(
        costs[n]["prompt_tokens"] > 0 and costs[n]["completion_tokens"] > 0 for n in ("strong", "weak")
    )
    # both orders really were sent: each pair's A block in one request is its B block in the other
    users = [r.body["messages"][-1]["content"] for r in sent]  # type: ignore[index]
    blocks = [(u.split("[Response A]")[1].split("[End of Response A]")[0],
               u.split("[Response B]")[1].split("[End of Response B]")[0]) for u in users]  # fmt: skip
    assert sum(1 for a, b in blocks if (b, a) in blocks) == len(blocks)


def test_media_reach_every_call_and_keys_stay_secret(tmp_path: Path, real_media: Path, monkeypatch) -> None:
    """Image, video and audio prompts: each candidate and teacher request carries the bytes; no key leaks."""
    import base64
    import math
    import struct
    import wave

    media = tmp_path / "media"
    media.mkdir()
    for name in ("1.jpg", "1.mp4"):
        (media / name).write_bytes((real_media / name).read_bytes())
    with wave.open(str(media / "tone.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 5))) for i in range(4000)))
    rows = [{"id": "img", "prompt": "What is shown?", "images": ["media/1.jpg"]},
            {"id": "vid", "prompt": "Describe <video> briefly.", "videos": ["media/1.mp4"]},
            {"id": "aud", "prompt": "What do you hear?", "audios": ["media/tone.wav"]}]  # fmt: skip
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    secret = "sk-synth-test-9f8e7d"
    monkeypatch.setenv("OMNI_RL_SYNTH_API_KEY", secret)
    out = tmp_path / "out"
    with RecordingProxy(fixed_reply="a grey picture") as strong, RecordingProxy(fixed_reply="noise") as weak, \
            RecordingProxy(fixed_reply="<think>ok</think><answer>B</answer>") as teacher:  # fmt: skip
        args = overrides(
            prompts,
            out,
            strong.base_url,
            teacher.base_url,
            "m",
            **{"candidates.weak.base_url": weak.base_url},
        )
        assert synth.main(args) == 0
        calls = strong.chat_requests() + weak.chat_requests() + teacher.chat_requests()
    assert len(calls) == 3 * 2 + 3 * 2
    want = {
        "img": ("image_url", base64.b64encode((media / "1.jpg").read_bytes()).decode()[:200]),
        "vid": ("video_url", base64.b64encode((media / "1.mp4").read_bytes()).decode()[:200]),
        "aud": ("input_audio", base64.b64encode((media / "tone.wav").read_bytes()).decode()[:200]),
    }
    for req in calls:
        parts = [
            p for m in req.body["messages"] for p in (m["content"] if isinstance(m["content"], list) else [])
        ]  # type: ignore[index]
        kinds = {p["type"] for p in parts} - {"text"}
        assert len(kinds) == 1, f"each request carries exactly its prompt's media kind, got {kinds}"
        kind = kinds.pop()
        payload = json.dumps(parts)
        assert any(k == kind and head in payload for k, head in want.values())
    stats = json.loads((out / "stats.json").read_text())
    assert stats["steps"]["rules"]["drop_reasons"] == {"position_bias": 3}
    for f in out.iterdir():
        assert secret not in f.read_text(errors="ignore"), f"{f.name} holds the API key"


@pytest.mark.server
@pytest.mark.slow
def test_data_prepare_and_sft_recipe_on_synth_output(
    regex_run: Path, tiny_text_model: Path, tmp_path: Path
) -> None:
    """pairs.jsonl -> `omni-rl data prepare`; sft.parquet -> verl's SFT dataset and recipes/sft_genrm.sh on CPU."""
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from omni_rl.cli import main as cli
    from omni_rl.judge.parse import parse_verdict

    stats = json.loads((regex_run / "stats.json").read_text())
    pairs = [json.loads(line) for line in (regex_run / "pairs.jsonl").read_text().splitlines()]
    assert pairs and len(pairs) == stats["outputs"]["pairs"]
    prep = tmp_path / "prep"
    argv = ["data", "prepare", "loader=preference_pairs", f"path={regex_run / 'pairs.jsonl'}",
            f"media_root={stats['media_root']}", f"out_dir={prep}", "template=synth_rationale", "progress=false"]  # fmt: skip
    assert cli(argv) == 0
    rows = pq.read_table(prep / "train.parquet").to_pylist()
    assert sorted(r["extra_info"]["id"] for r in rows) == sorted(p["id"] for p in pairs)
    assert {r["reward_model"]["ground_truth"] for r in rows} <= {"A", "B"}

    sft = pq.read_table(regex_run / "sft.parquet").to_pylist()
    assert len(sft) == stats["outputs"]["sft_traces"] > 0
    assert sorted(sft[0]) == [
        "id",
        "messages",
        "verdict",
    ]  # text-only: no media columns (verl would want a processor)
    tok = AutoTokenizer.from_pretrained(tiny_text_model)
    data = MultiTurnSFTDataset(str(regex_run / "sft.parquet"), tok, OmegaConf.create({"max_length": 4096}))
    assert len(data) == len(sft)
    item = data[0]
    trained = tok.decode(item["input_ids"][item["loss_mask"].bool()]).replace("<|im_end|>", "").strip()
    assert (
        parse_verdict(trained, "strict").verdict == sft[0]["verdict"]
    )  # loss on the rationale + verdict only

    n = min(len(sft), 4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_")}
    env.update(
        PROFILE="cpu_sft",
        NPROC="1",
        PYTHON=sys.executable,
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
    )
    cmd = ["bash", "recipes/sft_genrm.sh", f"data.train_files={regex_run / 'sft.parquet'}", f"model.path={tiny_text_model}",
           f"trainer.default_local_dir={tmp_path / 'ckpt'}", "trainer.total_training_steps=2",
           f"data.train_batch_size={n}", f"data.micro_batch_size_per_gpu={n}", "data.max_length=4096"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert "train/loss" in log, log[-2000:]


@dataclass
class ConstrainingProxy(RecordingProxy):
    """Forwards to vLLM adding a structured-outputs regex (what `*.extra_body` does) and, when set, a
    temperature to every chat request: the README's command line stays verbatim while the tiny model
    writes parsable text. (Greedy, the tiny random model answers "A" in every order: all position bias.)"""

    regex: str = ""
    temperature: float | None = None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        if body is not None and request.path.endswith("/chat/completions"):
            body["structured_outputs"] = {"regex": self.regex}
            if self.temperature is not None:
                body["temperature"] = self.temperature
            self.requests.append(RecordedRequest(request.method, request.path, body, 200))
        url = f"{self.upstream}{request.path_qs}"
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, url, json=body) as resp,
        ):
            payload = await resp.read()
            return web.Response(body=payload, status=resp.status, content_type="application/json")


@pytest.mark.server
@pytest.mark.slow
def test_readme_synth_example_runs_verbatim(vllm_server, tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- synth-example -->")[1].split("<!-- /synth-example -->")[0]
    script = block.split("```bash\n")[1].split("```")[0]
    rows = [{"id": f"r{i}", "prompt": q} for i, q in enumerate(QUESTIONS)]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    upstream = vllm_server.base_url.removesuffix("/v1")
    with (
        ConstrainingProxy(upstream=upstream, regex=WORDS) as cands,
        ConstrainingProxy(upstream=upstream, regex=REGEX, temperature=1.0) as teacher,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_RL_")}
        env.update(STRONG_URL=cands.base_url, WEAK_URL=cands.base_url, TEACHER_URL=teacher.base_url,
                   PATH=f"{Path(sys.executable).parent}:{env['PATH']}")  # fmt: skip
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=1200)  # fmt: skip
        assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
        assert len(teacher.chat_requests()) > 0 and len(cands.chat_requests()) == 2 * len(rows)
    stats = json.loads((tmp_path / "synth" / "stats.json").read_text())
    assert stats["steps"]["input"]["prompts"] == len(rows)
    assert stats["endpoints"]["teacher"]["calls"] == 2 * stats["steps"]["pair"]["formed"]
    assert (
        pq.read_table(tmp_path / "data" / "synth" / "train.parquet").num_rows == stats["outputs"]["pairs"] > 0
    )


@pytest.mark.server
def test_changed_rules_reuse_every_call(
    vllm_server, prompts_file: Path, regex_run: Path, tmp_path: Path
) -> None:
    """Rules are applied to stored judgements: changing them and rerunning makes no model call."""
    import shutil

    url, model = vllm_server.base_url, vllm_server.served_model_name
    before = json.loads((regex_run / "stats.json").read_text())["steps"]["rules"]
    copy = tmp_path / "copy"
    shutil.copytree(regex_run, copy)
    args = [*overrides(prompts_file, copy, url, url, model), regex_teacher(), "rules.on_disagree=drop"]
    assert synth.main(args) == 0
    stats = json.loads((copy / "stats.json").read_text())
    assert all(c["calls"] == 0 for c in stats["this_run"]["clients"].values())
    after = stats["steps"]["rules"]
    assert after["flip"] == 0 and after["keep"] == before["keep"]
    assert after["drop_reasons"].get("teacher_prefers_rejected", 0) == before["flip"]
    assert stats["outputs"]["pairs"] == before["keep"]


def test_prompts_from_a_dataset_loader(real_fixtures: Path, tmp_path: Path) -> None:
    """format=<loader>: the prompts (not the responses) of a public preference file are answered."""
    src = [json.loads(line) for line in (real_fixtures / "hh_rlhf_pairs.jsonl").read_text().splitlines()[:3]]
    out = tmp_path / "out"
    with RecordingProxy(fixed_reply="one") as a, RecordingProxy(fixed_reply="two") as b, \
            RecordingProxy(fixed_reply="<think>t</think><answer>B</answer>") as teacher:  # fmt: skip
        args = overrides(real_fixtures / "hh_rlhf_pairs.jsonl", out, a.base_url, teacher.base_url, "m",
                         **{"candidates.weak.base_url": b.base_url, "format": "hh_rlhf", "limit": 3})  # fmt: skip
        assert synth.main(args) == 0
        sent = [r.body["messages"][-1]["content"] for r in a.chat_requests()]  # type: ignore[index]
    assert sent == [row["text_prompt"] for row in src]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["steps"]["input"]["prompts"] == 3 and stats["steps"]["judge"]["calls"] == 6
