"""Which legal entities a caller may see — the one implementation is `foundation/grants.py`.

Kept as the experience APIs' import path; the system and process APIs apply the same rule.
"""

from __future__ import annotations

from foundation.grants import entity_grant, resolve_entities

__all__ = ["entity_grant", "resolve_entities"]
