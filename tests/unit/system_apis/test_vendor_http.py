"""The vendor HTTP seam: what is retried, how long it waits, when the breaker opens."""

from __future__ import annotations

import asyncio
import datetime as dt
from email.utils import format_datetime

import httpx
import pytest

from contracts.correlation import correlation_id
from foundation import metrics
from foundation.retry import RetryPolicy, parse_retry_after
from system_apis._internal.http import (
    CircuitBreaker,
    CircuitOpenError,
    VendorHttp,
    VendorRateLimited,
    VendorRejected,
    VendorUnavailable,
)


class Script:
    """Answers requests from a list of (status, headers); records what it saw."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return httpx.Response(status, headers=headers, json={"ok": status < 400})


def make(script: Script, **kwargs: object) -> tuple[VendorHttp, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = httpx.AsyncClient(transport=httpx.MockTransport(script), base_url="https://vendor.test")
    return VendorHttp("acme", client, sleep=sleep, **kwargs), waits  # type: ignore[arg-type]


async def test_429_is_retried_after_at_least_retry_after_even_for_post() -> None:
    script = Script((429, {"Retry-After": "1"}), (200, {}))
    http, waits = make(script)
    response = await http.request("POST", "/things", json={"a": 1})
    assert response.status_code == 200 and len(script.seen) == 2
    assert waits and waits[0] >= 1


async def test_5xx_retried_for_idempotent_calls_only() -> None:
    http, _ = make(Script((503, {}), (200, {})))
    assert (await http.request("PUT", "/x", json={})).status_code == 200
    script = Script((503, {}), (200, {}))
    http, _ = make(script)
    with pytest.raises(VendorUnavailable):
        await http.request("POST", "/x", json={})
    assert len(script.seen) == 1  # a POST that may have landed is never sent twice


async def test_business_errors_are_not_retried() -> None:
    script = Script((400, {}))
    http, waits = make(script)
    with pytest.raises(VendorRejected) as err:
        await http.request("GET", "/x")
    assert err.value.status == 400 and len(script.seen) == 1 and waits == []


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    script = Script(*[(429, {"Retry-After": "0"})] * 10)
    http, _ = make(script, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(VendorRateLimited):
        await http.request("GET", "/x")
    assert len(script.seen) == 3


async def test_correlation_id_and_traceparent_are_passed_on() -> None:
    script = Script((200, {}))
    http, _ = make(script)
    token = correlation_id.set("corr-12345678")
    try:
        await http.request("GET", "/x")
    finally:
        correlation_id.reset(token)
    sent = script.seen[0].headers
    assert sent["X-Correlation-ID"] == "corr-12345678"
    assert sent["traceparent"].startswith("00-") and len(sent["traceparent"]) == 55


async def test_breaker_opens_fails_fast_then_half_opens() -> None:
    now = [0.0]
    breaker = CircuitBreaker("acme", threshold=3, cooldown=10, clock=lambda: now[0])
    script = Script(*[(503, {})] * 3, (200, {}))
    http, _ = make(script, retry=RetryPolicy(max_attempts=1), breaker=breaker)
    for _ in range(3):
        with pytest.raises(VendorUnavailable):
            await http.request("GET", "/x")
    with pytest.raises(CircuitOpenError):
        await http.request("GET", "/x")
    assert len(script.seen) == 3  # the open circuit spared the vendor
    now[0] = 11
    assert (await http.request("GET", "/x")).status_code == 200
    assert breaker.state == "closed"


async def test_one_legal_entitys_failures_open_its_own_circuit_only() -> None:
    """A connection serving UK01 and US01: UK01's 5xx storm fails UK01's calls fast, US01's still reach the
    vendor, and the connection's gauge shows the open circuit."""
    breaker = CircuitBreaker("acme", threshold=2, cooldown=60)
    script = Script((503, {}), (503, {}), (200, {}))
    http, _ = make(script, retry=RetryPolicy(max_attempts=1), breaker=breaker)

    async def call_as(entity: str) -> httpx.Response:
        token = metrics.legal_entity.set(entity)
        try:
            return await http.request("POST", "/x")
        finally:
            metrics.legal_entity.reset(token)

    for _ in range(2):
        with pytest.raises(VendorUnavailable):
            await call_as("UK01")
    with pytest.raises(CircuitOpenError):
        await call_as("UK01")
    assert (await call_as("US01")).status_code == 200 and len(script.seen) == 3
    assert breaker.state_of("UK01") == "open" and breaker.state_of("US01") == "closed"
    assert breaker.state == "open"


async def test_a_cancelled_trial_call_lets_the_next_call_try() -> None:
    """The half-open circuit's one trial is cancelled (its caller went away): the next call is let through as the
    trial, instead of the circuit refusing every call while it waits for an outcome that never comes."""
    now = [0.0]
    breaker = CircuitBreaker("acme", threshold=1, cooldown=10, clock=lambda: now[0])
    started = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/hang":
            started.set()
            await asyncio.sleep(60)
        return httpx.Response(503 if request.url.path == "/down" else 200, json={})

    http = VendorHttp("acme", httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://acme"),
                      retry=RetryPolicy(max_attempts=1), breaker=breaker)
    with pytest.raises(VendorUnavailable):
        await http.request("GET", "/down")
    now[0] = 11  # half-open: one trial
    trial = asyncio.ensure_future(http.request("GET", "/hang"))
    await started.wait()
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert (await http.request("GET", "/up")).status_code == 200
    assert breaker.state == "closed"


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("5") == 5
    when = dt.datetime(2030, 1, 1, 0, 0, 10, tzinfo=dt.UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), now=when.timestamp() - 10) == pytest.approx(10)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_jittered_capped_and_never_below_retry_after() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=4)
    delays = [policy.delay(6, None) for _ in range(200)]
    assert max(delays) <= 4 and len(set(delays)) > 100
    assert all(policy.delay(1, 7) >= 7 for _ in range(20))


async def test_rate_limits_never_open_the_breaker() -> None:
    breaker = CircuitBreaker("acme", threshold=2, cooldown=60)
    script = Script(*[(429, {"Retry-After": "0"})] * 6, (200, {}))
    http, _ = make(script, retry=RetryPolicy(max_attempts=7, base_delay=0.01, max_delay=0.05), breaker=breaker)
    assert (await http.request("GET", "/x")).status_code == 200
    assert breaker.state == "closed"
