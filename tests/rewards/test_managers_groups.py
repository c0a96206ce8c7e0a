"""Group schedules, the uid barrier and the start-up checks, in-process (Ray paths: test_managers*.py)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import pytest

from omni_rl.judge.tournament import pairs_per_scheme, run_tournament
from omni_rl.rewards.groups import GroupBarrier


def _bt(q: list[float]):
    async def compare(i: int, j: int) -> float:
        return 1.0 / (1.0 + 2.718281828 ** (q[j] - q[i]))

    return compare


@pytest.mark.parametrize("n", [2, 4, 8])
async def test_schemes_pairs_and_rankings(n: int) -> None:
    q = [0.3 * k for k in range(n)]
    for scheme in ("round_robin", "anchor", "swiss"):
        res = await run_tournament(n, scheme, _bt(q), rounds=2)
        bound = pairs_per_scheme(scheme, n, rounds=2)
        assert len(res.pairs) == bound if scheme != "swiss" else 0 < len(res.pairs) <= bound, scheme
        assert len({frozenset(p) for p in res.pairs}) == len(res.pairs)  # no pair judged twice
        if scheme != "swiss":  # noiseless judge: the ranking is exact
            assert sorted(range(n), key=res.win_rates.__getitem__) == list(range(n))
    rr = await run_tournament(n, "round_robin", _bt(q))
    assert sum(rr.win_rates) == pytest.approx(n / 2)  # every pair hands out exactly one win
    anchor = await run_tournament(n, "anchor", _bt(q))
    assert anchor.win_rates[0] == 0.5


async def test_unusable_pairs_count_half_and_are_reported() -> None:
    async def compare(i: int, j: int) -> float | None:
        return None if (i, j) == (0, 1) else 1.0

    res = await run_tournament(3, "round_robin", compare)
    assert res.unusable == 1 and res.win_rates == [pytest.approx(0.75), pytest.approx(0.75), 0.0]
    with pytest.raises(ValueError, match="unknown group scheme"):
        await run_tournament(3, "knockout", compare)


async def test_barrier_roles_copies_late_members_and_timeouts() -> None:
    b = GroupBarrier()
    m = [{"content_key": k, "response": k} for k in ("a", "b", "c")]
    assert (await b.join("u", m[0], 2))["role"] == "member"
    leader = await b.join("u", m[1], 2)
    assert leader["role"] == "leader" and [x["response"] for x in leader["members"]] == ["a", "b"]
    waiter = asyncio.create_task(b.wait("u", 0, timeout=5))
    copy = await b.join("u", dict(m[0]), 2)  # a padding copy of "a", after the group closed
    assert copy == {"role": "copy", "slot": 0}
    assert (await b.join("u", m[2], 2))["role"] == "late"
    await b.publish("u", [{"score": 0.25}, {"score": 0.75}])
    assert (await waiter)["score"] == 0.25 and (await b.wait("u", copy["slot"], 1))["score"] == 0.25
    await b.join("v", m[0], 3)
    with pytest.raises(TimeoutError, match="only 1 of 3 responses"):
        await b.wait("v", 0, timeout=0.05)
    await b.join("w", m[0], 1)
    await b.publish("w", None, "JudgeError: boom")
    with pytest.raises(RuntimeError, match="boom"):
        await b.wait("w", 0, 1)


async def test_barrier_evicts_old_groups() -> None:
    b = GroupBarrier(max_groups=3)
    for uid in itertools.islice(itertools.count(), 5):
        await b.join(str(uid), {"content_key": "x"}, 2)
    assert await b.size() == 3


async def test_adaptive_scheme_fits_soft_margins_and_the_position_bias() -> None:
    q = [0.0, 1.2, -0.7, 0.4, 2.0, -1.5, 0.9, -0.2]
    made: list[tuple[int, int]] = []

    async def ordered(a: int, b: int) -> float:  # a noiseless soft judge that favours the first slot
        made.append((a, b))
        return 1.0 / (1.0 + math.exp(-(q[a] - q[b] + 0.6)))

    async def both(i: int, j: int) -> float:
        raise AssertionError("adaptive judges single orders only")

    res = await run_tournament(len(q), "adaptive", both, ordered=ordered)
    assert len(made) == len(res.pairs) == pairs_per_scheme("adaptive", len(q)) == 2 * len(q)
    assert sorted(range(len(q)), key=res.win_rates.__getitem__) == sorted(range(len(q)), key=q.__getitem__)
    assert res.position_bias == pytest.approx(0.6, abs=1e-6)  # the bias is fitted, not mistaken for quality
    rr = [
        sum(1 / (1 + math.exp(q[j] - q[i])) for j in range(len(q)) if j != i) / (len(q) - 1)
        for i in range(len(q))
    ]
    assert res.win_rates == pytest.approx(rr, abs=1e-6)  # = the round-robin win rates a debiased judge gives
    with pytest.raises(ValueError, match="ordered"):
        await run_tournament(3, "adaptive", both)


async def test_adaptive_drops_unusable_calls_and_counts_them() -> None:
    async def ordered(a: int, b: int) -> float | None:
        return None if {a, b} == {0, 1} else (0.9 if a < b else 0.1)

    res = await run_tournament(4, "adaptive", ordered, ordered=ordered)
    assert res.unusable >= 1 and all(0.0 <= w <= 1.0 for w in res.win_rates)
    assert res.win_rates[0] > res.win_rates[3]


async def test_barrier_members_carry_no_media_and_groups_are_deleted_once_served() -> None:
    b = GroupBarrier(closed_ttl_s=0.2)
    big = {"omni_media": {"images": ["x" * 1_000_000]}}
    await b.join("u", {"content_key": "a", "response": "a", "extra_info": big}, 2)
    leader = await b.join("u", {"content_key": "b", "response": "b", "extra_info": big}, 2)
    assert leader["members"] == [{"content_key": "a", "response": "a"}, {"content_key": "b", "response": "b"}]
    assert (await b.stats())["bytes"] < 10_000  # media never reach the barrier
    waiter = asyncio.create_task(b.wait("u", 0, timeout=5))
    await asyncio.sleep(0)
    await b.publish("u", [{"score": 0.3}, {"score": 0.7}], None, leader["slot"])
    assert (await waiter)["score"] == 0.3
    assert await b.stats() == {"open": 0, "closed": 1, "bytes": (await b.stats())["bytes"], "evicted": 0}
    copy = await b.join("u", {"content_key": "a", "response": "a"}, 2)  # verl's padding copy, after the close
    assert (await b.wait("u", copy["slot"], 1, copy=True))["score"] == 0.3
    await asyncio.sleep(0.25)
    await b.join("other", {"content_key": "z", "response": "z"}, 2)  # any call expires old closed records
    assert await b.size() == 1 and "u" not in b.groups


async def test_barrier_bounds_bytes_and_an_evicted_uid_gets_a_clear_error() -> None:
    b = GroupBarrier(max_bytes=3000)
    await b.join("old", {"content_key": "k", "response": "x" * 1000}, 2)
    waiter = asyncio.create_task(b.wait("old", 0, timeout=30))
    await asyncio.sleep(0)
    for uid in ("n1", "n2"):
        await b.join(uid, {"content_key": "k", "response": "y" * 1000}, 2)
    with pytest.raises(RuntimeError, match=r"group old:.*evicted from the group barrier.*max_bytes=3000"):
        await waiter
    assert (await b.stats())["evicted"] == 1 and (await b.stats())["bytes"] <= 3000
    with pytest.raises(RuntimeError, match="group old: not held by the group barrier"):  # no KeyError
        await b.wait("old", 0, timeout=1)
    assert (
        await b.publish("old", [{"score": 1.0}]) is False
    )  # a leader of an evicted group is told, not crashed


async def test_stall_detection_names_the_uid_and_counts_and_new_members_reset_it() -> None:
    b = GroupBarrier()
    await b.join("g", {"content_key": "a", "response": "a"}, 3)
    t0 = time.monotonic()
    waiter = asyncio.create_task(b.wait("g", 0, timeout=0.4, total_timeout=60))
    await asyncio.sleep(0.3)
    await b.join("g", {"content_key": "b", "response": "b"}, 3)  # progress: the stall clock restarts
    with pytest.raises(TimeoutError, match=r"group g: only 2 of 3 responses arrived; no new member for"):
        await waiter
    assert time.monotonic() - t0 >= 0.65  # it waited past the first member's 0.4 s because a second came
