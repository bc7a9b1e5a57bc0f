"""Spike arrest: a ceiling on all consumers of one API together (Apigee's SpikeArrest).

Plans limit each consumer; this protects what runs behind the API from their sum —
and from our own process APIs' month-end bursts. A moving one-second window, so a
burst at a window edge cannot double the ceiling. Runs before the per-consumer rate
limit (920 > 910) so a refused spike spends none of the consumer's allowance.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
from limits import RateLimitItemPerSecond

from policies.base import Policy, RequestContext
from policies.plans import SpikeArrestConfig
from policies.rate_limit import (
    UsageMeterProtocol,
    add_limit_states,
    consumer_of,
    hit_limits,
    rate_limited,
)
from policies.registry import PolicyBuild, PolicyFactory
from policies.stores import CounterStore
from policies.stores.batch import LimitHit

__all__ = ["FACTORY", "SpikeArrest", "SpikeArrestPolicyConfig"]


class SpikeArrestPolicyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api: str
    limit: SpikeArrestConfig


class SpikeArrest(Policy[SpikeArrestPolicyConfig]):
    name: ClassVar[str] = "spike_arrest"
    order: ClassVar[int] = 920

    def __init__(self, config: SpikeArrestPolicyConfig, store: CounterStore,
                 meter: UsageMeterProtocol | None = None) -> None:
        super().__init__(config)
        self.store = store
        self.meter = meter
        self._hit = LimitHit("moving-window", RateLimitItemPerSecond(config.limit.per_second), ("spike", config.api))

    async def on_request(self, ctx: RequestContext) -> None:
        # Counted for its consumer here only when refused; admitted, the rate limit counts it.
        counters = self.meter.counters(consumer_of(ctx), self.config.api, requests="count_refused") \
            if self.meter else ()
        outcome = await hit_limits(self.store, [("spike", self._hit)], counters,
                                   on_store_failure=self.config.limit.on_store_failure)
        if outcome is None:
            return
        admitted, states = outcome
        add_limit_states(ctx, states)
        if not admitted:
            raise rate_limited(states, code="rate_limited", detail=(
                f"{self.config.api} accepts at most {self._hit.item.amount} requests per second from all "
                "consumers together; retry shortly."))


def _build(b: PolicyBuild) -> SpikeArrest | None:
    ceiling = b.binding.spike_arrest
    if ceiling is None:
        return None  # the API declares no ceiling
    return SpikeArrest(SpikeArrestPolicyConfig(api=b.api, limit=ceiling), b.services.counters, b.services.meter)


FACTORY = PolicyFactory(name="spike_arrest", build=_build)
"""Registered in the entry-point group psconnect.policies; runs on the APIs with a `spike_arrest` block."""
