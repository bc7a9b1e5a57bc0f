"""The HTTP seam every vendor client stands on: timeouts, retries, breaker, correlation.

Error tree (what a vendor client raises; the system API maps it to a problem)::

    VendorError
    ├── TransientVendorError      retry later: nothing was (or may safely be re-)done
    │   ├── VendorRateLimited     429 or a concurrency-limit error; carries retry_after
    │   │   └── VendorShareSpent  not sent: the consumer's share of our budget is spent
    │   ├── VendorUnavailable     5xx, timeout, connection failure
    │   └── CircuitOpenError      the breaker refuses calls for a cool-down
    └── VendorRejected            4xx business answer: not found, conflict, invalid

Retries follow "exponential backoff with full jitter"
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/) and never
undercut a vendor's `Retry-After`. Only transient failures are retried, and a 5xx or
timeout only when the request is idempotent (GET/PUT/DELETE, or a write the vendor
de-duplicates by key) — a 429 means the vendor did nothing, so it is always safe.

Every call here serves a request someone is waiting on, so waiting is bounded: a wait
longer than `max_wait` (the vendor's `Retry-After`, or the consumer's share of the
vendor's budget being spent, see `system_apis.pacing`) is not waited out inside the
request — the error is raised at once and answered 503 with `Retry-After`, and the
caller retries at its level (the process steps do) instead of holding a connection, and
a worker's attention, for up to a minute. All waits of one call together stay within
`wait_budget`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import httpx
import msgspec

from contracts.correlation import outgoing_headers
from foundation import metrics
from foundation.retry import RetryPolicy, parse_retry_after
from foundation.tracing import SpanKind, span
from system_apis.pacing import Pacer, consumer

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "TransientVendorError",
    "VendorError",
    "VendorHttp",
    "VendorRateLimited",
    "VendorRejected",
    "VendorShareSpent",
    "VendorUnavailable",
    "error_body",
    "transient_error",
]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_WAIT: Final = 1.0
"""The longest one wait inside a request (seconds); a longer one is answered 503 + Retry-After at once."""
WAIT_BUDGET: Final = 2.0
"""The most one call waits in all (seconds), retries included."""


class VendorError(Exception):
    """Any failure talking to a vendor."""

    def __init__(self, vendor: str, message: str, *, status: int | None = None, body: object = None) -> None:
        super().__init__(f"{vendor}: {message}")
        self.vendor = vendor
        self.status = status
        self.body = body


class TransientVendorError(VendorError):
    """Worth retrying later; `retry_after` is the vendor's hint in seconds, if any."""

    retry_after: float | None = None


class VendorRateLimited(TransientVendorError):
    def __init__(self, vendor: str, message: str, *, retry_after: float | None, status: int | None = 429,
                 body: object = None) -> None:
        super().__init__(vendor, message, status=status, body=body)
        self.retry_after = retry_after


class VendorShareSpent(VendorRateLimited):
    """Not sent: this consumer has used its share of the vendor's request budget (`system_apis.pacing`)."""

    def __init__(self, vendor: str, consumer: str, retry_after: float) -> None:
        super().__init__(vendor, f"{consumer} has used its share of our {vendor} request budget for "
                         f"{retry_after:.1f}s", retry_after=retry_after, status=None)
        self.consumer = consumer


class VendorUnavailable(TransientVendorError):
    pass


class CircuitOpenError(TransientVendorError):
    def __init__(self, vendor: str, retry_after: float) -> None:
        super().__init__(vendor, f"circuit open for {retry_after:.1f}s after repeated failures", status=None)
        self.retry_after = retry_after


class VendorRejected(VendorError):
    """The vendor answered with a business error (4xx other than 429); retrying cannot help.

    `code` is the vendor's own error code where it gives one (NetSuite `o:errorCode`,
    Salesforce `errorCode`), for mapping to a canonical problem; `field` points at the
    canonical request field it refused (a reference to a record the vendor does not have),
    so the problem's `errors[]` can name it.
    """

    def __init__(self, vendor: str, message: str, *, status: int, code: str | None = None,
                 body: object = None, field: str | None = None) -> None:
        super().__init__(vendor, message, status=status, body=body)
        self.code = code
        self.field = field
        """JSON pointer of the canonical request field the vendor refused, where the adapter can tell."""


