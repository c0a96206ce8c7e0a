"""Rule-based reward terms: verifiable answers (math, multiple choice), format and length.

A rule returns a status as well as a score, so the hybrid reward knows when it is *decisive*
(the answer could be checked) and the judge can be skipped. math-verify runs with its signal-based
timeouts disabled (they raise inside verl's worker threads and silently turn into 0), so the time is
bounded from outside: rules run in `RulePool` worker processes, and a rule past its timeout has its
process killed. (A thread cannot be killed: a stuck sympy call in the event loop's executor would keep
a thread busy for good — the same executor decodes the tokens of every later sample.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["correct", "incorrect", "unparsable", "timeout", "none"]
logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call when timeouts are off

_MCQ_PATTERNS = [
    re.compile(r"<answer>\s*\(?([A-J])\)?\s*</answer>", re.IGNORECASE),
    re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*\(?([A-J])\)?\s*\}?\s*\}"),
    re.compile(
        r"(?i:final answer|answer|correct option|correct answer)\s*(?:is|:)?\s*[:\-]?\s*\(?\*{0,2}([A-J])\b\)?"
    ),
    re.compile(r"^\s*\(?([A-J])[\).:]?\s*$", re.MULTILINE),
]


@dataclass(frozen=True)
class RuleOutcome:
    """A rule's verdict on one response: score in [0, 1] and why."""

    score: float
    status: Status

    @property
    def checked(self) -> bool:
        """True when the rule could verify the answer (correct or incorrect)."""
        return self.status in ("correct", "incorrect")


def math_answer(solution: str, ground_truth: str) -> RuleOutcome:
    """math-verify equivalence of the response's final answer with the ground truth."""
    from math_verify import parse, verify

    gold = parse(ground_truth, parsing_timeout=None) or parse(f"${ground_truth}$", parsing_timeout=None)
    if not gold:
        raise ValueError(
            f"math rule: cannot parse the ground truth {ground_truth[:80]!r}; fix the row's reward_model.ground_truth"
        )
    pred = parse(solution, parsing_timeout=None)
    if not pred:
        return RuleOutcome(0.0, "unparsable")
    ok = verify(gold, pred, timeout_seconds=None)
    return RuleOutcome(1.0 if ok else 0.0, "correct" if ok else "incorrect")


def mcq_choice(solution: str) -> str | None:
    """The option letter a response commits to, by decreasing authority; None if it never commits."""
    for pattern in _MCQ_PATTERNS:
        found = {m.upper() for m in pattern.findall(solution or "")}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None  # contradictory answers at the same authority: not a commitment
    return None


def mcq_answer(solution: str, ground_truth: str) -> RuleOutcome:
    """Exact match of the chosen option letter with the ground-truth letter."""
    gold = (ground_truth or "").strip().strip("()").upper()
    if not re.fullmatch(r"[A-J]", gold):
        raise ValueError(f"mcq rule: ground truth must be one option letter A–J, got {ground_truth!r}")
    choice = mcq_choice(solution)
    if choice is None:
        return RuleOutcome(0.0, "unparsable")
    return RuleOutcome(1.0 if choice == gold else 0.0, "correct" if choice == gold else "incorrect")


def format_ok(solution: str, pattern: str) -> float:
    """1.0 when the response matches the required format regex (searched, DOTALL), else 0.0."""
    return 1.0 if re.search(pattern, solution or "", re.DOTALL) else 0.0


def length_penalty(solution: str, max_chars: int, buffer_chars: int) -> float:
    """DAPO-style soft overlong penalty in [-1, 0]: 0 up to max_chars, linear to -1 over the buffer."""
    n = len(solution or "")
    if n <= max_chars:
        return 0.0
    return -min(1.0, (n - max_chars) / max(1, buffer_chars))


RULES = {"math": math_answer, "mcq": mcq_answer}


# -- killable rule workers ------------------------------------------------------------------------------
def _serve(conn: Any) -> None:
    """Worker process loop: warm up (math-verify's import is slow), then run (fn, args) until the pipe closes."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):  # the math rule raises its own ImportError where it is used
        import math_verify  # noqa: F401
    conn.send("ready")
    while True:
        try:
            fn, args = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", fn(*args)))
        except Exception as exc:  # the parent re-raises it (a bad ground truth names its row there)
            conn.send(("err", exc))


async def _readable(conn: Any, timeout: float) -> bool:
    """Wait until the pipe has data (or EOF) without a thread; False on timeout."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


@dataclass
class _Worker:
    proc: Any
    conn: Any


@dataclass
class RulePool:
    """Worker processes for rules; a call past its timeout kills its worker (counted, replaced lazily)."""

    size: int = 2
    start_timeout_s: float = 120.0
    stats: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("calls", "timeouts", "killed", "started"), 0)
    )

    def __post_init__(self) -> None:
        self._idle: list[_Worker] = []
        self._busy: set[int] = set()
        self._sems: dict[int, asyncio.Semaphore] = {}  # one per event loop (tests run several)
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded Ray worker

    async def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_serve, args=(child,), daemon=True, name="omni_rl-rule")
        proc.start()
        child.close()
        w = _Worker(proc, parent)
        self.stats["started"] += 1
        if not await _readable(parent, self.start_timeout_s) or parent.recv() != "ready":
            self._kill(w)
            raise RuntimeError(f"rule worker {proc.pid} did not start within {self.start_timeout_s:.0f} s")
        return w

    def _kill(self, w: _Worker) -> None:
        w.proc.kill()
        w.proc.join(5)
        w.conn.close()
        self.stats["killed"] += 1

    def alive(self) -> int:
        """Worker processes still running (idle or busy)."""
        return sum(w.proc.is_alive() for w in self._idle) + len(self._busy)

    async def run(
        self, fn: Callable[..., RuleOutcome], args: tuple[Any, ...], timeout: float
    ) -> RuleOutcome | None:
        """fn(*args) in a worker process; None when it ran past `timeout` (its worker is killed)."""
        sem = self._sems.setdefault(id(asyncio.get_running_loop()), asyncio.Semaphore(self.size))
        async with sem:
            w = self._idle.pop() if self._idle else await self._start()
            if not w.proc.is_alive():
                w = await self._start()
            self.stats["calls"] += 1
            self._busy.add(w.proc.pid)
            ok = False
            try:
                w.conn.send((fn, args))
                ok = await _readable(w.conn, timeout)
            finally:
                self._busy.discard(w.proc.pid)
                if not ok:  # timed out or cancelled: the request is still running there
                    self._kill(w)
            if not ok:
                self.stats["timeouts"] += 1
                return None
            try:
                status, value = w.conn.recv()
            except EOFError:
                self._kill(w)
                raise RuntimeError(
                    f"rule worker {w.proc.pid} died (exit code {w.proc.exitcode}) running {fn.__name__}"
                ) from None
            self._idle.append(w)
            if status == "err":
                raise value
            return value

    def close(self) -> None:
        """Stop every idle worker (busy ones are killed by their own timeouts)."""
        while self._idle:
            w = self._idle.pop()
            w.conn.close()
            w.proc.join(2)
            if w.proc.is_alive():
                self._kill(w)


_POOLS: dict[int, RulePool] = {}


def pool(size: int = 2) -> RulePool:
    """This process's rule pool (one per pid, so a forked child never shares its parent's pipes)."""
    p = _POOLS.get(os.getpid())
    if p is None:
        p = _POOLS[os.getpid()] = RulePool(size=size)
    return p
