"""Identifiers the adapter and the simulator agree on without importing each other."""

from __future__ import annotations

import uuid
from typing import Final

__all__ = ["DEFAULT_CODE", "DEFAULT_TENANT", "PAYMENT_ACCOUNT", "tenant_id"]

_NAMESPACE: Final = uuid.UUID("1f0c6a57-62a4-4d0e-9a1e-0b8a9c7c2f11")
DEFAULT_CODE: Final = "AU01"
PAYMENT_ACCOUNT: Final = "090"
"""The bank account customer payments are applied to (``Account.Code`` of ``PUT /Payments``): Xero's default chart
of accounts calls its business bank account 090; a connection names another with the ``payment_account``
entry of its credentials."""


def tenant_id(code: str) -> str:
    """The simulator's tenant (organisation) id of a legal entity code: stable across runs."""
    return str(uuid.uuid5(_NAMESPACE, f"xero-tenant:{code}"))


DEFAULT_TENANT: Final = tenant_id(DEFAULT_CODE)
