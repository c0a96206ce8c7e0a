"""One failure budget for every judge call: a failure never becomes a constant without being counted.

Every outcome is recorded as one of `KINDS`: ``ok``, ``transport`` (the client spent its retries),
``parse`` (no verdict/score in the output) or ``truncated`` (no verdict and the judge stopped at
max_tokens). Each failure kind has its own limit on its *rate over the last `window` outcomes* (not a
consecutive count: one lucky success cannot reset a judge that fails half the time). Once at least
`min_outcomes` are in the window and a rate passes its limit, `record` raises `FailureBudgetExceeded`
naming the kind, the count and the config key to change. Totals and windowed rates are exposed as flat
float metrics. Thread-safe (verl runs sync reward functions in executor threads); pickles without its lock.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

from omni_rl.judge.client import JudgeError

log = logging.getLogger(__name__)

Kind = Literal["ok", "transport", "parse", "truncated"]
KINDS: tuple[str, ...] = ("ok", "transport", "parse", "truncated")
FAILURE_KINDS: tuple[str, ...] = ("transport", "parse", "truncated")
_WHAT = {
    "transport": "failed on the wire (retries spent)",
    "parse": "unparsable (no verdict or score)",
    "truncated": "unparsable: truncated at max_tokens before a verdict",
}
DEFAULT_MAX_RATES: dict[str, float | None] = {"transport": 0.25, "parse": 0.25, "truncated": 0.25}


class FailureBudgetExceeded(JudgeError):
    """A judge failed too often within the window: stop instead of training/selecting on constants."""

    def __init__(self, message: str) -> None:
        super().__init__(message, attempts=0, retryable=False)


class FailureBudget:
    """Windowed per-kind failure rates with loud limits; `max_rates[kind]=None` records without a limit."""

    def __init__(
        self,
        name: str = "judge",
        *,
        window: int = 64,
        max_rates: Mapping[str, float | None] | None = None,
        min_outcomes: int | None = None,
        rate_keys: Mapping[str, str] | None = None,
        hint: str = "",
        error: type[FailureBudgetExceeded] = FailureBudgetExceeded,
    ) -> None:
        if window < 1:
            raise ValueError(f"FailureBudget({name}): window must be >= 1, got {window}")
        rates = {**DEFAULT_MAX_RATES, **dict(max_rates or {})}
        unknown = sorted(set(rates) - set(FAILURE_KINDS))
        if unknown:
            raise ValueError(f"FailureBudget({name}): unknown kinds {unknown}; kinds are {FAILURE_KINDS}")
        self.name, self.window, self.max_rates = name, window, rates
        self.min_outcomes = max(1, min(window, min_outcomes if min_outcomes is not None else window))
        self.rate_keys = {k: f"max_{k}_rate" for k in FAILURE_KINDS} | dict(rate_keys or {})
        self.hint, self.error = hint, error
        self.totals: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.last_detail: dict[str, str] = {}
        self._recent: deque[str] = deque(maxlen=window)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def record(self, kind: str, detail: str = "") -> None:
        """Count one outcome; raise `error` when a failure kind's windowed rate passes its limit."""
        if kind not in KINDS:
            raise ValueError(f"FailureBudget({self.name}): unknown outcome {kind!r}; kinds are {KINDS}")
        with self._lock:
            self.totals[kind] += 1
            self._recent.append(kind)
            if kind == "ok":
                return
            self.last_detail[kind] = detail[:300]
            n = len(self._recent)
            count = sum(1 for k in self._recent if k == kind)
            limit = self.max_rates.get(kind)
            tripped = limit is not None and n >= self.min_outcomes and count / n > limit
            if tripped:
                self._recent.clear()  # the next run of calls starts a fresh window after the stop
        log.warning("%s: judge call %s: %s", self.name, kind, detail[:200])
        if tripped:
            raise self.error(
                f"{self.name}: {count} of the last {n} judge calls were {_WHAT[kind]} "
                f"(> {self.rate_keys[kind]}={limit}); last: {detail[:200]!r}. "
                f"Stopping instead of using constant rewards/verdicts. {self.hint}".strip()
            )

    def rate(self, kind: str) -> float:
        """Share of `kind` among the outcomes in the current window (0 when empty)."""
        with self._lock:
            n = len(self._recent)
            return sum(1 for k in self._recent if k == kind) / n if n else 0.0

    @property
    def outcomes(self) -> int:
        """Every outcome recorded so far."""
        return sum(self.totals.values())

    def metrics(self, prefix: str = "judge_budget/") -> dict[str, float]:
        """Flat float counters (totals per kind) and windowed failure rates, for logs and reports."""
        out = {f"{prefix}{k}": float(v) for k, v in self.totals.items()}
        out.update({f"{prefix}{k}_rate": self.rate(k) for k in FAILURE_KINDS})
        return out

    def __repr__(self) -> str:
        return f"FailureBudget({self.name!r}, window={self.window}, max_rates={self.max_rates}, totals={self.totals})"
