"""The Salesforce client and CRM system API against the in-memory org, over Salesforce's own wire format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from contracts.correlation import correlation_id
from contracts.crm import AccountUpsert, Address
from foundation.retry import RetryPolicy
from system_apis._internal.faults import Fault
from system_apis._internal.http import (
    CircuitBreaker,
    CircuitOpenError,
    VendorRateLimited,
    VendorRejected,
    VendorUnavailable,
)
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.crm import crm_router
from system_apis.salesforce import BASE_URL, SalesforceClient, SalesforceCrm, create_router
from system_apis.salesforce.client import API_PATH
from system_apis.salesforce.mapping import EXTERNAL_ID_FIELD
from system_apis.salesforce.simulator import SalesforceSimulator
from tests.integration.system_apis.vendor_kit import Sleeps, domain_api, vendor_http

CRM = "/system/crm/v1"
UPSERT_BODY = {"name": "Globex Partners", "billing_address": {"street": "1 Canal St", "city": "London",
                                                              "postal_code": "EC1A 1BB", "country": "GB"},
               "currency": "GBP", "tax_id": "GB999999973", "industry": "Energy"}


@pytest.fixture
def sim() -> SalesforceSimulator:
    return SalesforceSimulator(batch_size=7)  # small batches force nextRecordsUrl paging


@pytest.fixture
async def http(sim: SalesforceSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> SalesforceClient:
    # Three attempts, not the kit's PACE: the fault and breaker tests below count calls per attempt.
    return SalesforceClient(http, sleep=sleeps, retry=RetryPolicy(max_attempts=3))


@pytest.fixture
async def api(client: SalesforceClient) -> AsyncIterator[httpx.AsyncClient]:
    async with domain_api(crm_router(SalesforceCrm(client))) as c:
        yield c


def vendor_paths(sim: SalesforceSimulator) -> list[str]:
    return [r.path for r in sim.requests]


async def account_id_of(client: SalesforceClient, external_id: str) -> str:
    return (await SalesforceCrm(client).get_account(external_id)).id


class TestQueryPaging:
    async def test_client_follows_next_records_url_until_done(self, sim: SalesforceSimulator,
                                                              client: SalesforceClient) -> None:
        records = [r async for r in client.query("SELECT Id, Name FROM Account ORDER BY Id")]
        assert len(records) == 48 == sim.count("Account", None)
        assert len({r["Id"] for r in records}) == 48
        assert records[0]["attributes"]["type"] == "Account"
        assert sum("/query/" in p for p in vendor_paths(sim)) == 6  # 48 rows in batches of 7

    async def test_api_walks_every_account_across_pages(self, sim: SalesforceSimulator,
                                                        api: httpx.AsyncClient) -> None:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 20, **({"cursor": cursor} if cursor else {})}
            response = await api.get(f"{CRM}/accounts", params=params)
            assert response.status_code == 200
            body = response.json()
            assert len(body["items"]) <= 20
            seen += [a["id"] for a in body["items"]]
            pages += 1
            cursor = body.get("next_cursor")
            if not cursor:
                break
        assert pages == 3
        assert len(seen) == len(set(seen)) == sim.count("Account", None)
        # Each page of 20 (+1 look-ahead row) spanned several Salesforce batches of 7.
        assert any("/query/" in p for p in vendor_paths(sim))

    async def test_stage_filter(self, api: httpx.AsyncClient) -> None:
        won = (await api.get(f"{CRM}/opportunities", params={"stage": "closed_won", "limit": 200})).json()
        assert len(won["items"]) == sum(o.stage == "closed_won" for o in firm_for(HOME_ENTITIES).opportunities)
        assert all(o["stage"] == "closed_won" and o["is_won"] for o in won["items"])
        proposal = (await api.get(f"{CRM}/opportunities", params={"stage": "proposal", "limit": 200})).json()
        assert proposal["items"]
        assert all(o["stage"] == "proposal" for o in proposal["items"])

    async def test_forged_cursor_is_a_422_problem_not_soql(self, api: httpx.AsyncClient,
                                                           sim: SalesforceSimulator) -> None:
        response = await api.get(f"{CRM}/accounts", params={"cursor": "eyJhZnRlciI6IicgT1IgSWQgIT0gJyJ9"})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_cursor"
        assert sim.requests == []


class TestGet:
    async def test_by_salesforce_id_and_by_external_id_agree(self, api: httpx.AsyncClient) -> None:
        by_key = (await api.get(f"{CRM}/opportunities/OPP-0001")).json()
        assert by_key["id"].startswith("006")
        by_id = (await api.get(f"{CRM}/opportunities/{by_key['id']}")).json()
        assert by_id == by_key
        assert by_key["stage"] == "closed_won"
        assert by_key["amount"]["amount"] == "655000.00"
        account = (await api.get(f"{CRM}/accounts/{by_key['account_id']}")).json()
        assert account["external_id"] == "ACC-0001"
        assert (await api.get(f"{CRM}/accounts/ACC-0001")).json() == account

    @pytest.mark.parametrize("key", ["006Hs00000000ZZIAA", "OPP-9999", "x' OR Name != '"])
    async def test_not_found_is_a_404_problem(self, api: httpx.AsyncClient, key: str) -> None:
        response = await api.get(f"{CRM}/opportunities/{key}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "NOT_FOUND"

    async def test_amount_written_as_number_reads_back_exactly(self, client: SalesforceClient,
                                                               api: httpx.AsyncClient) -> None:
        opp_id = (await api.get(f"{CRM}/opportunities/OPP-0002")).json()["id"]
        await client.update("Opportunity", opp_id, {"Amount": Decimal("1234567.89")})
        assert (await api.get(f"{CRM}/opportunities/{opp_id}")).json()["amount"]["amount"] == "1234567.89"


class TestUpsert:
    async def test_created_then_updated_never_duplicated(self, sim: SalesforceSimulator,
                                                         api: httpx.AsyncClient) -> None:
        first = await api.put(f"{CRM}/accounts/by-external-id/ACC-9001", json=UPSERT_BODY)
        assert first.status_code == 201
        second = await api.put(f"{CRM}/accounts/by-external-id/ACC-9001",
                               json={**UPSERT_BODY, "name": "Globex Partners Ltd", "tax_id": None})
        assert second.status_code == 200
        assert second.json()["id"] == first.json()["id"]
        assert second.json()["name"] == "Globex Partners Ltd"
        assert second.json()["tax_id"] is None
        assert second.json()["external_id"] == "ACC-9001"
        assert sim.count("Account", "ACC-9001") == 1

    async def test_seeded_account_is_updated_in_place(self, sim: SalesforceSimulator,
                                                      api: httpx.AsyncClient) -> None:
        response = await api.put(f"{CRM}/accounts/by-external-id/ACC-0002", json=UPSERT_BODY)
        assert response.status_code == 200
        assert sim.count("Account", "ACC-0002") == 1
        assert sim.count("Account", None) == 48

    async def test_upsert_retried_after_5xx_still_creates_one(self, sim: SalesforceSimulator,
                                                              client: SalesforceClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=500, method="PATCH", count=2))
        account, created = await SalesforceCrm(client).upsert_account(
            "ACC-9002", AccountUpsert(name="Initech", billing_address=Address(country="US"), currency="USD"))
        assert created
        assert account.external_id == "ACC-9002"
        assert sim.count("Account", "ACC-9002") == 1
        assert client.http.calls == 4  # 2 failed PATCHes, the PATCH that worked, the read-back

    async def test_update_only_refuses_to_create(self, sim: SalesforceSimulator, client: SalesforceClient) -> None:
        with pytest.raises(VendorRejected) as caught:
            await client.upsert("Account", EXTERNAL_ID_FIELD, "ACC-9003", {"Name": "Nobody"}, update_only=True)
        assert caught.value.status == 404
        assert sim.count("Account", "ACC-9003") == 0

    async def test_several_matches_is_a_conflict(self, sim: SalesforceSimulator, client: SalesforceClient,
                                                 api: httpx.AsyncClient) -> None:
        other = await account_id_of(client, "ACC-0003")
        await client.update("Account", other, {EXTERNAL_ID_FIELD: "ACC-0004"})  # a data-quality slip in the org
        response = await api.put(f"{CRM}/accounts/by-external-id/ACC-0004", json=UPSERT_BODY)
        assert response.status_code == 409
        assert response.json()["code"] == "MULTIPLE_CHOICES"
        assert (await api.get(f"{CRM}/accounts/ACC-0004")).status_code == 409

    async def test_close_won_by_id(self, client: SalesforceClient, api: httpx.AsyncClient) -> None:
        opp = (await api.get(f"{CRM}/opportunities/OPP-0004")).json()
        assert opp["stage"] != "closed_won"
        await client.update("Opportunity", opp["id"], {"StageName": "Closed Won"})
        after = (await api.get(f"{CRM}/opportunities/{opp['id']}")).json()
        assert (after["stage"], after["is_won"]) == ("closed_won", True)

    async def test_read_only_field_is_refused(self, client: SalesforceClient) -> None:
        opp_id = (await SalesforceCrm(client).get_opportunity("OPP-0004")).id
        with pytest.raises(VendorRejected) as caught:
            await client.update("Opportunity", opp_id, {"IsWon": True})
        assert caught.value.code == "INVALID_FIELD_FOR_INSERT_UPDATE"


class TestFaults:
    async def test_rate_limit_waits_at_least_retry_after(self, sim: SalesforceSimulator, client: SalesforceClient,
                                                         sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="rate_limit", retry_after=1, count=1))
        account = await SalesforceCrm(client).get_account("ACC-0001")
        assert account.external_id == "ACC-0001"
        assert len(sleeps.waits) == 1
        assert sleeps.waits[0] >= 1

    async def test_server_error_retried_on_reads(self, sim: SalesforceSimulator, client: SalesforceClient) -> None:
        sim.faults.add(Fault(kind="server_error", status=503, count=2))
        assert (await SalesforceCrm(client).list_accounts(5, None)).items
        assert client.http.calls == 3

    async def test_timeout_is_transient(self, sim: SalesforceSimulator, client: SalesforceClient) -> None:
        sim.faults.add(Fault(kind="timeout", count=1))
        assert await client.check()
        assert client.http.calls == 2

    async def test_concurrency_limit_is_transient(self, sim: SalesforceSimulator, client: SalesforceClient,
                                                  sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="concurrency_limit", retry_after=1, count=1))
        assert (await SalesforceCrm(client).get_opportunity("OPP-0001")).is_won
        assert sleeps.waits[0] >= 1
        sim.faults.add(Fault(kind="concurrency_limit"))
        with pytest.raises(VendorRateLimited) as caught:
            await client.limits()
        assert "ConcurrentPerOrgLongTxn" in str(caught.value)

    async def test_persistent_throttle_is_a_503_problem_with_retry_after(self, sim: SalesforceSimulator,
                                                                        api: httpx.AsyncClient) -> None:
        sim.faults.add(Fault(kind="concurrency_limit", retry_after=7))
        response = await api.get(f"{CRM}/accounts")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert response.json()["code"] == "vendor_unavailable"

    async def test_business_error_is_not_retried(self, sim: SalesforceSimulator, client: SalesforceClient,
                                                 api: httpx.AsyncClient) -> None:
        sim.faults.add(Fault(kind="business_error", method="PATCH", message="Tax id is mandatory for UK01"))
        with pytest.raises(VendorRejected) as caught:
            await client.upsert("Account", EXTERNAL_ID_FIELD, "ACC-9004", {"Name": "X"})
        assert caught.value.code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert client.http.calls == 1
        response = await api.put(f"{CRM}/accounts/by-external-id/ACC-9004", json=UPSERT_BODY)
        assert response.status_code == 422
        assert response.json()["code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert "Tax id is mandatory" in response.json()["detail"]
        assert client.http.calls == 2
        assert sim.count("Account", "ACC-9004") == 0

    async def test_breaker_opens_and_stops_calling(self, sim: SalesforceSimulator, client: SalesforceClient) -> None:
        client.http.breaker = CircuitBreaker("salesforce", threshold=6, cooldown=60)  # 2 calls x 3 attempts
        sim.faults.add(Fault(kind="server_error", status=500))
        for _ in range(2):
            with pytest.raises(VendorUnavailable):
                await client.limits()
        assert client.http.breaker.state == "open"
        reached = len(sim.requests)
        with pytest.raises(CircuitOpenError):
            await client.limits()
        assert len(sim.requests) == reached
        assert not await client.check()  # the probe reports the open circuit as not reachable

    async def test_control_routes_count_and_reset(self, sim: SalesforceSimulator, http: httpx.AsyncClient,
                                                  api: httpx.AsyncClient) -> None:
        await api.put(f"{CRM}/accounts/by-external-id/ACC-9006", json=UPSERT_BODY)
        census = (await http.get("/__sim__/count", params={"type": "Account", "external_id": "ACC-9006"})).json()
        assert census["count"] == 1
        assert (await http.post("/__sim__/reset")).status_code == 204
        assert sim.count("Account", "ACC-9006") == 0


class TestWireBehaviour:
    async def test_request_without_token_is_refused_like_salesforce(self, http: httpx.AsyncClient,
                                                                    sleeps: Sleeps) -> None:
        raw = await http.get(f"{API_PATH}/limits")
        assert raw.status_code == 401
        assert raw.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID",
                               "fields": []}]
        assert not await SalesforceClient(http, token="", sleep=sleeps).check()

    async def test_api_usage_is_tracked_from_limit_header(self, client: SalesforceClient) -> None:
        assert client.api_usage is None
        await client.check()
        await client.check()
        assert client.api_usage == (2, 5000)

    async def test_correlation_reaches_the_vendor(self, sim: SalesforceSimulator, client: SalesforceClient) -> None:
        token = correlation_id.set("corr-sf-42")
        try:
            await SalesforceCrm(client).get_account("ACC-0001")
        finally:
            correlation_id.reset(token)
        assert sim.requests
        assert all(r.correlation_id == "corr-sf-42" for r in sim.requests)
        assert all(r.traceparent and r.traceparent.startswith("00-") for r in sim.requests)

    async def test_unknown_field_is_a_rejection(self, client: SalesforceClient) -> None:
        with pytest.raises(VendorRejected) as caught:
            await client.query_batch("SELECT Id, Secret__c FROM Account")
        assert (caught.value.status, caught.value.code) == (400, "INVALID_FIELD")

    async def test_simulator_routes_stay_out_of_openapi(self, http: httpx.AsyncClient) -> None:
        assert (await http.get("/schema/openapi.json")).status_code == 404

    async def test_reset_restores_the_seed_and_clears_faults(self, sim: SalesforceSimulator,
                                                             api: httpx.AsyncClient) -> None:
        await api.put(f"{CRM}/accounts/by-external-id/ACC-9005", json=UPSERT_BODY)
        sim.faults.add(Fault(kind="server_error"))
        sim.reset()
        assert sim.count("Account", "ACC-9005") == 0
        assert sim.count("Account", None) == 48
        assert sim.faults.rules == []

    async def test_create_router_serves_the_contract(self, http: httpx.AsyncClient) -> None:
        async with domain_api(create_router(http)) as c:
            body: dict[str, Any] = (await c.get(f"{CRM}/opportunities", params={"limit": 5})).json()
        assert len(body["items"]) == 5
        assert body["next_cursor"]
