"""How hard a caller tries before giving up on a transient failure, and what a `Retry-After` says.

Vendor clients, process steps and the gateway's remote upstreams all back off the same
way ("exponential backoff with full jitter",
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/) and never
undercut a server's `Retry-After`, so the policy lives below every layer.
"""

from __future__ import annotations

import email.utils
import random
import time

import msgspec

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How hard a client tries before giving up on a transient failure."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        if retry_after is not None:
            return max(min(retry_after, self.max_retry_after), backoff)
        return backoff
