"""The system APIs worker sync calls: HR (read), PSA users and ERP employees (upsert by HR id).

Kept here rather than in `process_apis/_internal/system_clients.py` so the worker-sync
calls live beside the only process that makes them; they ride on the same `SystemApi`
(service token, correlation headers, transient/business classification).
"""

from __future__ import annotations

import httpx

from contracts.common import Page
from contracts.workforce import Employee, EmployeeUpsert, PsaUser, PsaUserUpsert, Worker
from process_apis._internal.system_clients import ErpApi, SystemApi, TokenSource

__all__ = ["HrApi", "WorkforceErpApi", "WorkforcePsaApi"]


class HrApi(SystemApi):
    def __init__(self, http: httpx.AsyncClient, token: TokenSource) -> None:
        super().__init__(http, token, "/system/hr/v1")

    async def list_workers(self, limit: int, cursor: str | None) -> Page[Worker]:
        params: dict[str, str | int] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self.call("GET", "/workers", Page[Worker], params=params)

    async def get_worker(self, worker_id: str) -> Worker:
        return await self.call("GET", f"/workers/{worker_id}", Worker)


class WorkforcePsaApi(SystemApi):
    def __init__(self, http: httpx.AsyncClient, token: TokenSource) -> None:
        super().__init__(http, token, "/system/psa/v1")

    async def upsert_user(self, external_id: str, data: PsaUserUpsert) -> PsaUser:
        return await self.call("PUT", f"/users/by-external-id/{external_id}", PsaUser, json=data)


class WorkforceErpApi(ErpApi):
    async def upsert_employee(self, external_id: str, data: EmployeeUpsert) -> Employee:
        return await self.call("PUT", f"/employees/by-external-id/{external_id}", Employee, json=data)
