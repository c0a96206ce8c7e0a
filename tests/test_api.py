"""omni_rl.api: score / compare / rank against the real vLLM server (GenRM) and a python scalar RM."""

from __future__ import annotations

import asyncio
import math
import pickle

import pytest

from omni_rl.api import RewardModel, RMConfig, RMFailureError, connect, infer_task
from omni_rl.api import compare as api_compare
from omni_rl.data.schema import Media, Response
from omni_rl.judge.client import JudgeError
from omni_rl.rm.strategies import compare as compare_pair

VERDICTS = [f"<think>ok</think><answer>{v}</answer>" for v in ("A", "B", "tie")]
SCORES = [f"<think>ok</think><answer>{s}</answer>" for s in (2, 5, 9)]
PROMPT = "How can I store food if I don't have a pantry?"
ANSWERS = ["In the fridge or freezer.", "Nowhere, throw it away.", "Sealed boxes in a cool cupboard."]


@pytest.fixture
def genrm(vllm_server):
    """A GenRM over the real tiny server, its verdicts constrained to the parseable choices (hard verdicts)."""
    cfg = RMConfig(
        base_url=vllm_server.base_url,
        model=vllm_server.served_model_name,
        soft=False,  # these tests check verdict mechanics (A=1, tie=.5, B=0); soft verdicts: test below
        max_tokens=40,
        extra_body={"structured_outputs": {"choice": VERDICTS}},
        pointwise_extra_body={"structured_outputs": {"choice": SCORES}},
    )
    rm = RewardModel(cfg)
    yield rm
    rm.close()


@pytest.mark.server
def test_sync_score_compare_rank_on_a_real_genrm(genrm):
    assert genrm.score(PROMPT, ANSWERS[0]) in (2.0, 5.0, 9.0)
    p = genrm.compare(PROMPT, ANSWERS[0], ANSWERS[1])
    assert p in (0.0, 0.25, 0.5, 0.75, 1.0)
    ranking = genrm.rank(PROMPT, ANSWERS)
    assert sorted(ranking.order) == [0, 1, 2]
    values = [ranking.values[i] for i in ranking.order]
    assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(3.0)  # 3 games
    by_score = genrm.rank(PROMPT, ANSWERS, method="pointwise")
    assert [by_score.values[i] for i in by_score.order] == sorted(by_score.values, reverse=True)
    assert genrm.stats.parse_failures == 0
    assert genrm.client.stats.calls == 1 + 2 + 6 + 3  # score, debiased compare, 3 pairs x 2, 3 scores


@pytest.mark.server
async def test_swap_debias_judges_both_orders_and_averages_them(genrm):
    before = genrm.client.stats.calls
    assert await genrm.acompare(PROMPT, ANSWERS[0], ANSWERS[2], debias=False) in (0.0, 0.5, 1.0)
    assert genrm.client.stats.calls - before == 1
    assert await genrm.acompare(PROMPT, ANSWERS[0], ANSWERS[2], debias=True) in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert genrm.client.stats.calls - before == 3  # debiased = both orders = 2 calls
    cj = genrm.candidates(PROMPT, [ANSWERS[0], ANSWERS[2]])
    cmp = await compare_pair(cj, 0, 1, debias=True)
    judgments, _ = await cj.history()
    assert sorted((j.first, j.second) for j in judgments) == [(0, 1), (1, 0)]
    by_order = {(j.first, j.second): j.p_first for j in judgments}
    assert cmp.p_a == pytest.approx((by_order[0, 1] + 1 - by_order[1, 0]) / 2)
    await genrm.aclose()


@pytest.mark.server
async def test_batched_async_calls_run_concurrently(genrm):
    items = [{"prompt": PROMPT, "a": a, "b": b} for a, b in [(0, 1), (1, 2), (0, 2)]]
    items = [{**it, "a": ANSWERS[it["a"]], "b": ANSWERS[it["b"]]} for it in items]
    out = await genrm.acompare_many(items)
    assert len(out) == 3 and all(p in (0.0, 0.25, 0.5, 0.75, 1.0) for p in out)
    scores = await genrm.ascore_many([{"prompt": PROMPT, "response": a} for a in ANSWERS])
    assert all(s in (2.0, 5.0, 9.0) for s in scores)
    await genrm.aclose()


