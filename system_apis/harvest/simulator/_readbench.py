"""Measure a full read of a month of time entries through the Harvest adapter (not a test).

`python -m system_apis.harvest.simulator._readbench [workers]` seeds the simulator with a firm of
`workers` (default 10,000: 440,000 entries), then pages every approved entry of the demo
month through `HarvestTime.list_time_entries` at 2000 a page, in-process (ASGITransport),
and prints seed time, read time, entries/s and peak RSS. The simulator's rate limit is
lifted: a real account reading this volume needs a raised limit from Harvest.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time

import httpx

from system_apis.demo_delivery import DEMO_PERIOD
from system_apis.demo_firm import build_firm
from system_apis.domains.time import TimeEntryQuery
from system_apis.harvest.api import HarvestTime
from system_apis.harvest.client import BASE_URL, HarvestClient
from system_apis.harvest.simulator import HarvestSimulator

__all__ = ["main"]


async def _read(sim: HarvestSimulator) -> tuple[int, int]:
    transport = httpx.ASGITransport(app=sim.app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        time_api = HarvestTime(HarvestClient(http))
        query = TimeEntryQuery(status="approved", start=DEMO_PERIOD[0], end=DEMO_PERIOD[1])
        cursor: str | None = None
        entries = pages = 0
        while True:
            page = await time_api.list_time_entries(query, 2000, cursor)
            entries += len(page.items)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                return entries, pages


def main(workers: int = 10_000) -> None:
    started, cpu_started = time.perf_counter(), time.process_time()
    firm = build_firm(workers)
    sim = HarvestSimulator(firm=firm, requests_per_window=None, report_requests_per_window=None)
    sim.record_requests = False
    seeded, cpu_seeded = time.perf_counter(), time.process_time()
    entries, pages = asyncio.run(_read(sim))
    done, cpu_done = time.perf_counter(), time.process_time()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"workers={workers} stored={len(sim.store.entries)} approved_read={entries} pages={pages}")
    print(f"seed {seeded - started:.1f}s  read {done - seeded:.1f}s  {entries / (done - seeded):,.0f} entries/s  "
          f"peak RSS {rss_mb:,.0f} MB")
    print(f"cpu: seed {cpu_seeded - cpu_started:.1f}s  read {cpu_done - cpu_seeded:.1f}s  "
          f"{entries / (cpu_done - cpu_seeded):,.0f} entries per CPU-second (wall differs on a shared machine)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
