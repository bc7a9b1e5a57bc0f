"""The demo client `make run` prints: created once, its secret kept in PSCONNECT_HOME.

Secrets are stored hashed, so the plain secret can only be shown if we keep it
somewhere: a file readable by the owner only, in the local state directory, for the
demo client alone. Real clients see their secret once, at `psconnect clients create`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gateway.oauth import OAuth

__all__ = ["DEMO_CLIENT_ID", "DEMO_SCOPES", "ensure_demo_client", "read_demo_credentials"]

DEMO_CLIENT_ID = "demo-client"
DEMO_SCOPES = ("system.crm:read", "system.crm:write", "system.erp:read", "system.erp:write", "system.psa:read",
               "system.psa:write", "process.provisioning:read", "process.provisioning:write",
               "experience.workbench:read", "experience.workbench:write", "experience.dashboards:read",
               "system.time:read", "system.hr:read", "process.worker_sync:read", "process.worker_sync:write",
               "process.time_to_bill:read", "process.time_to_bill:write", "experience.audit:read",
               "experience.subscriptions:read", "experience.subscriptions:write",
               "process.receivables:read", "process.receivables:write",
               "ops.metrics:read")  # the local demo can scrape GET /metrics


def _path(home: Path) -> Path:
    return home / "demo-client.json"


def read_demo_credentials(home: Path) -> tuple[str, str] | None:
    try:
        data = json.loads(_path(home).read_text())
        return str(data["client_id"]), str(data["client_secret"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_demo_client(oauth: OAuth, home: Path) -> tuple[str, str]:
    """The demo client's id and secret; a new secret when the stored one no longer matches."""
    stored = read_demo_credentials(home)
    if stored and oauth.clients.authenticate(*stored) is not None:
        oauth.clients.ensure(DEMO_CLIENT_ID, "Demo application", DEMO_SCOPES, stored[1])
        return stored
    if oauth.clients.get(DEMO_CLIENT_ID) is None:
        client_id, secret = oauth.clients.create("Demo application", DEMO_SCOPES, client_id=DEMO_CLIENT_ID)
    else:
        client_id, secret = DEMO_CLIENT_ID, oauth.clients.rotate_secret(DEMO_CLIENT_ID)
    path = _path(home)
    path.write_text(json.dumps({"client_id": client_id, "client_secret": secret}))
    os.chmod(path, 0o600)
    return client_id, secret
