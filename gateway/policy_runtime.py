"""The runtime the policies need (stores, the token validator) and each API's chain from the bindings.

Which policies guard an API is the bindings file's `policies` (global, and per API);
each is built by the factory its module registers (`policies/registry.py`, entry-point
group `psconnect.policies`), so enabling one is a bindings change, not a gateway one.
The chain middleware only runs them. The state policies share (counters, stores) is
opened here, handed over as `PolicyServices` and released in `shutdown`, so a policy
module stays pure config + hooks, as Kong's plugins are.

Rate limits and quotas count in one `CounterStore`: Redis when `REDIS_URL` is set
(shared by every worker and host, keys under `PSCONNECT_REDIS_PREFIX`), else this
process's memory (embedded mode).
"""

from __future__ import annotations

import logging
from typing import Any

from foundation.audit import AuditLog
from gateway.oauth import OAuth
from gateway.settings import Settings
from policies.base import Policy
from policies.bindings import Bindings, BindingsError
from policies.idempotency_stores import create_store
from policies.plans import PlanLookup
from policies.quota import UsageMeter, UsageReport
from policies.registry import PolicyAssembly, PolicyServices, UnknownPolicy
from policies.stores import CounterStore, build_store

__all__ = ["PolicyRuntime"]

log = logging.getLogger("psconnect.gateway")


class PolicyRuntime:
    def __init__(self, settings: Settings, bindings: Bindings, oauth: OAuth,
                 subscriptions: PlanLookup | None = None, audit: AuditLog | None = None) -> None:
        self.settings = settings
        self.subscriptions = subscriptions
        self.bindings = bindings
        self.oauth = oauth
        store_name = settings.limits_store or ("redis" if settings.redis_url else "memory")
        self.limits: CounterStore = build_store(store_name, url=settings.redis_url, namespace=settings.redis_prefix)
        self.meter = UsageMeter(self.limits)
        self._idempotency_store = create_store(settings.redis_url)
        self.services = PolicyServices(counters=self.limits, meter=self.meter, token_validator=oauth.validator,
                                       idempotency_store=self._idempotency_store, subscriptions=subscriptions,
                                       audit=audit)
        try:
            self._assembly = PolicyAssembly(bindings, self.services)
        except UnknownPolicy as exc:  # bindings built in code, not read by load_bindings
            raise BindingsError(f"bindings: {exc}") from exc

    def policies_for(self, api: str) -> list[Policy[Any]]:
        """The policies of one API, as its bindings name them; the chain orders them by `order`."""
        return self._assembly.policies_for(api)

    async def usage(self, client_id: str) -> UsageReport:
        """Today's requests and 429s and the quotas left, per API, for one consumer.

        When the limit store is down the counters read as zero and `store_available` is False.
        """
        return await self.meter.report(self.bindings, client_id, self.subscriptions)

    async def startup(self) -> None:
        """Open what the policies share (stores, connections). A down Redis does not stop start-up."""
        if not await self.limits.ping():
            log.warning("limit store not reachable at start-up; serving per each plan's on_store_failure",
                        extra={"fields": {"event": "limit_store_down_at_startup", **self.limits.describe()}})

    async def shutdown(self) -> None:
        """Close what `startup` opened."""
        await self.limits.close()
        await self._idempotency_store.aclose()
