"""`psconnect demo`: the provisioning flow driven exactly as a client application would.

Everything goes over HTTP through the gateway: a client-credentials token, the CRM
system API to pick a won deal, the provisioning process API to start it (with an
Idempotency-Key), status polling until the run ends, then a look at the records the
run created, a business-rule exception fixed at its source and replayed, and the
published events. When no gateway answers at the URL, one is started in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

__all__ = ["run_demo"]

TERMINAL = {"succeeded", "needs_attention", "failed"}


def _say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _embedded_gateway() -> Iterator[tuple[str, tuple[str, str]]]:
    """Start the embedded stack on a free port in a background thread."""
    import uvicorn

    from gateway.app import create_gateway
    from gateway.demo_client import ensure_demo_client
    from gateway.settings import load_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = create_gateway(load_settings(port=port))
    logging.getLogger("psconnect.access").setLevel(logging.WARNING)  # the demo's own output is the story
    server = uvicorn.Server(uvicorn.Config(gateway.app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the embedded gateway did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", ensure_demo_client(gateway.oauth, gateway.settings.home)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def _reachable(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(url + "/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def run_demo(base_url: str, *, opportunity: str | None = None, client_id: str | None = None,
                   client_secret: str | None = None) -> int:
    from gateway.demo_client import read_demo_credentials
    from gateway.settings import load_settings

    if await _reachable(base_url):
        creds = (client_id, client_secret) if client_id and client_secret else \
            read_demo_credentials(load_settings().home)
        if creds is None or creds[0] is None or creds[1] is None:
            _say("no demo credentials: pass --client-id and --client-secret (printed by `make run`)")
            return 2
        return await _flow(base_url, (str(creds[0]), str(creds[1])), opportunity)
    _say(f"no gateway at {base_url}; starting the embedded stack for this demo…")
    with _embedded_gateway() as (url, creds):
        return await _flow(url, (client_id or creds[0], client_secret or creds[1]), opportunity)


class _Api:
    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, headers={**self.headers, **kwargs.pop("headers", {})},
                                             **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    async def wait(self, run: dict[str, Any]) -> dict[str, Any]:
        """Poll the run, printing each step as it changes state."""
        shown: dict[str, str] = {}
        while True:
            for step in run["steps"]:
                if shown.get(step["name"]) != step["state"] and step["state"] != "pending":
                    shown[step["name"]] = step["state"]
                    extra = f" {step['duration_ms']:.0f} ms" if step.get("duration_ms") is not None else ""
                    ids = ", ".join(f"{k}={v}" for k, v in step["vendor_ids"].items())
                    _say(f"    {step['name']:<15} {step['state']:<10}{extra:>9}  {ids or step.get('detail') or ''}")
            if run["status"] in TERMINAL:
                return run
            await asyncio.sleep(0.25)
            run = await self.call("GET", f"/process/provisioning/v1/runs/{run['id']}")

    async def start(self, opportunity_id: str) -> dict[str, Any]:
        run: dict[str, Any] = await self.call("POST", "/process/provisioning/v1/runs",
                                              json={"opportunity_id": opportunity_id},
                                              headers={"Idempotency-Key": str(uuid.uuid4())})
        return run


async def _flow(base_url: str, creds: tuple[str, str], opportunity: str | None) -> int:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        _say(f"psconnect demo against {base_url}")
        _say("1. token: client credentials at /oauth2/token")
        response = await client.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds)
        if response.status_code != 200:
            _say(f"   token request failed: {response.status_code} {response.text}")
            return 1
        token = response.json()
        _say(f"   got a {token['token_type']} token for {token['expires_in']} s, scopes: {token.get('scope', '')}")
        api = _Api(client, token["access_token"])

        _say("2. CRM system API: won opportunities")
        won = (await api.call("GET", "/system/crm/v1/opportunities",
                              params={"stage": "closed_won", "limit": 100}))["items"]
        provisioned = {r["subject"] for r in (await api.call("GET", "/process/provisioning/v1/runs",
                                                             params={"limit": 200}))["items"]}
        _say(f"   {len(won)} closed-won opportunities, {len(provisioned)} already provisioned")
        target = opportunity or next((o["id"] for o in won if o["id"] not in provisioned
                                      and o.get("legal_entity_code") in ("US01", "UK01", "DE01")
                                      and o["amount"]["currency"] in ("USD", "GBP", "EUR")), None)
        if target is None:
            _say("   nothing left to provision; pass --opportunity to replay a specific one")
            return 0
        opp = next((o for o in won if target in (o["id"], o.get("external_id"))), None)
        if opp:
            _say(f"   chose {opp['id']}: {opp['name']} — {opp['amount']['amount']} {opp['amount']['currency']}")

        _say("3. process API: provision it (POST /process/provisioning/v1/runs with Idempotency-Key)")
        run = await api.wait(await api.start(target))
        _say(f"   run {run['id']} {run['status']}")
        if run["status"] != "succeeded":
            _say(f"   exception: {run.get('exception_id')}")
            return 1
        result = run["result"]
        erp = await api.call("GET", f"/system/erp/v1/projects/{result['erp_project_id']}")
        psa = await api.call("GET", f"/system/psa/v1/projects/{result['psa_project_id']}")
        _say(f"4. ERP project {erp['id']} ({erp['status']}, budget {erp['budget']['amount']} "
             f"{erp['budget']['currency']}, {len(erp['tasks'])} tasks); PSA workspace {psa['id']} "
             f"({psa['billing_terms']}, {len(psa['milestones'])} milestones)")

        again = await api.start(target)
        _say(f"   starting it again returns the same run: {again['id']} ({again['status']}) — no second project")

        await _exception_and_replay(api, won, provisioned)

        events = (await api.call("GET", "/process/provisioning/v1/events",
                                 params={"type": "psconnect.project.provisioned", "limit": 200}))["items"]
        _say(f"6. events: {len(events)} psconnect.project.provisioned published; latest subject "
             f"{events[-1]['subject'] if events else '-'}")
    _say(f"demo finished in {time.perf_counter() - started:.1f} s")
    return 0


async def _exception_and_replay(api: _Api, won: list[dict[str, Any]], provisioned: set[str]) -> None:
    """A deal whose account lacks a VAT number: exception, fix in the CRM, replay."""
    broken = None
    for opp in won:
        if opp.get("legal_entity_code") in ("UK01", "DE01") and opp["id"] not in provisioned:
            account = await api.call("GET", f"/system/crm/v1/accounts/{opp['account_id']}")
            if not account.get("tax_id"):
                broken = opp
                break
    if broken is None:
        _say("5. exception and replay: no deal with a missing tax id left (already fixed in an earlier demo)")
        return
    _say(f"5. exception and replay: {broken['id']} — its account has no VAT number")
    run = await api.wait(await api.start(broken["id"]))
    record = await api.call("GET", f"/process/provisioning/v1/exceptions/{run['exception_id']}")
    _say(f"   run {run['status']}: exception {record['id']} reason={record['reason']} owner={record['owner']}")
    account = await api.call("GET", f"/system/crm/v1/accounts/{broken['account_id']}")
    country = account["billing_address"]["country"]
    fix = {"name": account["name"], "billing_address": account["billing_address"], "currency": account["currency"],
           "tax_id": "GB987654321" if country == "GB" else "DE987654321", "industry": account.get("industry")}
    await api.call("PUT", f"/system/crm/v1/accounts/by-external-id/{account['external_id']}", json=fix)
    _say(f"   master data fixed in the CRM: tax id {fix['tax_id']} set on {account['name']}")
    replayed = await api.wait(await api.call("POST", f"/process/provisioning/v1/exceptions/{record['id']}/replay"))
    record = await api.call("GET", f"/process/provisioning/v1/exceptions/{record['id']}")
    _say(f"   replay attempt {replayed['attempt']}: run {replayed['status']}, exception {record['status']}")
