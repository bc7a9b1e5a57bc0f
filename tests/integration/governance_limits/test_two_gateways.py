"""Two gateway processes sharing Redis and PostgreSQL, hammered at once: limits hold exactly across them.

Each strategy gets its own consumer (plan) with 50 requests per minute; 200 concurrent
requests, half to each process, must admit exactly 50. Redis keys live under a prefix
unique to this run, so parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.app import create_gateway
from gateway.settings import load_settings
from policies.bindings import DEFAULT_FILE, load_bindings
from tests.ports import free_port
from tests.processes import PSCONNECT, spawn
from tests.stack import postgres_database

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

STRATEGIES = ("fixed-window", "moving-window", "sliding-window-counter")
ACCOUNTS = "/system/crm/v1/accounts?limit=1"


def _bindings(path: Path) -> None:
    doc: dict[str, Any] = yaml.safe_load(DEFAULT_FILE.read_text())
    for strategy in STRATEGIES:
        doc["plans"][f"t-{strategy}"] = {"strategy": strategy, "limits": {"per_minute": 50}}
        doc["consumers"][f"lim-{strategy}"] = {"plan": f"t-{strategy}"}
    doc["plans"]["t-quota"] = {"limits": {"per_day": 5, "per_month": 1000}}
    doc["consumers"]["lim-quota"] = {"plan": "t-quota"}
    path.write_text(yaml.safe_dump(doc))


class Cluster:
    def __init__(self, urls: list[str], env: dict[str, str], secrets: dict[str, str]) -> None:
        self.urls, self.env, self.secrets = urls, env, secrets

    async def token(self, http: httpx.AsyncClient, client_id: str) -> str:
        r = await http.post(f"{self.urls[0]}/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=(client_id, self.secrets[client_id]))
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with postgres_database() as db:
        bindings = tmp_path / "bindings.yaml"
        _bindings(bindings)
        env = {**os.environ, "DATABASE_URL": db, "REDIS_URL": "redis://127.0.0.1:6379/0",
               "PSCONNECT_REDIS_PREFIX": f"psconnect-test-{uuid.uuid4().hex[:12]}", "PSCONNECT_BINDINGS": str(bindings),
               "PSCONNECT_HOME": str(tmp_path / "home"), "PSCONNECT_SEED_DEMO": "0",
               # one issuer for both, as behind a load balancer
               "PSCONNECT_PUBLIC_URL": "http://127.0.0.1:8999"}
        # Clients registered up front in the shared database, as an operator would.
        admin = create_gateway(load_settings(env=env))
        admin.oauth.create_tables()
        secrets = {cid: admin.oauth.clients.create(cid, ("system.crm:read",), client_id=cid)[1]
                   for cid in [*(f"lim-{s}" for s in STRATEGIES), "lim-quota"]}
        admin.engine.dispose()
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            # One after the other: the first creates the signing key, the second finds it in the database.
            async with httpx.AsyncClient(timeout=2) as http:
                for port, url in zip(ports, urls, strict=True):
                    proc = spawn([*PSCONNECT, "serve", "--port", str(port)], env, tmp_path / f"gateway-{port}.log")
                    procs.append(proc)
                    for _ in range(300):
                        assert proc.poll() is None, (tmp_path / f"gateway-{port}.log").read_text()[-4000:]
                        try:
                            if (await http.get(f"{url}/health")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.1)
            yield Cluster(urls, env, secrets)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


async def _hammer(cluster: Cluster, client_id: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        token = await cluster.token(http, client_id)
        headers = {"Authorization": f"Bearer {token}"}
        gate = asyncio.Semaphore(40)  # 40 in flight at any time, 20 on each process

        async def one(i: int) -> httpx.Response:
            async with gate:
                return await http.get(cluster.urls[i % 2] + ACCOUNTS, headers=headers)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_limits_hold_exactly_across_two_processes(cluster: Cluster) -> None:
    for strategy in STRATEGIES:
        answers = await _hammer(cluster, f"lim-{strategy}", 200)
        codes = [r.status_code for r in answers]
        assert 401 not in codes, next(r.text for r in answers if r.status_code == 401)
        assert codes.count(200) == 50 and codes.count(429) == 150, (strategy, sorted(set(codes)))
        # both processes answered half the load; counted apart they would have admitted up to 100
        assert {r.url.port for r in answers} == {httpx.URL(u).port for u in cluster.urls}
        for r in answers:
            assert r.headers["RateLimit-Policy"] == '"minute";q=50;w=60', strategy
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1
        assert '"minute";r=0;' in refused.headers["RateLimit"]


async def test_quota_decrements_blocks_and_is_reported(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        token = await cluster.token(http, "lim-quota")
        headers = {"Authorization": f"Bearer {token}"}
        answers = [await http.get(cluster.urls[i % 2] + ACCOUNTS, headers=headers) for i in range(7)]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 2
    assert [r.headers["RateLimit"].split(",")[0] for r in answers[:5]] == \
        [f'"day";r={n};t={answers[i].headers["RateLimit"].split(";t=")[1].split(",")[0]}'
         for i, n in enumerate(range(4, -1, -1))]
    assert answers[-1].json()["code"] == "quota_exceeded"
    # The operator's view, from the same Redis counters.
    gateway = create_gateway(load_settings(env=cluster.env),
                             bindings=load_bindings(Path(cluster.env["PSCONNECT_BINDINGS"])))
    report = await gateway.policies.usage("lim-quota")
    await gateway.policies.shutdown()
    gateway.engine.dispose()
    crm = next(a for a in report.apis if a.api == "system.crm")
    assert (report.plan, crm.requests_today, crm.rejected_today) == ("t-quota", 7, 2)
    day = next(q for q in crm.quotas if q.period == "day")
    assert (day.limit, day.remaining) == (5, 0)
