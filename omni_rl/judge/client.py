"""The one door to a judge server: bounded, retried, counted OpenAI-compatible chat calls.

Every network call to a GenRM goes through `JudgeClient.chat`. It wraps ONE `openai.AsyncOpenAI`
(created lazily, per process and per event loop, so the client pickles cleanly into Ray workers),
bounds concurrency with a semaphore, retries connection errors / timeouts / 5xx / 429 with exponential
backoff and full jitter (never sooner than the server's Retry-After), and raises `JudgeError` once the
retry budget is spent. Non-chat routes (vLLM's /classify, /pooling) go over a plain `httpx.AsyncClient`
through the same counted retry loop. Nothing is swallowed: callers decide whether a failure becomes an
exception or a documented neutral reward.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import httpx
import openai

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Deterministic judging by default (recorded in reports): greedy decoding and a fixed seed.
DEFAULT_SAMPLING: dict[str, Any] = {"temperature": 0.0, "seed": 0}


class JudgeError(RuntimeError):
    """A judge call failed for good (retry budget spent, or a non-retryable 4xx)."""

    def __init__(self, message: str, *, attempts: int, retryable: bool, cause: BaseException | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.retryable = retryable
        self.cause = cause


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its logprob and the top alternatives at that position."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class ChatResult:
    """A judge reply: text, per-token logprobs (when asked for) and the raw response dict."""

    text: str
    logprobs: list[TokenLogprob] | None
    raw: dict[str, Any]
    finish_reason: str | None = None
    attempts: int = 1
    latency_s: float = 0.0


@dataclass
class ClientStats:
    """Counters exposed as metrics: nothing fails or retries without being counted here."""

    calls: int = 0  # logical chat() calls
    requests: int = 0  # HTTP attempts (calls + retries)
    retries: int = 0
    failures: int = 0  # calls that raised JudgeError
    successes: int = 0
    latency_total_s: float = 0.0  # summed over successful calls (incl. their retries)
    latency_max_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)  # exception class name -> count

    def as_dict(self, prefix: str = "judge/") -> dict[str, float]:
        """Flat float metrics (verl logs every key of a reward dict)."""
        out = {f"{prefix}{k}": float(v) for k, v in asdict(self).items() if k != "errors"}
        out[f"{prefix}latency_mean_s"] = self.latency_total_s / self.successes if self.successes else 0.0
        return out


#: Longest Retry-After we honour (a server asking for more is treated as this; the retry budget still ends it).
MAX_RETRY_AFTER_S = 60.0


def _is_retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 5xx and 429 are transient; other 4xx are our bug and fail fast."""
    if isinstance(exc, openai.APIConnectionError | asyncio.TimeoutError | httpx.TransportError):
        return True  # openai's includes APITimeoutError; httpx's includes connect/read timeouts
    status = _status(exc)
    return status is not None and (status >= 500 or status in (408, 409, 429))


def _status(exc: BaseException) -> int | None:
    """The HTTP status of an SDK or httpx status error (None for other errors)."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After-Ms / Retry-After: seconds or HTTP date), capped."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value: float | None = None
    try:
        if headers.get("retry-after-ms"):
            value = float(headers["retry-after-ms"]) / 1000.0
        elif headers.get("retry-after"):
            raw = headers["retry-after"]
            try:
                value = float(raw)
            except ValueError:
                when = email.utils.parsedate_to_datetime(raw)
                value = when.timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None
    if value is None or value != value:  # missing or NaN
        return None
    return min(max(0.0, value), MAX_RETRY_AFTER_S)


def _parse_logprobs(choice: Any) -> list[TokenLogprob] | None:
    """OpenAI `choices[0].logprobs.content` → plain dataclasses (None when not requested)."""
    lp = getattr(choice, "logprobs", None)
    content = getattr(lp, "content", None) if lp is not None else None
    if not content:
        return None
    out = []
    for t in content:
        top = {a.token: float(a.logprob) for a in (t.top_logprobs or [])}
        out.append(TokenLogprob(token=t.token, logprob=float(t.logprob), top=top))
    return out


def base_url_from_address(address: str) -> str:
    """verl's reward router gives "host:port"; the OpenAI client wants "http://host:port/v1"."""
    address = address.strip().rstrip("/")
    if not address.startswith(("http://", "https://")):
        address = f"http://{address}"
    return address if address.endswith("/v1") else f"{address}/v1"


