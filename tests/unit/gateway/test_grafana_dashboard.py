"""The Grafana dashboard in docs/ graphs only series the code exports: a renamed series fails here, not on a
wall screen that silently goes blank."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.registry import REGISTRY

import foundation.metrics  # noqa: F401 - declares the series on the default registry

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"


def test_every_dashboard_series_is_exported() -> None:
    exported = {sample_name for family in REGISTRY.collect() if family.name.startswith("psconnect_")
                for sample_name in (family.name, f"{family.name}_total", f"{family.name}_bucket",
                                    f"{family.name}_count", f"{family.name}_sum")}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {name for panel in panels for target in panel["targets"]
            for name in re.findall(r"psconnect_[a-z_]+", target["expr"])}
    assert used, "the dashboard graphs nothing"
    assert used <= exported, sorted(used - exported)
