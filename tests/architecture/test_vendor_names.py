"""No vendor name above the system APIs: a process or experience API must not know which vendor backs it.

`lint-imports` catches imports; this catches the names in strings, comments and docstrings that
an import check cannot see (a vendor's error code parsed out of free text was how the seam leaked).
"""

from __future__ import annotations

import re
from pathlib import Path

from system_apis.registry import installed

ROOT = Path(__file__).resolve().parents[2]
ABOVE_THE_SYSTEM_APIS = ("process_apis", "experience_apis")
KNOWN_VENDORS = ("netsuite", "salesforce", "kantata", "harvest", "workday", "hubspot", "xero", "bamboo",
                 "business central", "businesscentral", "certinia", "sap", "dynamics")


def _names() -> set[str]:
    return {*KNOWN_VENDORS, *(vendor.name.lower() for vendor in installed())}


def test_every_installed_vendor_is_looked_for() -> None:
    assert {vendor.name for vendor in installed()} <= _names()


def test_no_vendor_name_above_the_system_apis() -> None:
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(_names())) + r")\b", re.IGNORECASE)
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for package in ABOVE_THE_SYSTEM_APIS
             for path in sorted((ROOT / package).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
