"""`psconnect demo` against a started instance, as the README tells a stranger to run it: a deal of the acquired
entity provisioned on its own CRM, ERP and PSA, every worker synced, and October billed and reconciled for all
five legal entities across three ERPs (two taking time per entry, one summarised)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.live_server import PSCONNECT, REPO, served

pytestmark = pytest.mark.slow


def test_the_demo_provisions_the_acquired_deal_and_bills_all_five_entities_across_three_erps(tmp_path: Path) -> None:
    with served(tmp_path) as base:
        env = {**os.environ, "PSCONNECT_HOME": str(tmp_path)}
        done = subprocess.run([*PSCONNECT, "demo", "--base-url", base], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=600, check=False)
        again = subprocess.run([*PSCONNECT, "receivables", "poll", "--base-url", base], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    assert re.search(r"acquired entity CA01: deal ca01-crm:\S+ from its own CRM", out), out
    assert re.search(r"run succeeded: ERP customer ca01-erp:\S+, ERP project ca01-erp:\S+, PSA project "
                     r"ca01-certinia:\S+", out), out
    synced = re.search(r"succeeded: (\d+) of (\d+) workers synced, 0 failed", out)
    assert synced and synced.group(1) == synced.group(2), out
    rows = dict(re.findall(r"^   ([A-Z]{2}\d{2}) \(ERP takes time ([a-z ]+)\): .*$", out, re.MULTILINE))
    assert rows == {"AU01": "summarised", "CA01": "per entry", "DE01": "per entry", "UK01": "per entry",
                    "US01": "per entry"}, out
    for entity in rows:  # every project reconciles: approved = posted for time and expenses, nothing to explain
        amount = r"([\d,]+\.\d\d)"
        line = re.search(rf"^   {entity} .*: (\d+) projects, (\d+) clean; time approved {amount} \w+, posted {amount}, "
                         rf"invoiced {amount}; expenses approved {amount}, posted {amount}", out, re.MULTILINE)
        assert line and line.group(1) == line.group(2), (entity, out)
        assert line.group(3) == line.group(4) and line.group(6) == line.group(7), (entity, out)
    # Every draft posted, one partial payment per ERP entity read back, and the AR aging in one currency.
    posted = re.search(r"(\d+) invoices posted, (\d+) partly paid", out)
    assert posted and int(posted.group(1)) > 0 and int(posted.group(2)) == 5, out
    poll = re.search(r"poll \S+ succeeded: \d+ invoices read, (\d+) invoice.posted and (\d+) payment.received", out)
    assert poll and poll.group(1) == posted.group(1) and poll.group(2) == "5", out
    aging = dict(re.findall(r"^   ([A-Z]{2}\d{2}) ([A-Z]{3}): open [\d,.]+ \(DSO", out, re.MULTILINE))
    assert aging == {"US01": "USD", "UK01": "GBP", "DE01": "EUR", "CA01": "CAD", "AU01": "AUD"}, out
    assert re.search(r"group open receivables [\d,]+\.\d\d USD", out), out
    # The CLI's own poll afterwards: it succeeds and finds nothing the demo's poll had not read.
    assert again.returncode == 0 and "run succeeded" in again.stdout, again.stdout + again.stderr
    assert re.search(r"poll\s+succeeded.*changed=0", again.stdout), again.stdout