@pytest.mark.server
def test_unparsable_judge_output_is_none_counted_then_fails_loudly(vllm_server):
    """The tiny model, unconstrained, writes garbage: never a guessed side, and a loud stop."""
    cfg = RMConfig(
        base_url=vllm_server.base_url, model=vllm_server.served_model_name, max_tokens=8,
        min_judgments=3, max_parse_failure_rate=0.5,
    )  # fmt: skip
    with RewardModel(cfg) as rm:
        assert rm.compare(PROMPT, ANSWERS[0], ANSWERS[1], debias=False) is None
        assert rm.score(PROMPT, ANSWERS[0]) is None
        assert rm.stats.parse_failures == 2 and rm.stats.judgments == 2
        with pytest.raises(RMFailureError, match="unparsable"):
            rm.compare(PROMPT, ANSWERS[0], ANSWERS[1], debias=False)


@pytest.mark.server
def test_image_prompt_is_sent_as_image_parts(vllm_server, real_media):
    """The text-only tiny server refuses image parts: proof the image really went on the wire."""
    cfg = RMConfig(base_url=vllm_server.base_url, model=vllm_server.served_model_name, max_retries=0)
    with RewardModel(cfg) as rm, pytest.raises(JudgeError, match="not a multimodal model"):
        rm.compare("What is shown?", "A cat.", "A dog.", media=[str(real_media / "1.jpg")])


def _length_rm(prompt: str, response: Response, media: Media, criteria: str | None) -> float:
    """A deterministic scalar RM for the scalar path: longer is better, in units of 10 characters."""
    return len(response.text) / 10.0


def test_scalar_rm_compare_is_bradley_terry_and_rank_orders_by_value():
    rm = connect(scalar_fn=_length_rm)
    a, b = "x" * 30, "y" * 10
    assert rm.compare("p", a, b) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert api_compare("p", b, a) == pytest.approx(1 / (1 + math.exp(2.0)))  # module-level default RM
    assert rm.score("p", a) == pytest.approx(3.0)
    ranking = rm.rank("p", ["aa", "a" * 50, "a" * 20], method="pointwise")
    assert ranking.order == [1, 2, 0]
    assert rm.rank("p", ["aa", "a" * 50, "a" * 20]).order == [1, 2, 0]
    sel = rm.best("p", ["aa", "a" * 50, "a" * 20, "a" * 5], strategy="knockout")
    assert sel.pick == 1 and len(sel.comparisons) == 3


async def test_sync_facade_works_inside_a_running_loop():
    rm = RewardModel(RMConfig(kind="scalar"), scalar_fn=_length_rm)
    assert rm.score("p", "abc") == pytest.approx(0.3)  # a notebook cell: sync call under a live loop
    assert await rm.ascore("p", "abcd") == pytest.approx(0.4)
    await asyncio.sleep(0)
    rm.close()


def test_scalar_fn_from_config_string_and_pickling():
    rm = RewardModel(RMConfig(kind="scalar", scalar_fn=f"{__name__}:_length_rm"))
    clone = pickle.loads(pickle.dumps(rm))
    assert clone.score("p", "a" * 10) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="module:function"):
        RewardModel(RMConfig(kind="scalar", scalar_fn="no_colon"))
    with pytest.raises(ValueError, match="needs scalar_fn"):
        RewardModel(RMConfig(kind="scalar"))


def test_task_is_inferred_from_where_the_media_are():
    img = Media(images=["/x.jpg"])
    assert infer_task(Media(), [Response("a")]) == "t2t"
    assert infer_task(img, [Response("a")]) == "ti2t"
    assert infer_task(Media(videos=["/v.mp4"]), [Response("a")]) == "tv2t"
    assert infer_task(Media(), [Response(media=img)]) == "t2i"
    assert infer_task(img, [Response(media=img)]) == "ti2i"


