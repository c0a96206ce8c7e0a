"""JudgeClient.post_json over plain httpx and Retry-After in the counted retry loop (issue 13)."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import openai
from aiohttp import web

from omni_rl.judge.client import MAX_RETRY_AFTER_S, JudgeClient, retry_after_s


def _status_error(status: int, headers: dict[str, str], sdk: bool = False) -> Exception:
    request = httpx.Request("POST", "http://127.0.0.1:1/classify")
    response = httpx.Response(status, headers=headers, request=request)
    if sdk:
        return openai.RateLimitError("slow down", response=response, body=None)
    return httpx.HTTPStatusError("slow down", request=request, response=response)


def test_retry_after_forms_are_read_and_capped() -> None:
    assert retry_after_s(_status_error(429, {"Retry-After": "3"})) == 3.0
    assert retry_after_s(_status_error(429, {"retry-after-ms": "250"}, sdk=True)) == 0.25
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 < retry_after_s(_status_error(503, {"Retry-After": date})) <= 5.0  # type: ignore[operator]
    assert retry_after_s(_status_error(429, {"Retry-After": "3600"})) == MAX_RETRY_AFTER_S
    assert retry_after_s(_status_error(429, {})) is None
    assert retry_after_s(ValueError("no response")) is None


def test_backoff_never_undercuts_the_servers_retry_after() -> None:
    client = JudgeClient("http://127.0.0.1:1/v1", "m", backoff_base=0.01, backoff_max=0.02)
    exc = _status_error(429, {"Retry-After": "2"}, sdk=True)
    assert all(client._backoff(0, exc) == 2.0 for _ in range(20))
    assert all(client._backoff(0) <= 0.02 for _ in range(20))


async def test_post_json_goes_over_plain_httpx_and_retries_429_then_succeeds() -> None:
    """A loopback server that rate-limits the first call (fault injection), then answers."""
    calls: list[dict] = []

    async def classify(request: web.Request) -> web.Response:
        calls.append(await request.json())
        if len(calls) == 1:
            return web.json_response({"error": "busy"}, status=429, headers={"Retry-After": "0"})
        return web.json_response({"data": [{"probs": [0.25, 0.75]}]})

    app = web.Application()
    app.router.add_post("/classify", classify)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = JudgeClient(f"http://127.0.0.1:{port}/v1", "m", backoff_base=0.01, backoff_max=0.02)
    try:
        out = await client.post_json("/classify", {"input": ["x"]})
        assert out == {"data": [{"probs": [0.25, 0.75]}]}
        assert calls == [{"input": ["x"]}] * 2
        assert (client.stats.requests, client.stats.retries, client.stats.errors) == (
            2,
            1,
            {"HTTPStatusError": 1},
        )
        await client.aclose()
        await client.aclose()  # safe twice
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)
