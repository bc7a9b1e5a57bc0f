"""The webhook dispatcher: fans out the outbox, claims due deliveries with a lease, sends them.

Every attempt is its own task with its own timeout, and each subscription has at most
`per_subscription` attempts in flight, so a slow or failing subscriber delays nobody
else — and the gateway's requests never wait on it (the loop runs beside them). Failed
attempts are retried with exponential backoff and full jitter for about a day (the
default `Backoff`), then dead-lettered. State lives in the deliveries table only: after
a restart the pending rows are simply claimed again (at least once, stable ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx
import msgspec

from experience_apis.subscriptions.signing import headers
from experience_apis.subscriptions.store import Claimed, SubscriptionStore
from foundation.clock import utcnow
from foundation.http_client import CycleFreeClient

__all__ = ["Backoff", "Dispatcher"]

log = logging.getLogger("psconnect.webhooks")


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (n = attempts made so far, 1…): `base * factor**(n-1)`, capped, jittered.

    Default: 5 s, 20 s, 80 s, 5 min, 21 min, 85 min, then every 6 h — 11 attempts over about 26 h.
    """

    base: float = 5.0
    factor: float = 4.0
    cap: float = 6 * 3600.0
    max_attempts: int = 11
    jitter: float = 0.2
    """Each delay is scaled by a uniform factor in [1 - jitter, 1 + jitter]."""

    def delay(self, attempts: int) -> float | None:
        """Seconds until the next attempt after `attempts` failures; None: dead-letter."""
        if attempts >= self.max_attempts:
            return None
        nominal = min(self.base * self.factor ** (attempts - 1), self.cap)
        return nominal * random.uniform(1 - self.jitter, 1 + self.jitter)

    def nominal_total(self) -> float:
        return sum(min(self.base * self.factor ** (n - 1), self.cap) for n in range(1, self.max_attempts))


class Dispatcher:
    def __init__(self, store: SubscriptionStore, *, backoff: Backoff | None = None, timeout: float = 10.0,
                 per_subscription: int = 4, concurrency: int = 32, poll: float = 0.5,
                 lease: dt.timedelta = dt.timedelta(seconds=60), http: httpx.AsyncClient | None = None) -> None:
        self.store = store
        self.backoff = backoff or Backoff()
        self.timeout, self.per_subscription, self.concurrency, self.poll = timeout, per_subscription, concurrency, poll
        self.lease = max(lease, dt.timedelta(seconds=timeout * 2))
        self.owner = f"dispatcher-{uuid.uuid4().hex[:12]}"
        self._http = http
        self._own_http = http is None
        self._in_flight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        """Set when an attempt ends: its subscription has room again, so the next round starts at once."""

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._http is None:
            self._http = CycleFreeClient(follow_redirects=False)
        self._loop_task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _run(self) -> None:
        """Rounds until cancelled. The wait between rounds is `asyncio.timeout`, not `wait_for`: on 3.11 a
        cancellation arriving as `wait_for`'s inner wait completes is swallowed, and `stop()` then waited forever
        on a loop that kept ticking (a test hung 300 s)."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatcher tick failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            self._wake.clear()

    # --- one round -------------------------------------------------------------------------

    async def tick(self) -> int:
        """Fan out, then start every due attempt there is room for; returns how many started."""
        await asyncio.to_thread(self.store.fan_out)
        room = self.concurrency - len(self._tasks)
        if room <= 0:
            return 0
        full = [sid for sid, n in self._in_flight.items() if n >= self.per_subscription]
        claims = await asyncio.to_thread(self.store.claim, self.owner, self.lease, room, full)
        started = 0
        for claim in claims:
            if self._in_flight[claim.subscription_id] >= self.per_subscription:
                # over this subscription's share this round: give the lease back for a later round
                await asyncio.to_thread(self.store.release, claim, self.owner)
                continue
            self._in_flight[claim.subscription_id] += 1
            task = asyncio.create_task(self._attempt(claim))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def drain(self, deadline: float = 10.0) -> None:
        """Run rounds until no delivery is pending or in flight (tests and the CLI)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            await self.tick()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            elif not await asyncio.to_thread(self.store.pending):
                return
            else:
                await asyncio.sleep(min(self.poll, 0.02))

    async def _attempt(self, claim: Claimed) -> None:
        try:
            await self._send(claim)
        finally:
            self._in_flight[claim.subscription_id] -= 1
            if self._in_flight[claim.subscription_id] <= 0:
                del self._in_flight[claim.subscription_id]
            self._wake.set()

    async def _send(self, claim: Claimed) -> None:
        assert self._http is not None
        fed = await asyncio.to_thread(self.store.feed.get, claim.event_id)
        secrets_ = await asyncio.to_thread(self.store.signing_secrets, claim.subscription_id)
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        if fed is None or not secrets_:
            error = "event no longer in the outbox" if fed is None else "no signing secret"
        else:
            body = msgspec.json.encode(fed.event)
            signed = headers(secrets_, fed.event.id, int(time.time()), body)
            try:
                response = await self._http.post(claim.url, content=body, headers=signed, timeout=self.timeout)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
        latency = int((time.perf_counter() - started) * 1000)
        ok = error is None
        delay = None if ok or fed is None else self.backoff.delay(claim.attempts + 1)
        retry_at = None if delay is None else utcnow() + dt.timedelta(seconds=delay)
        await asyncio.to_thread(self.store.finish, claim, self.owner, ok=ok, status_code=status, latency_ms=latency,
                                error=error, retry_at=retry_at)
        if not ok and retry_at is None:
            log.warning("webhook dead-lettered", extra={"fields": {
                "event": "webhook_dead_letter", "subscription": claim.subscription_id, "event_id": claim.event_id,
                "attempts": claim.attempts + 1, "error": error}})