def error_body(response: httpx.Response) -> Any:
    """A failed answer's body for the error: its JSON, else the start of its text."""
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def transient_error(vendor: str, response: httpx.Response, message: str, body: object) -> TransientVendorError | None:
    """The retryable answers, read alike for every vendor whose envelope says nothing more: 429 is
    `VendorRateLimited`, 5xx `VendorUnavailable`, each with the `Retry-After` the vendor sent; None otherwise."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return VendorRateLimited(vendor, message, retry_after=retry_after, body=body)
    if status >= 500:
        err = VendorUnavailable(vendor, f"server error {status}: {message}", status=status, body=body)
        err.retry_after = retry_after
        return err
    return None


class _Circuit:
    __slots__ = ("failures", "opened_at", "trial_in_flight")

    def __init__(self) -> None:
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_in_flight = False


_STATE_RANK: Final = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreaker:
    """A vendor connection's breaker: a circuit opens after `threshold` consecutive failures (5xx, timeouts,
    no connection).

    One circuit per legal entity the connection serves (the `scope` of each call; "-" for calls that name
    none): a connection shared by several entities keeps serving the others when one entity's calls fail —
    a subsidiary's records answered with 5xx must not fail its sister companies' postings fast. An outage of
    the whole account opens each entity's circuit after its own `threshold` failures.

    Rate-limit answers do not count: backoff handles them, and opening the circuit on
    them would turn the vendor's pacing into an outage of our own.

    While open, calls fail fast with `CircuitOpenError` so a down vendor costs
    callers nothing; after `cooldown` one trial call is let through (half-open) and
    its outcome closes or re-opens the circuit.
    """

    def __init__(self, vendor: str, *, threshold: int = 10, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.vendor = vendor
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def state_of(self, scope: str = "-") -> str:
        circuit = self._circuits.get(scope)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        return "half_open" if self._clock() - circuit.opened_at >= self.cooldown else "open"

    @property
    def state(self) -> str:
        """The worst of the connection's circuits: what its health gauge shows."""
        return max((self.state_of(scope) for scope in self._circuits), key=_STATE_RANK.__getitem__,
                   default="closed")

    def before_call(self, scope: str = "-") -> None:
        state = self.state_of(scope)
        if state == "closed":
            return
        circuit = self._circuits[scope]
        assert circuit.opened_at is not None
        if state == "open":
            raise CircuitOpenError(self.vendor, self.cooldown - (self._clock() - circuit.opened_at))
        if circuit.trial_in_flight:
            raise CircuitOpenError(self.vendor, self.cooldown)
        circuit.trial_in_flight = True

    def abandon_trial(self, scope: str = "-") -> None:
        """A call ended with no outcome (cancelled): if it was the trial, the next call may be one instead —
        else the circuit would wait for an outcome that never comes, refusing every call."""
        if (circuit := self._circuits.get(scope)) is not None:
            circuit.trial_in_flight = False

    def record_success(self, scope: str = "-") -> None:
        self._circuits.pop(scope, None)

    def record_failure(self, scope: str = "-") -> None:
        circuit = self._circuits.setdefault(scope, _Circuit())
        circuit.trial_in_flight = False
        circuit.failures += 1
        if circuit.failures >= self.threshold or circuit.opened_at is not None:
            circuit.opened_at = self._clock()


Classifier = Callable[[httpx.Response], VendorError | None]
Sleep = Callable[[float], Awaitable[None]]


