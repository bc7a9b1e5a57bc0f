"""What the processes publish: a billing run's time posting, invoices, the run's end and its exceptions.

Each as a CloudEvent in the outbox with a stable id, naming its legal entity where it has one
(so a restricted subscription gets it), and resolving an exception publishes its resolution.
"""

from __future__ import annotations

import collections
from pathlib import Path

from contracts.events import BILLING_RUN_FINISHED, EXCEPTION_OPENED, EXCEPTION_RESOLVED, INVOICE_DRAFTED, TIME_POSTED
from process_apis.event_feed import EventFeed
from tests.integration.process_apis.time_to_bill.ttb_stack import ttb_stack


async def test_a_billing_run_publishes_what_it_did(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as s:
        run = await s.bill("US01")
        assert run["status"] == "needs_attention"
        feed = EventFeed(s.engine)
        events = feed.after(0, 100_000)
        by_type = collections.defaultdict(list)
        for fed in events:
            by_type[fed.event.type].append(fed)
        assert len({f.event.id for f in events}) == len(events)  # one event per id

        posted = by_type[TIME_POSTED]
        assert posted and {f.legal_entity for f in posted} == {"US01"}
        assert sum(f.event.data["lines_posted"] for f in posted) == int(run["result"]["posted"])
        assert by_type[INVOICE_DRAFTED] and all(f.legal_entity for f in by_type[INVOICE_DRAFTED])
        [finished] = by_type[BILLING_RUN_FINISHED]
        assert finished.event.id == f"{run['id']}:finished" and finished.legal_entity == "US01"
        assert finished.event.data["status"] == "needs_attention"
        opened = by_type[EXCEPTION_OPENED]
        assert {f.event.data["exception_id"] for f in opened} == {e["id"] for e in await s.exceptions()}

        exception_id = opened[0].event.data["exception_id"]
        resolved = await s.http.post(f"/experience/workbench/v1/exceptions/{exception_id}/resolution",
                                     json={"resolution": "fixed in the ERP by hand"})
        assert resolved.status_code in (200, 201), resolved.text
        [resolution] = [f for f in feed.after(events[-1].seq, 100) if f.event.type == EXCEPTION_RESOLVED]
        assert resolution.event.data["exception_id"] == exception_id
