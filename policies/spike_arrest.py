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
    store_unavailable,
)
from policies.stores import CounterStore, StoreUnavailable

__all__ = ["SpikeArrest", "SpikeArrestPolicyConfig"]


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
        self._item = RateLimitItemPerSecond(config.limit.per_second)

    async def on_request(self, ctx: RequestContext) -> None:
        try:
            results = await hit_limits(self.store, "moving-window", [("spike", self._item)],
                                       ("spike", self.config.api))
        except StoreUnavailable:
            if self.config.limit.on_store_failure == "closed":
                raise store_unavailable() from None
            return
        add_limit_states(ctx, [state for state, _ in results])
        exhausted = [state for state, admitted in results if not admitted]
        if exhausted:
            if self.meter is not None:
                consumer = consumer_of(ctx)
                await self.meter.count(consumer, self.config.api)
                await self.meter.reject(consumer, self.config.api)
            raise rate_limited(exhausted, code="rate_limited", detail=(
                f"{self.config.api} accepts at most {self._item.amount} requests per second from all "
                "consumers together; retry shortly."))