class JudgeClient:
    """Async OpenAI-compatible chat client with bounded concurrency, retries and counters."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = 32,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        default_sampling: dict[str, Any] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url if "://" in base_url else base_url_from_address(base_url)
        self.model = model
        self.api_key = api_key or os.environ.get("OMNI_RL_JUDGE_API_KEY") or "EMPTY"
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.default_sampling = {**DEFAULT_SAMPLING, **(default_sampling or {})}
        self.stats = ClientStats()
        self._init_runtime()

    # -- lifecycle: runtime objects are per process and per event loop, never pickled --------------
    def _init_runtime(self) -> None:
        self._client: openai.AsyncOpenAI | None = None
        self._http: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in ("_client", "_http", "_sem", "_loop", "_lock"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def _runtime(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        """The AsyncOpenAI + semaphore bound to the running loop (rebuilt if the loop changed)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._client is None or self._loop is not loop:
                self._client = openai.AsyncOpenAI(
                    base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=0
                )
                self._http = None
                self._sem = asyncio.Semaphore(self.max_concurrency)
                self._loop = loop
            assert self._sem is not None
            return self._client, self._sem

    def _http_client(self) -> httpx.AsyncClient:
        """A plain httpx pool for non-chat routes, bound to the same loop as the OpenAI client."""
        self._runtime()
        with self._lock:
            if self._http is None:
                headers = {"Authorization": f"Bearer {self.api_key}"}
                self._http = httpx.AsyncClient(timeout=self.timeout, headers=headers)
            return self._http

    async def aclose(self) -> None:
        """Close the underlying HTTP pools (safe to call twice)."""
        if self._client is not None:
            await self._client.close()
        if self._http is not None:
            await self._http.aclose()
        self._init_runtime()

    # -- the call ------------------------------------------------------------------------------
    def _backoff(self, attempt: int, exc: BaseException | None = None) -> float:
        """Full-jitter exponential backoff U(0, min(max, base * 2**attempt)), never below Retry-After."""
        delay = random.uniform(0.0, min(self.backoff_max, self.backoff_base * (2**attempt)))
        asked = retry_after_s(exc) if exc is not None else None
        return max(delay, asked) if asked is not None else delay

    async def resolve_model(self) -> str:
        """The model name to send: as configured, or (model "auto"/empty) the server's first model."""
        if self.model and self.model != "auto":
            return self.model
        client, _ = self._runtime()
        for attempt in range(self.max_retries + 1):
            try:
                models = await client.models.list()
                break
            except Exception as exc:
                if not _is_retryable(exc) or attempt >= self.max_retries:
                    raise JudgeError(
                        f"model='auto' but listing models at {self.base_url} failed: {exc}",
                        attempts=attempt + 1,
                        retryable=_is_retryable(exc),
                    ) from exc
                await asyncio.sleep(self._backoff(attempt))
        if not models.data:
            raise JudgeError(f"model='auto' but {self.base_url} serves no model", attempts=1, retryable=False)
        self.model = models.data[0].id
        return self.model

    async def _counted(self, what: str, send: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """Run `send` under the semaphore with counted retries + backoff; JudgeError past the budget."""
        _, sem = self._runtime()
        self.stats.calls += 1
        attempt = 0
        while True:
            self.stats.requests += 1
            try:
                async with sem:
                    return await send(), attempt + 1
            except Exception as exc:
                name = type(exc).__name__
                self.stats.errors[name] = self.stats.errors.get(name, 0) + 1
                retryable = _is_retryable(exc)
                if not retryable or attempt >= self.max_retries:
                    self.stats.failures += 1
                    why = "retry budget spent" if retryable else "non-retryable error"
                    msg = f"{what} failed after {attempt + 1} attempt(s), {why}: {name}: {exc}"
                    log.error(msg)
                    raise JudgeError(msg, attempts=attempt + 1, retryable=retryable, cause=exc) from exc
                delay = self._backoff(attempt, exc)
                log.warning("judge call failed (%s: %s); retry %d in %.2f s", name, exc, attempt + 1, delay)
                self.stats.retries += 1
                attempt += 1
                await asyncio.sleep(delay)

    async def chat(self, messages: Sequence[dict[str, Any]], **sampling: Any) -> ChatResult:
        """One chat completion; retried on transient errors; raises JudgeError past the budget."""
        client, _ = self._runtime()
        kwargs = {**self.default_sampling, **sampling}
        if "model" not in kwargs:
            kwargs["model"] = (
                self.model if self.model and self.model != "auto" else await self.resolve_model()
            )
        t0 = time.monotonic()
        resp, attempts = await self._counted(
            f"judge call to {self.base_url} ({kwargs['model']})",
            lambda: client.chat.completions.create(messages=list(messages), **kwargs),
        )
        return self._success(resp, attempts, time.monotonic() - t0)

    async def post_json(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON to a server-root route (vLLM serves /classify and /pooling outside /v1), counted."""
        http = self._http_client()
        url = f"{self.base_url.rstrip('/').removesuffix('/v1')}/{route.lstrip('/')}"

        async def send() -> httpx.Response:
            response = await http.post(url, json=body)
            response.raise_for_status()  # 5xx/429 → HTTPStatusError, retried by _counted
            return response

        t0 = time.monotonic()
        resp, _ = await self._counted(f"POST {url}", send)
        latency = time.monotonic() - t0
        self.stats.successes += 1
        self.stats.latency_total_s += latency
        self.stats.latency_max_s = max(self.stats.latency_max_s, latency)
        return resp.json()

    def _success(self, resp: Any, attempts: int, latency: float) -> ChatResult:
        """Count a success and flatten the OpenAI response."""
        self.stats.successes += 1
        self.stats.latency_total_s += latency
        self.stats.latency_max_s = max(self.stats.latency_max_s, latency)
        if not resp.choices:
            raise JudgeError(f"judge {self.base_url} returned no choices", attempts=attempts, retryable=False)
        choice = resp.choices[0]
        return ChatResult(
            text=choice.message.content or "",
            logprobs=_parse_logprobs(choice),
            raw=resp.model_dump(),
            finish_reason=choice.finish_reason,
            attempts=attempts,
            latency_s=latency,
        )

    async def chat_many(
        self, batch: Sequence[Sequence[dict[str, Any]]], return_exceptions: bool = False, **sampling: Any
    ) -> list[ChatResult | BaseException]:
        """Concurrent chat() over many conversations (the semaphore bounds in-flight requests)."""
        coros = [self.chat(m, **sampling) for m in batch]
        return list(await asyncio.gather(*coros, return_exceptions=return_exceptions))

    def chat_sync(self, messages: Sequence[dict[str, Any]], **sampling: Any) -> ChatResult:
        """Blocking chat() for scripts and notebooks (not from inside a running event loop)."""

        async def once() -> ChatResult:
            try:
                return await self.chat(messages, **sampling)
            finally:
                await self.aclose()  # the pool belongs to this short-lived loop: close it with the loop

        return run_sync(once())

    def __repr__(self) -> str:
        return f"JudgeClient(base_url={self.base_url!r}, model={self.model!r}, max_concurrency={self.max_concurrency})"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code; refuses inside a running loop (use await)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("run_sync() called inside a running event loop: `await` the coroutine instead")
