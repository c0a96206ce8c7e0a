"""A barrier that gathers a prompt group (same uid) across verl's reward workers.

verl's reward loop scores one sample per `run_single` call, spread over `reward.num_workers` Ray
actors (and, when rewards stream during rollout, sent to a random worker as each trajectory ends), so
no single call ever sees its whole group. Every member therefore joins a named Ray actor keyed by
uid; the member that completes the group (the *leader*) runs the tournament and publishes one result
per slot, which the others await. Without Ray (scripts, unit tests) the same logic runs in-process.

What the barrier holds, and for how long:
- a member sends only its content key and response text (the leader judges with its own prompt and
  media: every member of a uid shares them), so media never reach the barrier;
- an open group lives until every slot has collected its result, then shrinks to a *closed record*
  (keys, responses, results) kept `closed_ttl_s` for verl's padding copies and late members;
- the total is bounded by bytes (`max_bytes`) and count (`max_groups`): closed records go first,
  then the oldest open group, whose waiters get a clear error (never a KeyError).

Padding: `RewardLoopManager.compute_rm_score` pads the batch with copies of its first rows, and
`_validate` pads the generation batch the same way. A copy arriving after its group closed gets the
score of the identical response ("copy"); a real member arriving after a copy took its slot is judged
against the closed group ("late") and counted.

Stalls: a member waits at most `stall_s` seconds without a *new* member joining its group; then it
raises naming the uid and the counts, instead of holding a reward-worker slot for the full timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

ACTOR_NAME = "omni_rl_group_barrier"
_FIX = (
    "check reward_kwargs.group.size against actor_rollout_ref.rollout.n; for validation, "
    "val_kwargs.n or the rows' extra_info.split"
)


@dataclass
class _Group:
    expected: int
    keys: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] | None = None
    error: str | None = None
    delivered: set[int] = field(default_factory=set)
    last_join: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    nbytes: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def members(self) -> list[dict[str, str]]:
        return [{"content_key": k, "response": r} for k, r in zip(self.keys, self.responses, strict=True)]


class GroupBarrier:
    """Collect members per uid; the completing member leads, the others wait for its results."""

    def __init__(
        self, max_groups: int = 16384, max_bytes: int = 256 * 2**20, closed_ttl_s: float = 600.0
    ) -> None:
        self.groups: OrderedDict[str, _Group] = OrderedDict()
        self.max_groups, self.max_bytes, self.closed_ttl_s = max_groups, max_bytes, closed_ttl_s
        self.nbytes = 0
        self.evicted = 0

    # -- memory ------------------------------------------------------------------------------------
    def _resize(self, g: _Group, nbytes: int) -> None:
        self.nbytes += nbytes - g.nbytes
        g.nbytes = nbytes

    def _drop(self, uid: str, reason: str | None) -> None:
        g = self.groups.pop(uid)
        self.nbytes -= g.nbytes
        if reason is not None and g.closed_at is None:  # an open group: its waiters must hear why
            self.evicted += 1
            g.error = reason
            g.done.set()

    def _enforce_bounds(self) -> None:
        """Expire closed records past their TTL, then evict (closed first, oldest first) to the bounds."""
        now = time.monotonic()
        for uid in [
            u for u, g in self.groups.items() if g.closed_at and now - g.closed_at > self.closed_ttl_s
        ]:
            self._drop(uid, None)

        def over() -> bool:
            return len(self.groups) > self.max_groups or self.nbytes > self.max_bytes

        for uid in [u for u, g in self.groups.items() if g.closed_at is not None]:
            if not over():
                return
            self._drop(uid, None)
        while over() and len(self.groups) > 1:
            uid = next(iter(self.groups))
            self._drop(
                uid,
                f"evicted from the group barrier (over max_groups={self.max_groups} or "
                f"max_bytes={self.max_bytes}); raise reward_kwargs.group.max_bytes/max_groups",
            )

    # -- protocol ----------------------------------------------------------------------------------
    async def join(self, uid: str, member: dict[str, Any], expected: int) -> dict[str, Any]:
        """Register a member ({content_key, response}); returns its role: leader, member, copy, or late."""
        g = self.groups.get(uid)
        if g is None:
            g = self.groups[uid] = _Group(expected=expected)
        key, response = str(member["content_key"]), str(member.get("response", ""))
        if len(g.keys) >= g.expected:
            if key in g.keys:
                return {"role": "copy", "slot": g.keys.index(key)}
            return {"role": "late", "members": g.members()}
        g.keys.append(key)
        g.responses.append(response)
        g.last_join = time.monotonic()
        self._resize(g, g.nbytes + len(response.encode()) + len(key) + 64)
        self._enforce_bounds()
        slot = len(g.keys) - 1
        if len(g.keys) == g.expected:
            return {"role": "leader", "slot": slot, "members": g.members()}
        return {"role": "member", "slot": slot}

    async def publish(
        self,
        uid: str,
        results: list[dict[str, Any]] | None,
        error: str | None = None,
        slot: int | None = None,
    ) -> bool:
        """Leader hands over one result per slot (or the error every member raises); False if evicted."""
        g = self.groups.get(uid)
        if g is None or g.done.is_set():
            return False
        g.results, g.error = results, error
        g.done.set()
        self._resize(g, g.nbytes + sum(len(repr(r)) for r in results or []))
        self._deliver(uid, g, slot)
        return True

    def _deliver(self, uid: str, g: _Group, slot: int | None) -> None:
        """Mark a slot served; once every slot is, the group shrinks to a closed record with a TTL."""
        if slot is not None:
            g.delivered.add(slot)
        if len(g.delivered) >= g.expected and g.closed_at is None:
            g.closed_at = time.monotonic()
            self.groups.move_to_end(uid)
            self._enforce_bounds()

    async def wait(
        self, uid: str, slot: int, timeout: float, total_timeout: float | None = None, copy: bool = False
    ) -> dict[str, Any]:
        """A slot's result once the leader published; raises on the leader's error, a stall or eviction.

        `timeout` is the stall limit: the longest wait without a new member joining the group.
        """
        g = self.groups.get(uid)
        if g is None:
            raise RuntimeError(
                f"group {uid}: not held by the group barrier (evicted, or its closed record expired after "
                f"{self.closed_ttl_s:.0f} s); raise reward_kwargs.group.max_bytes / closed_ttl_s"
            )
        deadline = time.monotonic() + (total_timeout if total_timeout is not None else float("inf"))
        while not g.done.is_set():
            now = time.monotonic()
            full = len(g.keys) >= g.expected
            if now >= deadline or (not full and now - g.last_join >= timeout):
                quiet = now - g.last_join
                raise TimeoutError(
                    f"group {uid}: only {len(g.keys)} of {g.expected} responses arrived; no new member for "
                    f"{quiet:.1f} s (stall limit {timeout:.1f} s){'' if not full else ' (leader still judging)'}; "
                    + _FIX
                )
            limit = deadline - now if full else min(deadline - now, g.last_join + timeout - now)
            try:
                await asyncio.wait_for(g.done.wait(), max(limit, 0.001))
            except TimeoutError:
                continue
        if g.error is not None or g.results is None:
            raise RuntimeError(f"group {uid}: the leader failed to judge the group: {g.error}")
        result = g.results[slot]
        if not copy:
            self._deliver(uid, g, slot)
        return result

    async def size(self) -> int:
        """Number of groups held, open or closed (for tests and debugging)."""
        return len(self.groups)

    async def stats(self) -> dict[str, int]:
        """Open/closed groups, bytes held and evictions (for tests and debugging)."""
        closed = sum(g.closed_at is not None for g in self.groups.values())
        return {
            "open": len(self.groups) - closed,
            "closed": closed,
            "bytes": self.nbytes,
            "evicted": self.evicted,
        }


class BarrierHandle:
    """Calls the named Ray actor when Ray is up, else this handle's own in-process barrier (same interface).

    Like the Ray actor (destroyed with its last handle), the in-process barrier lives as long as its
    handle: one per reward manager, so no state leaks between managers of one process.
    """

    def __init__(self, **barrier_kwargs: Any) -> None:
        self._actor: Any = None
        self._local: GroupBarrier | None = None
        self._kwargs = barrier_kwargs

    def _target(self) -> Any:
        import ray

        if not ray.is_initialized():
            self._local = self._local or GroupBarrier(**self._kwargs)
            return self._local
        if self._actor is None:
            self._actor = (
                ray.remote(GroupBarrier)
                .options(name=ACTOR_NAME, get_if_exists=True, num_cpus=0, max_concurrency=100000)
                .remote(**self._kwargs)
            )
        return self._actor

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Invoke `method` on the barrier (awaiting the Ray ObjectRef when remote)."""
        target = self._target()
        if isinstance(target, GroupBarrier):
            return await getattr(target, method)(*args, **kwargs)
        return await getattr(target, method).remote(*args, **kwargs)
