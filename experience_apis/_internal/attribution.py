"""Which legal entity an exception belongs to — one implementation, `process_apis/attribution.py`.

What cannot be attributed — provisioning of an opportunity, a run over every entity (`*`) —
is shown to unrestricted callers only.
"""

from __future__ import annotations

from process_apis.attribution import Attribution, entity_aliases

__all__ = ["Attribution", "entity_aliases"]
