"""`psconnect demo`: provisioning and time-to-bill driven exactly as a client application would.

Everything goes over HTTP through the gateway: a client-credentials token, the CRM
system API to pick a won deal, the provisioning process API to start it (with an
Idempotency-Key), status polling until the run ends, then a look at the records the
run created, a business-rule exception fixed at its source and replayed, a deal of an
acquired entity provisioned on that entity's own CRM, ERP and PSA, and the published
events; then every worker synced from each entity's HR system, October's approved time
billed for every legal entity (across their ERPs) and reconciled, the invoices posted in each
ERP, a partial payment read back, and the accounts-receivable aging in one group currency. When no gateway answers
at the URL, one is started in-process.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

from cli.client_session import ApiClient, say, with_gateway
from cli.commands import reconciliation, start_billing

__all__ = ["run_demo"]

HOME_ENTITIES = ("US01", "UK01", "DE01")
ACQUIRED = "CA01"
"""The acquired entity on its own stack (the shipped connections file): its deal, ERP and PSA are its own."""


async def run_demo(base_url: str, *, opportunity: str | None = None, client_id: str | None = None,
                   client_secret: str | None = None) -> int:
    async def body(api: ApiClient, url: str) -> int:
        return await _flow(api, url, opportunity)

    return await with_gateway(base_url, client_id, client_secret, body, embedded=True)


async def _start(api: ApiClient, opportunity_id: str) -> dict[str, Any]:
    run: dict[str, Any] = await api.call("POST", "/process/provisioning/v1/runs",
                                         json={"opportunity_id": opportunity_id},
                                         headers={"Idempotency-Key": str(uuid.uuid4())})
    return run


async def _wait(api: ApiClient, run: dict[str, Any]) -> dict[str, Any]:
    return await api.wait(run, f"/process/provisioning/v1/runs/{run['id']}")


async def _flow(api: ApiClient, base_url: str, opportunity: str | None) -> int:
    started = time.perf_counter()
    say(f"psconnect demo against {base_url}")
    say("1. token: client credentials at /oauth2/token")
    token = api.token
    say(f"   got a {token['token_type']} token for {token['expires_in']} s, scopes: {token.get('scope', '')}")

    say("2. CRM system API: won opportunities")
    won = (await api.call("GET", "/system/crm/v1/opportunities",
                          params={"stage": "closed_won", "limit": 100}))["items"]
    provisioned = {r["subject"] for r in (await api.call("GET", "/process/provisioning/v1/runs",
                                                         params={"limit": 200}))["items"]}
    say(f"   {len(won)} closed-won opportunities, {len(provisioned)} already provisioned")
    target = opportunity or next((o["id"] for o in won if o["id"] not in provisioned
                                  and o.get("legal_entity_code") in HOME_ENTITIES
                                  and o["amount"]["currency"] in ("USD", "GBP", "EUR")), None)
    if target is None:
        say("   nothing left to provision; pass --opportunity to replay a specific one")
        return 0
    opp = next((o for o in won if target in (o["id"], o.get("external_id"))), None)
    if opp:
        say(f"   chose {opp['id']}: {opp['name']} — {opp['amount']['amount']} {opp['amount']['currency']}")

    say("3. process API: provision it (POST /process/provisioning/v1/runs with Idempotency-Key)")
    run = await _wait(api, await _start(api, target))
    say(f"   run {run['id']} {run['status']}")
    if run["status"] != "succeeded":
        say(f"   exception: {run.get('exception_id')}")
        return 1
    result = run["result"]
    erp = await api.call("GET", f"/system/erp/v1/projects/{result['erp_project_id']}")
    psa = await api.call("GET", f"/system/psa/v1/projects/{result['psa_project_id']}")
    say(f"4. ERP project {erp['id']} ({erp['status']}, budget {erp['budget']['amount']} "
         f"{erp['budget']['currency']}, {len(erp['tasks'])} tasks); PSA workspace {psa['id']} "
         f"({psa['billing_terms']}, {len(psa['milestones'])} milestones)")

    again = await _start(api, target)
    say(f"   starting it again returns the same run: {again['id']} ({again['status']}) — no second project")

    await _exception_and_replay(api, won, provisioned)
    await _acquired_deal(api, provisioned)

    events = (await api.call("GET", "/process/provisioning/v1/events",
                             params={"type": "psconnect.project.provisioned", "limit": 200}))["items"]
    say(f"7. events: {len(events)} psconnect.project.provisioned published; latest subject "
         f"{events[-1]['subject'] if events else '-'}")
    await _worker_sync(api)
    await _time_to_bill(api)
    await _receivables(api)
    say(f"demo finished in {time.perf_counter() - started:.1f} s")
    return 0


async def _exception_and_replay(api: ApiClient, won: list[dict[str, Any]], provisioned: set[str]) -> None:
    """A deal whose account lacks a VAT number: exception, fix in the CRM, replay."""
    broken = None
    for opp in won:
        if opp.get("legal_entity_code") in ("UK01", "DE01") and opp["id"] not in provisioned:
            account = await api.call("GET", f"/system/crm/v1/accounts/{opp['account_id']}")
            if not account.get("tax_id"):
                broken = opp
                break
    if broken is None:
        say("5. exception and replay: no deal with a missing tax id left (already fixed in an earlier demo)")
        return
    say(f"5. exception and replay: {broken['id']} — its account has no VAT number")
    run = await _wait(api, await _start(api, broken["id"]))
    record = await api.call("GET", f"/process/provisioning/v1/exceptions/{run['exception_id']}")
    say(f"   run {run['status']}: exception {record['id']} reason={record['reason']} owner={record['owner']}")
    account = await api.call("GET", f"/system/crm/v1/accounts/{broken['account_id']}")
    country = account["billing_address"]["country"]
    fix = {"name": account["name"], "billing_address": account["billing_address"], "currency": account["currency"],
           "tax_id": "GB987654321" if country == "GB" else "DE987654321", "industry": account.get("industry")}
    await api.call("PUT", f"/system/crm/v1/accounts/by-external-id/{account['external_id']}", json=fix)
    say(f"   master data fixed in the CRM: tax id {fix['tax_id']} set on {account['name']}")
    replayed = await _wait(api, await api.call("POST", f"/process/provisioning/v1/exceptions/{record['id']}/replay"))
    record = await api.call("GET", f"/process/provisioning/v1/exceptions/{record['id']}")
    say(f"   replay attempt {replayed['attempt']}: run {replayed['status']}, exception {record['status']}")


async def _acquired_deal(api: ApiClient, provisioned: set[str]) -> None:
    """A closed-won deal of the acquired entity, read from its own CRM, provisioned to its own ERP and PSA."""
    deals = (await api.call("GET", "/system/crm/v1/opportunities",
                            params={"stage": "closed_won", "legal_entity": ACQUIRED, "limit": 50}))["items"]
    deal = next((d for d in deals if d["id"] not in provisioned), deals[0] if deals else None)
    if deal is None:
        say(f"6. acquired entity {ACQUIRED}: no closed-won deal in its CRM")
        return
    say(f"6. acquired entity {ACQUIRED}: deal {deal['id']} from its own CRM — {deal['name']}, "
        f"{deal['amount']['amount']} {deal['amount']['currency']}")
    run = await _wait(api, await _start(api, deal["id"]))
    if run["status"] != "succeeded":
        say(f"   run {run['id']} {run['status']}: exception {run.get('exception_id')}")
        return
    result = run["result"]
    say(f"   run {run['status']}: ERP customer {result['erp_customer_id']}, ERP project {result['erp_project_id']}, "
        f"PSA project {result['psa_project_id']} — each on {ACQUIRED}'s own account")


async def _worker_sync(api: ApiClient) -> None:
    """Every worker from its employer's HR system to that entity's PSA and ERP (the acquired entity's own)."""
    say("8. worker sync: each worker from its HR system to its entity's PSA and ERP "
        "(POST /process/worker-sync/v1/runs)")
    run = await api.call("POST", "/process/worker-sync/v1/runs", json={"full": True},
                         headers={"Idempotency-Key": str(uuid.uuid4())})
    run = await api.wait(run, f"/process/worker-sync/v1/runs/{run['id']}")
    result = run.get("result") or {}
    say(f"   run {run['id']} {run['status']}: {result.get('synced', 0)} of {result.get('workers', 0)} workers synced, "
        f"{result.get('failed', 0)} failed")


async def _time_to_bill(api: ApiClient) -> None:
    """October's approved time and expenses, every legal entity: posted to the ERP, drafted as invoices, reconciled."""
    say("9. time-to-bill: October 2026's time and expenses, every legal entity "
        "(POST /process/time-to-bill/v1/billing-runs)")
    run = await start_billing(api, "*", "2026-10")
    run = await api.wait(run, f"/process/time-to-bill/v1/billing-runs/{run['id']}")
    result = run.get("result") or {}
    say(f"   billing run {run['id']} {run['status']}: {result.get('posted', 0)} time entries and "
        f"{result.get('expenses_posted', 0)} expenses posted, {result.get('invoice_documents', 0)} invoices and "
        "credit memos drafted")
    open_exceptions = (await api.call("GET", "/process/time-to-bill/v1/exceptions",
                                      params={"status": "open", "limit": 200}))["items"]
    reasons = Counter(e["reason"] for e in open_exceptions)
    say("   held as owned exceptions: " + (", ".join(f"{r} ×{n}" for r, n in sorted(reasons.items())) or "none"))
    say("10. reconciliation: approved in the time system vs posted in the ERP vs invoiced (time, then expenses), "
        "every legal entity")
    # Every page: the list merges every ERP account's entities, one account after another.
    codes = [e["code"] for e in await api.items("/system/erp/v1/legal-entities")]
    for entity in sorted(codes):  # each on its own ERP account (the connections file)
        posting = await api.call("GET", "/system/erp/v1/capabilities", params={"legal_entity": entity})
        rows = await reconciliation(api, "2026-10", legal_entity=entity)
        clean = [r for r in rows if not r["discrepancies"]]
        currency = rows[0]["currency"] if rows else ""
        approved = sum(Decimal(r["approved_amount"]) for r in rows)
        posted = sum(Decimal(r["posted_amount"]) for r in rows)
        invoiced = sum(Decimal(r["invoiced_amount"]) for r in rows)
        cost = sum(Decimal(r["approved_expense_cost"]) for r in rows)
        cost_posted = sum(Decimal(r["posted_expense_cost"]) for r in rows)
        billed = sum(Decimal(r["invoiced_expense_amount"]) for r in rows)
        seconded = [f"{Decimal(f['expected']):,.2f} {f['currency']} from {f['employer']}"
                    for r in rows for f in r["intercompany"]]
        say(f"   {entity} (ERP takes time {posting['time_posting'].replace('_', ' ')}): {len(rows)} projects, "
            f"{len(clean)} clean; time approved {approved:,.2f} {currency}, posted {posted:,.2f}, invoiced "
            f"{invoiced:,.2f}; expenses approved {cost:,.2f}, posted {cost_posted:,.2f}, invoiced with markup "
            f"{billed:,.2f}" + (f"; seconded consultants charged {', '.join(seconded)}" if seconded else ""))
        for r in rows:
            if r["discrepancies"]:
                say(f"      {r['project']}: {'; '.join(r['discrepancies'])}")


async def _receivables(api: ApiClient) -> None:
    """October's invoices posted in each ERP, one customer paying half, read back, and the AR aging."""
    say("11. receivables: post October's invoice drafts in each ERP, apply a partial payment per entity")
    drafts = [i for i in await api.items("/system/erp/v1/invoices", {"period": "2026-10"}) if i["status"] == "draft"]
    paid: set[str] = set()
    for invoice in drafts:
        key = invoice["external_id"]
        posted = await api.call("POST", f"/system/erp/v1/invoices/by-external-id/{key}/post",
                                headers={"Idempotency-Key": f"demo-post-{key}"})
        entity = posted["legal_entity_id"]
        if entity in paid or Decimal(posted["total"]["amount"]) <= 0:
            continue
        half = (Decimal(posted["total"]["amount"]) / 2).quantize(Decimal("0.01"))
        await api.call("PUT", f"/system/erp/v1/payments/by-external-id/PAY-{key}", json={
            "invoice_external_id": key, "legal_entity_id": entity, "date": "2026-11-20",
            "amount": {"amount": str(half), "currency": posted["currency"]}, "reference": "demo remittance"},
            headers={"Idempotency-Key": f"demo-pay-{key}"})
        paid.add(entity)
        say(f"   {key}: posted ({posted['status']}), {half:,.2f} {posted['currency']} of "
            f"{Decimal(posted['total']['amount']):,.2f} paid")
    say(f"   {len(drafts)} invoices posted, {len(paid)} partly paid; reading them back "
        "(POST /process/receivables/v1/runs)")
    run = await api.call("POST", "/process/receivables/v1/runs", json={"full": False},
                         headers={"Idempotency-Key": str(uuid.uuid4())})
    run = await api.wait(run, f"/process/receivables/v1/runs/{run['id']}")
    result = run.get("result") or {}
    say(f"   poll {run['id']} {run['status']}: {result.get('invoices_read', 0)} invoices read, "
        f"{result.get('posted', 0)} invoice.posted and {result.get('payments', 0)} payment.received published")
    report = await api.call("GET", "/experience/dashboards/v1/receivables",
                            params={"as_of": "2027-01-15", "currency": "USD"})
    say("12. accounts-receivable aging at 2027-01-15 (days past due), each entity in its currency and in USD")
    for total in report["entities"]:
        buckets = "  ".join(f"{b['bucket']} {Decimal(b['amount']['amount']):,.2f}" for b in total["buckets"])
        converted = total["converted_open"]
        say(f"   {total['legal_entity_code']} {total['currency']}: open {Decimal(total['open']['amount']):,.2f} "
            f"(DSO {total['dso'] if total['dso'] is not None else '-'} d) — {buckets} — "
            f"USD {Decimal(converted['amount']['amount']):,.2f} at {converted['rate']} of {converted['rate_date']} "
            f"({converted['source']})")
    say(f"   group open receivables {Decimal(report['group_open']['amount']):,.2f} USD, overdue "
        f"{Decimal(report['group_overdue']['amount']):,.2f} USD")