class VendorHttp:
    """One vendor's HTTP access: the client owns auth headers and base URL; this owns resilience.

    Args:
        vendor: name used in errors, logs and the breaker.
        client: an `httpx.AsyncClient` whose transport decides where requests go — a
            simulator in-process, a simulator process, or the real vendor.
        classify: turns a non-2xx response into the vendor's error (vendors put rate
            limits and business errors in their own envelopes); `None` = default rules.
    """

    def __init__(
        self,
        vendor: str,
        client: httpx.AsyncClient,
        *,
        classify: Classifier | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
        pacer: Pacer | None = None,
        max_wait: float = MAX_WAIT,
        wait_budget: float = WAIT_BUDGET,
    ) -> None:
        self.vendor = vendor
        self.client = client
        self.classify = classify or self.default_classify
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker(vendor)
        self.pacer = pacer
        self.max_wait = max_wait
        self.wait_budget = wait_budget
        self._sleep = sleep
        self.calls = 0

    def default_classify(self, response: httpx.Response) -> VendorError | None:
        status = response.status_code
        if status < 400:
            return None
        body = _body(response)
        if status == 429:
            return VendorRateLimited(self.vendor, "rate limited",
                                     retry_after=parse_retry_after(response.headers.get("Retry-After")), body=body)
        if status >= 500:
            err = VendorUnavailable(self.vendor, f"server error {status}", status=status, body=body)
            err.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return err
        return VendorRejected(self.vendor, f"rejected with {status}", status=status, body=body)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with retries; return the 2xx/3xx response or raise a `VendorError`.

        Measured here, once per call (retries included): latency and outcome by vendor, operation and legal
        entity, the breaker's state, and a span (the vendor HTTP call is its child, httpx instrumentation).
        """
        operation = metrics.operation_label(method, url)
        started = time.perf_counter()
        outcome = "ok"
        try:
            with span(f"{self.vendor} {operation}", {"psconnect.vendor": self.vendor}, kind=SpanKind.CLIENT):
                return await self._request(method, url, params=params, json=json, headers=headers,
                                           idempotent=idempotent)
        except VendorError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            metrics.observe_vendor_call(self.vendor, operation, metrics.legal_entity.get(), outcome,
                                        time.perf_counter() - started)
            metrics.observe_circuit(self.vendor, self.breaker.state)

    async def _request(self, method: str, url: str, *, params: Mapping[str, str | int] | None, json: Any,
                       headers: Mapping[str, str] | None, idempotent: bool | None) -> httpx.Response:
        safe = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        content = msgspec.json.encode(json) if json is not None else None
        send_headers = {**outgoing_headers(), **(headers or {})}
        if content is not None:
            send_headers.setdefault("Content-Type", "application/json")
        attempt = 0
        waited = 0.0
        scope = metrics.legal_entity.get()  # the breaker keeps one circuit per legal entity
        while True:
            attempt += 1
            if self.pacer is not None:
                waited += await self._pace(waited)
            self.breaker.before_call(scope)
            self.calls += 1
            error: VendorError | None
            try:
                response = await self.client.request(method, url, params=params, content=content,
                                                     headers=send_headers)
                error = self.classify(response)
            except httpx.TimeoutException as exc:
                error = VendorUnavailable(self.vendor, f"timeout: {exc!r}")
            except httpx.TransportError as exc:
                error = VendorUnavailable(self.vendor, f"connection failed: {exc!r}")
            except BaseException:  # cancelled (the caller went away) or worse: no outcome to record
                self.breaker.abandon_trial(scope)
                raise
            if error is None:
                self.breaker.record_success(scope)
                remaining = metrics.remaining_budget(response.headers)
                if remaining is not None:
                    metrics.observe_vendor_budget(self.vendor, remaining)
                return response
            delay = self._retry_delay(error, attempt, safe, waited, scope)
            if delay is None:
                try:
                    raise error
                finally:  # the raised error's traceback holds this frame: a frame holding the error is a cycle
                    del error
            waited += delay
            metrics.observe_vendor_retry(self.vendor, type(error).__name__)
            await self._sleep(delay)

    def _retry_delay(self, error: VendorError, attempt: int, safe: bool, waited: float,
                     scope: str) -> float | None:
        """How long to wait before sending again after `error`; None: give up, the call fails with it."""
        if not isinstance(error, TransientVendorError):
            self.breaker.record_success(scope)  # the vendor is up; it just said no
            return None
        if not isinstance(error, VendorRateLimited):
            self.breaker.record_failure(scope)  # throttling is a healthy vendor pacing us, not an outage
        retryable = isinstance(error, VendorRateLimited) or safe
        if not retryable or attempt >= self.retry.max_attempts:
            return None
        delay = self.retry.delay(attempt, error.retry_after)
        if delay > self.max_wait or waited + delay > self.wait_budget:
            return None  # answered at once with Retry-After; not waited out inside the request
        return delay

    async def _pace(self, waited: float) -> float:
        """Take a send from the vendor's budget for this request's consumer, waiting briefly if need be."""
        assert self.pacer is not None
        who = consumer.get()
        slept = 0.0
        while True:
            wait, own_share = self.pacer.take(who)
            if wait <= 0:
                return slept
            if wait > self.max_wait or waited + slept + wait > self.wait_budget:
                if own_share:
                    raise VendorShareSpent(self.vendor, who or "", wait)
                raise VendorRateLimited(self.vendor, f"our request budget is spent for {wait:.1f}s",
                                        retry_after=wait, status=None)
            slept += wait
            await self._sleep(wait)


def _body(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]
