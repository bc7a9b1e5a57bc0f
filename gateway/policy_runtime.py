"""Builds each API's policy chain from the bindings and the runtime the policies need.

One place decides which policies guard an API and with what configuration; the
chain middleware only runs them. Policies that hold state (counters, stores) get
it from here and release it in `shutdown`, so a policy module stays pure config +
hooks, as Kong's plugins are.

Rate limits and quotas count in one `CounterStore`: Redis when `REDIS_URL` is set
(shared by every worker and host, keys under `PSCONNECT_REDIS_PREFIX`), else this
process's memory (embedded mode).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from gateway.oauth import OAuth
from gateway.settings import Settings
from policies.auth import Authentication
from policies.base import Policy
from policies.bindings import Bindings
from policies.idempotency import Idempotency
from policies.idempotency_stores import create_store
from policies.ip_allowlist import IpAllowList
from policies.plans import PlanLookup, resolve_plan
from policies.quota import ApiUsage, Quota, UsageMeter, UsageReport
from policies.rate_limit import RateLimit, RateLimitConfig
from policies.spike_arrest import SpikeArrest, SpikeArrestPolicyConfig
from policies.stores import CounterStore, StoreUnavailable, build_store
from policies.validation import RequestValidation
from policies.versioning import Versioning, VersioningConfig

__all__ = ["PolicyRuntime"]

log = logging.getLogger("psconnect.gateway")


class PolicyRuntime:
    def __init__(self, settings: Settings, bindings: Bindings, oauth: OAuth,
                 subscriptions: PlanLookup | None = None) -> None:
        self.settings = settings
        self.subscriptions = subscriptions
        self.bindings = bindings
        self.oauth = oauth
        self._auth = Authentication(bindings.auth, oauth.validator)
        store_name = settings.limits_store or ("redis" if settings.redis_url else "memory")
        self.limits: CounterStore = build_store(store_name, url=settings.redis_url, namespace=settings.redis_prefix)
        self.meter = UsageMeter(self.limits)
        self._idempotency_store = create_store(settings.redis_url)
        self._ip_allowlist = IpAllowList(bindings.ip_allowlist())
        self._idempotency = Idempotency(bindings.idempotency, self._idempotency_store)

    def policies_for(self, api: str) -> list[Policy[Any]]:
        """The policies of one API; the chain orders them by `order`."""
        binding = self.bindings.apis[api]
        policies: list[Policy[Any]] = [self._auth, Versioning(VersioningConfig(deprecation=binding.deprecation))]
        policies += self._limit_policies(api)
        validation = RequestValidation(binding.validation or self.bindings.validation)
        return [*policies, self._ip_allowlist, validation, self._idempotency]

    def _limit_policies(self, api: str) -> list[Policy[Any]]:
        b = self.bindings
        config = RateLimitConfig(api=api, plans=b.plans, default_plan=b.default_plan, consumers=b.consumers)
        policies: list[Policy[Any]] = [RateLimit(config, self.limits, self.meter, self.subscriptions),
                                       Quota(config, self.limits, self.meter, self.subscriptions)]
        spike = b.apis[api].spike_arrest
        if spike is not None:
            policies.append(SpikeArrest(SpikeArrestPolicyConfig(api=api, limit=spike), self.limits, self.meter))
        return policies

    async def usage(self, client_id: str) -> UsageReport:
        """Today's requests and 429s and the quotas left, per API, for one consumer.

        When the limit store is down the counters read as zero and `store_available` is False.
        """
        now = dt.datetime.now(dt.UTC)
        b = self.bindings
        subscribed = None
        if self.subscriptions is not None and client_id not in b.consumers:
            subscribed = self.subscriptions(client_id)
        apis: list[ApiUsage] = []
        available = True
        for api in b.apis:
            plan = resolve_plan(b.plans, b.consumers, b.default_plan, client_id, api, subscribed)
            try:
                requests, rejected = await self.meter.read(client_id, api, now.date())
                quotas = await self.meter.quotas(plan, client_id, api, now)
            except StoreUnavailable:
                available, requests, rejected, quotas = False, 0, 0, []
            apis.append(ApiUsage(api=api, requests_today=requests, rejected_today=rejected, quotas=quotas))
        plan_name = resolve_plan(b.plans, b.consumers, b.default_plan, client_id, "", subscribed).plan
        return UsageReport(client_id=client_id, plan=plan_name, day=now.date(), apis=apis,
                           store_available=available)

    async def startup(self) -> None:
        """Open what the policies share (stores, connections). A down Redis does not stop start-up."""
        if not await self.limits.ping():
            log.warning("limit store not reachable at start-up; serving per each plan's on_store_failure",
                        extra={"fields": {"event": "limit_store_down_at_startup", **self.limits.describe()}})

    async def shutdown(self) -> None:
        """Close what `startup` opened."""
        await self.limits.close()
        await self._idempotency_store.aclose()
