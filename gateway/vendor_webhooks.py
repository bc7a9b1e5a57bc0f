"""Inbound vendor events: each account's signed webhook mounted at `/webhooks/{connection}`.

A vendor package that receives events (`VendorPackage.create_webhooks`: HubSpot's closed-won deals,
Xero's invoice changes) gets one route per account that names a webhook secret. A won deal starts
provisioning exactly as `POST /process/provisioning/v1/runs` would, with the deal's routed id
(`ca01-crm:…` for an account other than the domain's default) and the event's key as the idempotency
key, so HubSpot's redelivery or a second webhook for the same deal starts nothing twice. A changed
invoice starts the receivables read-back as `POST /process/receivables/v1/runs` would, keyed by the event,
so a redelivery starts nothing new; one already running may have read that entity before the change, so
joining it also has one more read-back run after it. The route is outside the policy chain:
the vendor proves itself by its signature, not by a token of ours.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from litestar import Router

from gateway.processes import Processes
from gateway.vendors import VendorRuntime
from system_apis.registry import WebhookSinks
from system_apis.routing import SEPARATOR

__all__ = ["READ_BACK_PROCESS", "WON_DEAL_PROCESS", "vendor_webhook_routers"]

WON_DEAL_PROCESS = "provisioning"
"""The process a won deal starts."""
READ_BACK_PROCESS = "receivables"
"""The process a changed invoice starts."""


def vendor_webhook_routers(vendors: Mapping[str, VendorRuntime], engine: sa.Engine, processes: Processes, *,
                           public_base_url: str | None) -> list[Router]:
    routers: list[Router] = []
    for runtime in vendors.values():
        default = next(iter(runtime.connections), None)  # the domain's default account comes first
        for name, account in runtime.connections.items():
            factory = account.entry.package.create_webhooks
            if factory is None:
                continue
            router = factory(account.entry.connection, engine, _sinks(processes, "" if name == default
                                                                       else f"{name}{SEPARATOR}"),
                             public_base_url=public_base_url)
            if router is not None:
                routers.append(router)
    return routers


def _sinks(processes: Processes, prefix: str) -> WebhookSinks:
    async def won_deal(deal_id: str, event_key: str) -> None:
        await processes.service(WON_DEAL_PROCESS).start(f"{prefix}{deal_id}", event_key)

    async def invoices_changed(event_key: str) -> None:
        await processes.service(READ_BACK_PROCESS).start(False, event_key, changed=True)

    return WebhookSinks(won_deal=won_deal, invoices_changed=invoices_changed)