@pytest.fixture(scope="module")
def bt_model_dir(tiny_vl_model, tmp_path_factory):
    """A real (untrained-head) Bradley-Terry model on the tiny Qwen2.5-VL, saved like train-bt does."""
    from transformers import AutoProcessor

    from omni_rl.bt.model import BTRewardModel

    out = tmp_path_factory.mktemp("bt")
    BTRewardModel.from_backbone(str(tiny_vl_model)).save_pretrained(out)
    AutoProcessor.from_pretrained(tiny_vl_model).save_pretrained(out)
    return out


def test_bradley_terry_model_as_the_rm_on_an_image_prompt(bt_model_dir, real_media):
    prompt, media = "What is shown in the picture?", [str(real_media / "1.jpg")]
    answers = ["A cat on a sofa.", "Nothing at all, it is blank.", "Two dogs playing in the snow today."]
    with RewardModel(RMConfig(kind="bt", bt_path=str(bt_model_dir))) as rm:
        s = [rm.score(prompt, a, media=media) for a in answers]
        assert all(math.isfinite(x) for x in s) and len(set(s)) == 3
        p = rm.compare(prompt, answers[0], answers[1], media=media)
        assert p == pytest.approx(1 / (1 + math.exp(-(s[0] - s[1]))), rel=1e-3)
        assert rm.rank(prompt, answers, media=media, method="pointwise").order == sorted(
            range(3), key=lambda i: -s[i]
        )
        assert rm.best(prompt, answers, media=media, strategy="knockout").pick == max(
            range(3), key=lambda i: s[i]
        )
    with pytest.raises(FileNotFoundError, match="train-bt"):
        RewardModel(RMConfig(kind="bt", bt_path="/nonexistent"))


PAIR_REGEX = r"<think>[a-z ]{1,12}</think><answer>(A|B)</answer>"


@pytest.mark.server
async def test_same_genrm_gives_the_same_soft_p_in_the_api_and_the_policy_reward(vllm_server):
    """Issue 13: one pipeline, so best-of-N/API and the policy reward agree on P(better) to the digit."""
    from reward_fns.omni import compute_score

    extra = {"structured_outputs": {"regex": PAIR_REGEX}}
    cfg = RMConfig(base_url=vllm_server.base_url, model=vllm_server.served_model_name, max_tokens=48,
                   extra_body=extra)  # fmt: skip
    rm = RewardModel(cfg)
    p_api = await rm.acompare(PROMPT, ANSWERS[0], ANSWERS[2])
    await rm.aclose()
    kw = {"base_url": vllm_server.base_url, "model": vllm_server.served_model_name, "max_tokens": 48,
          "extra_body": extra}  # fmt: skip
    reward = await compute_score("qa", ANSWERS[0], ANSWERS[2], {"prompt": PROMPT}, **kw)
    assert reward["soft_verdict"] == 1.0 and 0.0 < reward["choice_mass"] <= 1.0 + 1e-9
    assert p_api not in (0.0, 0.25, 0.5, 0.75, 1.0)  # a soft probability, not a vote
    assert p_api == pytest.approx(reward["score"], abs=1e-9)


@pytest.mark.server
def test_candidates_holding_placeholder_text_are_judged_not_crashed(genrm):
    """Issue 13 defect 2 (best-of-N/API path): literal <image>/<video>/<audio> in a candidate is text."""
    cands = ["Write <image> where the figure goes.", "Use an <audio> tag and a <video> tag.", ANSWERS[0]]
    sel = genrm.best(PROMPT, cands, strategy="round_robin")
    assert sel.failures == 0 and sel.pick in (0, 1, 2)
    assert genrm.compare(PROMPT, cands[0], cands[1]) in (0.0, 0.25, 0.5, 0.75, 1.0)
